"""Streamlit pieces the pages share (UI, not compute: ``trpo_viz`` never imports Streamlit).

- :mod:`app_parts.live_chart`: a Plotly chart that redraws in place while a view ticks;
- :mod:`app_parts.trpo_form`: the TRPO page's settings form;
- :mod:`app_parts.trpo_charts`: the TRPO views' charts, built once per update and shared;
- :mod:`app_parts.run_registry`: the server's run registry, as the run pages reach it;
- :mod:`app_parts.cg_cache`: the CG explorer's compiled problems and cached solves;
- :mod:`app_parts.cg_inputs`: the CG explorer's presets and URL-bound inputs.
"""

import string


def plain(text: str) -> str:
    """``text`` for st.error/st.caption shown as typed: no Markdown, LaTeX or directives.

    Every ASCII punctuation character is backslash-escaped (CommonMark shows an escaped
    punctuation character literally), so user-derived text cannot format itself.
    """
    return "".join("\\" + c if c in string.punctuation else c for c in str(text))
