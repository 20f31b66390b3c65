"""Shared by the browser tests and their fixtures: scaled time limits, tabs, screenshot paths.

Every limit on a wait is a base value tuned on a quiet machine times
``TRPO_VIZ_TIMEOUT_FACTOR`` (default 3). Screenshots go to the ignored
``artifacts/screenshots/``; :func:`publish_to_docs` copies one over the README's
picture in ``docs/`` only when ``TRPO_VIZ_REFRESH_DOCS=1``.
"""

from __future__ import annotations

import math
import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "artifacts"
SCREENSHOTS = ARTIFACTS / "screenshots"
DOCS = ROOT / "docs"


def _timeout_factor() -> float:
    text = os.environ.get("TRPO_VIZ_TIMEOUT_FACTOR", "3")
    try:
        factor = float(text)
    except ValueError:
        factor = math.nan
    if not (math.isfinite(factor) and factor > 0):
        raise pytest.UsageError(f"TRPO_VIZ_TIMEOUT_FACTOR must be a number > 0, got {text!r}")
    return factor


TIMEOUT_FACTOR = _timeout_factor()


def timeout_ms(base_s: float) -> float:
    """The limit for a wait whose base value (on a quiet machine) is ``base_s`` seconds."""
    return base_s * TIMEOUT_FACTOR * 1000


STARTUP_S = 90 * TIMEOUT_FACTOR  # the server answers /_stcore/health (no TensorFlow yet)
PAGE_TIMEOUT_MS = timeout_ms(60)  # default for every Playwright wait and action


def new_tab(browser):
    """A fresh context (a separate Streamlit session) and its tab, with the scaled timeout."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    tab = context.new_page()
    tab.set_default_timeout(PAGE_TIMEOUT_MS)
    return context, tab


def publish_to_docs(screenshot: Path, name: str) -> None:
    """Copy a screenshot to docs/``name`` when TRPO_VIZ_REFRESH_DOCS=1 (the README's pictures).

    Otherwise nothing: running the tests never modifies a tracked file.
    """
    if os.environ.get("TRPO_VIZ_REFRESH_DOCS") == "1":
        DOCS.mkdir(exist_ok=True)
        shutil.copyfile(screenshot, DOCS / name)


def wait_until_script_idle(page) -> None:
    """No script run in flight: Streamlit's status widget shows no running icon."""
    page.wait_for_function(
        "() => !document.querySelector("
        "'[data-testid=\"stStatusWidget\"] [data-testid=\"stStatusWidgetRunningIcon\"]')"
    )
