"""What a page shows, read from AppTest elements: user-derived text reaches Markdown
escaped (``app_parts.plain``), so the helpers remove the escapes before comparing."""

from __future__ import annotations

import re

from streamlit.testing.v1 import AppTest


def shown(text: str) -> str:
    """What the page shows for an escaped plain-text string (Markdown escapes removed)."""
    return re.sub(r"\\(.)", r"\1", text)


def errors(at: AppTest) -> list[str]:
    return [shown(e.value) for e in at.error]


def captions(at: AppTest) -> list[str]:
    return [shown(c.value) for c in at.caption]
