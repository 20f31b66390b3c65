"""The Hessian-free cost lab page under Streamlit's AppTest."""

import base64
import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

PAGE = str(Path(__file__).resolve().parents[1] / "pages" / "cost.py")


def open_page() -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=300)
    at.session_state["entered_through_app"] = True  # as app.py does before running the page
    return at.run()


def array(data) -> np.ndarray:
    if isinstance(data, dict):  # Plotly's typed array
        return np.frombuffer(base64.b64decode(data["bdata"]), dtype=data["dtype"]).astype(float)
    return np.array([np.nan if v is None else v for v in data], dtype=float)


def test_nothing_is_measured_until_asked():
    at = open_page()
    assert not at.exception
    assert not at.get("plotly_chart")
    assert any("Measure" in i.value for i in at.info)


def test_measuring_two_sizes_fits_slopes_and_extrapolates():
    at = open_page()
    at.select_slider(key="cost_n").set_value(300)
    at.number_input(key="cost_k").set_value(5)
    at.button(key="cost_run").click().run()
    assert not at.exception, at.exception
    table = at.dataframe[0].value
    assert len(table) == 2
    assert table["N"].iloc[0] == pytest.approx(100, rel=0.3)  # widths are rounded
    assert table["N"].iloc[1] == pytest.approx(300, rel=0.3)
    assert (table["explicit (s)"] > 0).all() and (table["k = 5 CG (s)"] > 0).all()
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    names = [t.get("name", "") for t in spec["data"]]
    assert any(name.startswith("explicit: form H, solve: extrapolated") for name in names)
    dashed = [t for t in spec["data"] if t.get("name", "").endswith("extrapolated")]
    assert all(t["line"]["dash"] == "dash" for t in dashed)
    assert max(array(dashed[0]["x"])) == pytest.approx(1e6)
    # the drawn memory slope of the CG route is the log-log fit of the table's column
    fit = next(n for n in names if n.startswith("Hessian-free: k CG iterations: memory"))
    slope = np.polyfit(np.log(table["N"]), np.log(table["CG memory (MiB, model)"]), 1)[0]
    assert float(fit.split("N^")[1]) == pytest.approx(slope, abs=0.006)
    assert spec["layout"]["xaxis"]["type"] == "log"
    # a rerun (another widget touched) reuses the measured sizes without a new click
    at.run()
    assert at.get("plotly_chart")


def test_a_new_size_needs_a_new_click():
    at = open_page()
    at.select_slider(key="cost_n").set_value(100)
    at.number_input(key="cost_k").set_value(2)
    at.button(key="cost_run").click().run()
    assert at.get("plotly_chart")
    at.number_input(key="cost_k").set_value(3).run()
    assert not at.get("plotly_chart")
