"""Plotly figures from plain dicts, built without plotly's validation.

Validating a figure costs about 15 ms, most of it on the template, and the TRPO page
rebuilds its figures while it trains. The builders here take plain dicts whose
properties are fixed in code; the tests rebuild each figure with validation on
(``go.Figure(fig.to_dict())`` raises on an unknown property or a bad value). Used by
:mod:`trpo_viz.figures.fisher` and :mod:`trpo_viz.figures.variants`.
"""

from __future__ import annotations

import math
import numbers

import plotly.graph_objects as go
import plotly.io as pio

TEMPLATE = "plotly_white"


def finite(value) -> bool:
    """Whether ``value`` is a finite real number (None, NaN, ±Inf and non-numbers are not)."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def log_values(values) -> list:
    """For a log axis: non-positive, non-finite and missing values become gaps (None)."""
    return [float(v) if finite(v) and v > 0 else None for v in values]


def gaps(values) -> list:
    """Missing or non-finite values become gaps (None); the rest stay as they are."""
    return [float(v) if finite(v) else None for v in values]


def scatter(**props) -> dict:
    """A scatter trace as a plain dict (validated by the tests, not on every build)."""
    return {"type": "scatter", **props}


def figure(data: list[dict], layout: dict) -> go.Figure:
    """The figure, built without plotly's per-property validation.

    Validating costs about 15 ms a figure, most of it on the template, and the TRPO page
    rebuilds these while it trains; the properties here are fixed in code, and the tests
    rebuild every figure with validation on (``go.Figure(fig.to_dict())``). Unvalidated,
    a template must be the Template object: plotly.js does not know template names.
    """
    return go.Figure(
        data=data, layout={**layout, "template": pio.templates[TEMPLATE]}, _validate=False
    )


def layout(title: str, height: int, **extra) -> dict:
    """A layout dict: the title at the top, a horizontal legend below, ``extra`` on top."""
    out = {
        "title": {"text": title, "yref": "container", "y": 1.0, "yanchor": "top", "pad": {"t": 12}},
        "height": height,
        "margin": {"l": 60, "r": 20, "t": 60, "b": 50},
        "legend": {"orientation": "h", "y": -0.18, "yanchor": "top", "x": 0},
    }
    out.update(extra)
    return out


def note(text: str, y: float = 0.5, **extra) -> dict:
    """A paper-anchored annotation (a sentence across the chart)."""
    return {
        "text": text,
        "xref": "paper",
        "yref": "paper",
        "x": 0.5,
        "y": y,
        "showarrow": False,
        "font": {"size": 12},
        "align": "center",
        **extra,
    }


def header(sentences: list[str], width: int = 120) -> tuple[dict, int]:
    """Sentences as an annotation above the plot area, and the top margin it needs."""
    lines = "<br>".join(wrap(sentence, width) for sentence in sentences)
    return (
        note(lines, y=1.0, yanchor="bottom", font={"size": 11}),
        48 + 15 * (lines.count("<br>") + 1),
    )


def message_figure(title: str, text: str, height: int = 360) -> go.Figure:
    """No data to draw: hidden axes and the reason in the middle."""
    return figure(
        [],
        layout(
            title,
            height,
            xaxis={"visible": False},
            yaxis={"visible": False},
            annotations=[note(wrap(text), font={"size": 14})],
        ),
    )


def wrap(text: str, width: int = 90) -> str:
    """Plotly annotations do not wrap: break long sentences with <br>."""
    lines, line = [], ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    if line:
        lines.append(line)
    return "<br>".join(lines)


def number(value: float) -> str:
    """A condition number or the like as text: 4 digits, thousands separated, ∞ if infinite."""
    if value is None or not math.isfinite(value):
        return "∞"
    return f"{value:,.0f}" if value >= 1e4 else f"{value:.4g}"
