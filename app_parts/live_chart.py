"""Charts for views that redraw while a run trains (a Streamlit component; UI, not compute).

``st.plotly_chart`` mounts a new chart whenever its figure changes (the element's identity
hashes the figure), which costs a headless Chromium about 120 ms of CPU per chart. A view
of a training run redraws five charts every second, so this component keeps one Plotly
chart per key and redraws it in place with ``Plotly.react`` (about 40 ms), and skips a
figure it has already drawn. See ``benchmarks/bench_runs.py`` for what it saves.

The figure travels as the JSON string that the page caches once per update, so a view
costs the server one string, not a copy and serialisation of the figure.
"""

from __future__ import annotations

import functools
import os
import shutil
import tempfile
from pathlib import Path
from typing import NamedTuple

import plotly
import plotly.io
import streamlit.components.v1 as components

FRONTEND = Path(__file__).with_name("frontend")
DEFAULT_HEIGHT = 450  # plotly's default figure height, px


def component_folder(root: Path | None = None) -> Path:
    """A folder with the component's index.html and the installed plotly.min.js.

    One per plotly version, in a fresh private temporary folder of this process unless
    ``root`` is given: nothing another user could have prepared is served.
    """
    folder = Path(root or tempfile.mkdtemp(prefix="trpo-viz-live-charts-"))
    folder = folder / f"plotly-{plotly.__version__}"
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(FRONTEND / "index.html", folder / "index.html")
    source = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    target = folder / "plotly.min.js"
    if not target.exists():
        partial = folder / f".plotly.min.js.{os.getpid()}"
        shutil.copyfile(source, partial)
        partial.replace(target)
    return folder


@functools.cache
def _component():
    return components.declare_component("live_plotly", path=str(component_folder()))


@functools.cache
def _look() -> dict:
    """Close to Streamlit's own plotly theme (which only st.plotly_chart applies)."""
    return {"template": plotly.io.templates["plotly_white"].to_plotly_json(),
            "paper_bgcolor": "rgba(0,0,0,0)", "plot_bgcolor": "rgba(0,0,0,0)",
            "font": {"family": '"Source Sans", sans-serif'}}


class LiveFigure(NamedTuple):
    spec: str  # the figure's JSON, as plotly.js takes it
    height: int  # px


def live_figure(figure) -> LiveFigure:
    """The figure as the component draws it, serialised once (cache the result)."""
    spec = figure.to_plotly_json()
    layout = dict(spec.get("layout") or {})
    for name, value in _look().items():
        layout[name] = dict(value, **layout[name]) if name == "font" and name in layout else value
    height = int(layout.setdefault("height", DEFAULT_HEIGHT))
    return LiveFigure(plotly.io.to_json({"data": spec.get("data", []), "layout": layout},
                                        validate=False), height)


def live_plotly_chart(figure: LiveFigure, *, key: str) -> None:
    """Draw ``figure`` (from :func:`live_figure`) in the chart named ``key``, in place."""
    _component()(spec=figure.spec, height=figure.height, key=key, default=None)
