"""app_parts.live_chart: the chart that redraws in place while a view ticks (its Python side)."""

import json
from pathlib import Path

import plotly
import plotly.graph_objects as go

from app_parts.live_chart import DEFAULT_HEIGHT, component_folder, live_figure


def test_the_component_folder_serves_its_page_and_the_installed_plotly(tmp_path):
    folder = component_folder(tmp_path)
    installed = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    assert (folder / "plotly.min.js").read_bytes() == installed.read_bytes()
    page = (folder / "index.html").read_text()
    assert '<script src="plotly.min.js"></script>' in page and "Plotly.react" in page
    assert "streamlit:componentReady" in page and "streamlit:setFrameHeight" in page
    assert component_folder(tmp_path) == folder  # a second call reuses the copy


def test_a_live_figure_keeps_the_data_and_layout_and_gives_its_height():
    figure = go.Figure(go.Scatter(x=[1, 2, 3], y=[4.0, 5.0, 6.5], name="r"))
    figure.update_layout(height=320, title="t", font=dict(size=11))
    live = live_figure(figure)
    spec = json.loads(live.spec)
    assert live.height == 320 and spec["layout"]["height"] == 320
    assert spec["data"][0]["name"] == "r" and spec["layout"]["title"]["text"] == "t"
    assert spec["layout"]["font"]["size"] == 11 and "family" in spec["layout"]["font"]
    assert spec["layout"]["template"]["layout"]  # a whole template: plotly.js has no names


def test_a_figure_without_height_gets_plotlys_default():
    assert live_figure(go.Figure()).height == DEFAULT_HEIGHT
