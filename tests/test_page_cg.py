"""The CG explorer page under Streamlit's AppTest: default example, presets, errors, URL."""

import base64
import json
import re
from pathlib import Path

import numpy as np
import pytest

from trpo_viz.presets import PRESETS, rotated_quadratic

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


def literal(markdown: str) -> str:
    """The text a Markdown body shows where it only uses backslash escapes (CommonMark)."""
    return re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", markdown)


def error_texts(at: AppTest) -> list[str]:
    return [literal(e.value) for e in at.error]


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
    # iterates, convergence, spectrum, H and H⁻¹ heatmaps, Ritz values, p_k, eigencomponents
    assert len(charts) == 8
    spec = json.loads(charts[0].proto.spec)
    assert len(spec["frames"]) == 4
    assert spec["data"][0]["type"] == "scatter3d"
    ritz = json.loads(next(c for c in charts if "Ritz values" in c.proto.spec).proto.spec)
    assert len(ritz["frames"]) == 4  # the Ritz values are animated with the iterates
    downloads = {b.proto.label: b.proto for b in at.get("download_button")}
    assert set(downloads) == {"Download the table (CSV)", "Download the whole trace (JSON)",
                              "Download for slides (.html)"}
    assert all(d.deferred_file_id for d in downloads.values())  # each built on click


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


# ----------------------------------------------------------------------------- hardening


def page_texts(at: AppTest) -> list[str]:
    """Every text the page shows: Markdown, alerts, captions, metrics, table cells."""
    texts = [literal(e.value) for kind in ("markdown", "caption", "error", "warning", "info")
             for e in at.get(kind)]
    texts += [f"{m.label} {m.value}" for m in at.metric]
    for table in list(at.table) + list(at.dataframe):
        texts += [str(v) for v in table.value.to_numpy().ravel()]
    return texts


def assert_no_nan_shown(at: AppTest) -> None:
    for text in page_texts(at):
        assert not re.search(r"\bnan\b|\binf\b", text, re.IGNORECASE), text


@pytest.mark.filterwarnings("error::RuntimeWarning")  # numpy's would reach the server console
@pytest.mark.parametrize(
    "query, expected",
    [
        ({"expr": "log(x1) + x2**2", "theta": "-1, 1", "g": "1, 1"},
         ["f(θ) is not finite at θ"]),
        ({"expr": "sqrt(x1)*x2", "theta": "-4, 1", "g": "1, 1"},
         ["f(θ) is not finite at θ", "the Hessian H = ∇²f(θ) has non-finite entries"]),
        ({"expr": "1/x1 + x2**2", "theta": "0, 1", "g": "1, 1"},
         ["f(θ) is not finite at θ", "the Hessian H = ∇²f(θ) has non-finite entries"]),
        ({"expr": "x1**2 + x2**2", "theta": "1, 1", "g": "1e308"}, ["g's norm overflows"]),
        ({"expr": "x1**2 + x2**2", "theta": "1, 1", "g": "1e308", "dtype": "float32"},
         ["g overflows float32"]),
    ],
)
def test_what_went_wrong_at_theta_is_said_and_nothing_empty_is_drawn(query, expected):
    at = run_app(**query)
    assert not at.exception
    errors = " ".join(error_texts(at)).lower()
    for text in expected:
        assert text.lower() in errors
    assert "float32 overflows sooner" not in errors
    assert not at.get("plotly_chart")  # no chart of NaN, no empty axes
    assert not any("H is not formed" in i.value for i in at.info)
    assert_no_nan_shown(at)


def test_undefined_numbers_show_as_a_dash():
    # H = [[2, 2], [2, 2]] is singular: no exact solution, no relative error, no H⁻¹
    at = run_app(expr="(x1 + x2)**2", theta="0, 0", g="1, 1")
    assert not at.exception
    assert {m.label: m.value for m in at.metric}["final relative error"] == "—"
    trace = at.dataframe[0].value
    assert set(trace["relative error"]) == {"—"}
    assert_no_nan_shown(at)


def test_both_residuals_are_reported():
    at = run_app()
    metrics = {m.label: m.value for m in at.metric}
    recursive = float(metrics["‖r_k‖ (recursive)"])
    true = float(metrics["‖g − (H+λI)x_k‖ (true)"])
    assert 0 <= recursive < 1e-9 and 0 <= true < 1e-9  # tol·‖g‖ = 1.4e-9 on the source example
    assert any("true ‖g − (H+λI)x_k‖" in t for t in page_texts(at))


