"""The CG explorer page under Streamlit's AppTest: default example, presets, errors, URL."""

import json
from pathlib import Path

import pytest

from trpo_viz.presets import PRESETS

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

TIMEOUT = 120
APP = str(Path(__file__).resolve().parents[1] / "app.py")


def run_app(**query) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    for name, value in query.items():
        at.query_params[name] = value
    return at.run()


def solution_columns(at: AppTest) -> dict[str, list[float]]:
    table = at.table[0].value
    return {col: [float(v) for v in table[col]] for col in table.columns}


def error_texts(at: AppTest) -> list[str]:
    return [e.value for e in at.error]


def test_default_page_solves_the_source_example():
    at = run_app()
    assert not at.exception
    assert not at.error
    cols = solution_columns(at)
    assert cols["exact H⁻¹g"] == pytest.approx([-0.5625, 6.5625, 3.0], abs=1e-12)
    assert cols["CG solution x_k"] == pytest.approx([-0.5625, 6.5625, 3.0], abs=1e-9)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["iterations"] == "3"
    assert metrics["stop reason"] == "converged"
    charts = at.get("plotly_chart")
    assert len(charts) == 3  # iterates, convergence, spectrum
    spec = json.loads(charts[0].proto.spec)
    assert len(spec["frames"]) == 4
    assert spec["data"][0]["type"] == "scatter3d"


@pytest.mark.parametrize("key", list(PRESETS))
def test_each_preset_runs(key):
    at = run_app()
    at.selectbox(key="preset").set_value(key).run()
    assert not at.exception
    assert not at.error, error_texts(at)
    assert at.text_input(key="expr").value == PRESETS[key].expr or key == "quadratic"
    assert len(at.get("plotly_chart")) >= 2
    if key == "saddle":
        assert any("Non-positive curvature" in w.value for w in at.warning)
    if key == "logistic":
        assert {m.label: m.value for m in at.metric}["stop reason"] == "converged"
        assert int({m.label: m.value for m in at.metric}["HVPs used"]) < 100


def test_kappa_slider_rewrites_the_quadratic():
    at = run_app()
    at.selectbox(key="preset").set_value("quadratic").run()
    before = at.text_input(key="expr").value
    at.slider(key="kappa").set_value(400.0).run()
    assert not at.exception
    assert at.text_input(key="expr").value != before
    assert any("Condition number κ = **400**" in m.value for m in at.markdown)


def test_syntax_error_shows_an_error_and_no_exception():
    at = run_app()
    at.text_input(key="expr").set_value("x1**2 +* x2").run()
    assert not at.exception
    assert at.error
    assert "column" in " ".join(error_texts(at)).lower()
    assert not at.get("plotly_chart")


def test_unknown_function_is_an_error():
    at = run_app(expr="frobnicate(x1) + x2**2", theta="1,1", g="1,1")
    assert not at.exception
    assert any("frobnicate" in t for t in error_texts(at))


def test_wrong_length_vector_shows_an_error():
    at = run_app()
    at.text_input(key="g").set_value("1, 2").run()
    assert not at.exception
    assert any("n = 3" in t for t in error_texts(at))


def test_non_finite_vector_is_refused():
    at = run_app(theta="1, nan, 2")
    assert not at.exception
    assert any("finite" in t for t in error_texts(at))


def test_singular_hessian_is_explained():
    at = run_app(expr="(x1 + x2)**2", theta="0,0", g="1,1")
    assert not at.exception
    assert any("singular" in w.value for w in at.warning)


def test_query_parameters_fill_the_inputs():
    at = run_app(expr="x1**2 + 3*x2**2", theta="1,1", g="2,6", damping="0.5", iters="1",
                 tol="1e-08", dtype="float32", hvp="forward")
    assert not at.exception
    assert not at.error, error_texts(at)
    assert at.text_input(key="expr").value == "x1**2 + 3*x2**2"
    assert at.text_input(key="g").value == "2,6"
    assert at.number_input(key="damping").value == 0.5
    assert at.number_input(key="iters").value == 1
    assert at.radio(key="dtype").value == "float32"
    assert at.radio(key="hvp").value == "forward"
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["iterations"] == "1"
    assert "exact (H+λI)⁻¹g" in at.table[0].value.columns


def test_invalid_query_values_show_errors_not_a_crash():
    at = run_app(damping="abc", iters="100000", dtype="float16")
    assert not at.exception
    texts = " ".join(error_texts(at))
    assert "damping" in texts and "iters" in texts and "dtype" in texts
    # the rest of the page still works with the defaults
    assert solution_columns(at)["exact H⁻¹g"] == pytest.approx([-0.5625, 6.5625, 3.0])


def test_huge_dimension_is_refused():
    at = run_app(expr="x20000**2", theta="1", g="1")
    assert not at.exception
    assert at.error