def test_zero_iterations_survive_in_the_url():
    at = run_app(iters="0")
    assert not at.exception
    assert {m.label: m.value for m in at.metric}["iterations"] == "0"
    assert at.query_params["iters"] == "0"  # not taken for the default and dropped
    # after any other value the default stays "empty" (n): the browser keeps ?iters=0 too
    at.number_input(key="iters").set_value(1).run()
    widget = at.number_input(key="iters")
    assert not widget.proto.HasField("default")
    at.number_input(key="iters").set_value(0).run()
    assert {m.label: m.value for m in at.metric}["iterations"] == "0"


def test_a_fractional_iteration_count_in_the_url_says_what_is_used():
    at = run_app(iters="2.5")
    assert not at.exception
    (message,) = error_texts(at)
    assert "iters='2.5'" in message and "max iterations = 2 is used" in message
    assert {m.label: m.value for m in at.metric}["iterations"] == "2"


def test_url_warnings_go_once_the_user_changes_the_value():
    at = run_app(damping="abc", dtype="float16")
    assert len(at.error) == 2
    assert any("damping λ = 0 is used" in t for t in error_texts(at))
    at.number_input(key="damping").set_value(0.5).run()
    assert [("dtype" in t) for t in error_texts(at)] == [True]
    at.radio(key="dtype").set_value("float32").run()
    assert not at.error


def test_a_presets_lesson_goes_when_its_function_is_replaced():
    at = run_app()
    at.selectbox(key="preset").set_value("saddle").run()
    lesson = PRESETS["saddle"].lesson
    assert any(i.value == lesson for i in at.info)
    at.text_input(key="expr").set_value("x1**2 + x2**2").run()
    assert not at.exception
    assert not any(i.value == lesson for i in at.info)
    assert at.selectbox(key="preset").value is None


def test_errors_are_plain_text_not_markdown():
    at = run_app(expr="__import__('os') + x1", theta="1", g="1")
    assert not at.exception
    (body,) = [e.value for e in at.error]
    assert "__import__" in literal(body)
    markdown_it = pytest.importorskip("markdown_it")  # an independent CommonMark renderer
    html = markdown_it.MarkdownIt().render(body)
    assert "__import__" in html and "<strong>" not in html


def test_the_repeat_hint_only_where_a_length_is_wrong():
    at = run_app(g="1, 2")
    assert any("(a single number is repeated n times)" in t for t in error_texts(at))
    at = run_app(theta="1, nan, 2")
    (message,) = error_texts(at)
    assert "finite" in message and "repeated" not in message


def test_float32_uses_its_own_default_tolerance():
    at = run_app(dtype="float32")
    assert not at.exception
    assert {m.label: m.value for m in at.metric}["stop reason"] == "converged"
    assert any("tol = 1e-05 (the float32 default)" in t for t in page_texts(at))


def test_a_tolerance_beyond_float32_is_shown_as_rounding():
    """κ = 1000 in float32 with tol = 1e-10: no float32 iterate is that accurate."""
    at = run_app(expr=rotated_quadratic(1000.0), theta="0, 0", g="1, 1", dtype="float32",
                 tol="1e-10", iters="50")
    assert not at.exception
    notes = [literal(w.value) for w in at.warning]
    assert any("'Converged' here only says" in n and "rounding, not convergence" in n
               for n in notes)
    spec = json.loads(at.get("plotly_chart")[1].proto.spec)
    assert any(t.get("name") == "below float32's reach: rounding, not convergence"
               for t in spec["data"])
    assert any("rounding, not convergence" in c.value for c in at.caption)


# ----------------------------------------------------------------------------- Krylov view


def chart_specs(at: AppTest) -> list[dict]:
    return [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]


def chart_titled(at: AppTest, start: str, exact: bool = False) -> dict:
    for spec in chart_specs(at):
        title = spec["layout"].get("title", {})
        text = str(title.get("text", "")) if isinstance(title, dict) else ""
        if text == start if exact else text.startswith(start):
            return spec
    raise AssertionError(f"no chart titled {start!r}")


def array(data) -> np.ndarray:
    """A Plotly JSON array: a list, or a typed array {"dtype", "bdata", "shape"}."""
    if isinstance(data, dict):
        flat = np.frombuffer(base64.b64decode(data["bdata"]), dtype=data["dtype"])
        shape = data.get("shape")
        if shape:
            flat = flat.reshape([int(d) for d in str(shape).split(",")])
        return flat.astype(float)
    return np.array([np.nan if v is None else v for v in data], dtype=float) if (
        data and not isinstance(data[0], list)) else np.array(data, dtype=float)


def trace_named(spec: dict, name: str) -> dict:
    return next(t for t in spec["data"] if t.get("name") == name)


def test_krylov_view_draws_ritz_values_over_the_spectrum():
    at = run_app()
    assert not at.exception
    assert any("CG finds the extreme eigenvalues first" in m.value for m in at.markdown)
    ritz = trace_named(chart_titled(at, "Ritz values per iteration"), "Ritz values of T_k")
    ks = array(ritz["y"])
    hessian = np.array([[float(v) for v in row] for row in
                        at.table[1].value.to_numpy()])  # the H table (n ≤ 10)
    final = np.sort(array(ritz["x"])[ks == ks.max()])
    assert final == pytest.approx(np.linalg.eigvalsh(hessian), rel=1e-6)
    heat = chart_titled(at, "Error per eigencomponent")
    assert array(heat["data"][0]["z"]).shape == (3, 4)  # n × (k+1)
    h_map = chart_titled(at, "H", exact=True)
    assert h_map["data"][0]["zmid"] == 0  # diverging scale centred on 0


def test_the_residual_polynomial_follows_the_k_slider():
    at = run_app()
    at.slider(key="krylov_k").set_value(1).run()
    assert not at.exception
    spec = chart_titled(at, "Residual polynomial p_1")
    roots = trace_named(spec, "roots = Ritz values")
    assert len(array(roots["x"])) == 1
    curve = trace_named(spec, "p_1(λ)")
    theta = array(roots["x"])[0]
    lam = array(curve["x"])
    assert array(curve["y"]) == pytest.approx(1 - lam / theta, rel=1e-6, abs=1e-9)


def test_saddle_explains_negative_curvature_and_offers_damping_and_minres():
    at = run_app()
    at.selectbox(key="preset").set_value("saddle").run()
    assert not at.exception
    assert any("What negative curvature means" in m.value for m in at.markdown)
    button = at.button(key="use_damping")
    assert "Use damping λ" in button.label
    at.toggle(key="lineup_on").set_value(True).run()
    assert not at.exception
    lineup = next(s for s in chart_specs(at)
                  if any(t.get("name") == "MINRES" for t in s["data"]))
    minres = [t for t in lineup["data"] if t.get("name") == "MINRES"]
    residuals = array(minres[0]["y"])
    residuals = residuals[np.isfinite(residuals)]
    assert residuals[-1] < 1e-8 * residuals[0]  # MINRES solves the indefinite system
    at.button(key="use_damping").click().run()
    assert not at.exception
    assert at.number_input(key="damping").value > 5 ** 0.5  # H + λI positive definite
    assert {m.label: m.value for m in at.metric}["stop reason"] == "converged"
    assert not any("What negative curvature means" in m.value for m in at.markdown)


def test_lineup_compares_four_methods_on_hvps():
    at = run_app()
    at.toggle(key="lineup_on").set_value(True).run()
    assert not at.exception
    spec = next(s for s in chart_specs(at) if any(t.get("name") == "MINRES" for t in s["data"]))
    names = {t["name"] for t in spec["data"]}
    assert {"CG", "PCG (Jacobi)", "MINRES", "steepest descent"} <= names
    assert spec["layout"]["xaxis"]["title"]["text"] == "HVPs used"
    table = next(d.value for d in at.dataframe if "method" in d.value.columns)
    assert set(table["method"]) >= {"CG", "MINRES", "steepest descent"}


def test_lanczos_spectrum_without_h_on_the_n_1000_preset():
    at = run_app()
    at.selectbox(key="preset").set_value("logistic").run()
    assert not at.exception
    assert any("CG finds the extreme eigenvalues first" in m.value for m in at.markdown)
    assert not [s for s in chart_specs(at)
                if str(s["layout"].get("title", {}).get("text", "")).startswith("Error per")]
    at.button(key="lanczos_run").click().run()
    assert not at.exception, at.exception
    metrics = {m.label: m.value for m in at.metric}
    estimate, exact = float(metrics["κ estimate θ_max/θ_min"]), float(metrics["exact κ"])
    assert estimate <= exact * (1 + 1e-6)  # θ_max ≤ λ_max and θ_min ≥ λ_min
    assert estimate > 0.1 * exact
    assert "SLQ estimate" in {t.get("name") for s in chart_specs(at) for t in s["data"]}


def test_the_n_input_sets_the_dimension_of_a_builtin():
    at = run_app(expr="@logistic_regression", theta="0", g="1", n="50")
    assert not at.exception
    assert not at.error, error_texts(at)
    assert at.number_input(key="n").value == 50
    assert len(at.dataframe[0].value) == 50  # the answer grid: one row per component
    heat = chart_titled(at, "Error per eigencomponent")  # n ≤ 200: drawn
    assert array(heat["data"][0]["z"]).shape[0] == 50


def test_an_n_below_the_expressions_variables_is_an_error():
    at = run_app(expr="x1**2 + x3**2", theta="1, 1, 1", g="1, 1, 1", n="2")
    assert not at.exception
    assert at.error
