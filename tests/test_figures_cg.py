"""Figure builders of the CG explorer: frames, traces and controls from plain results."""

import json

import numpy as np
import pandas as pd
import pytest

from trpo_viz import explain
from trpo_viz.explorer import CGSettings, CompiledProblem
from trpo_viz.figures import cg as figures
from trpo_viz.presets import SOURCE_EXPR, rotated_quadratic


@pytest.fixture(scope="module")
def source():
    return CompiledProblem(SOURCE_EXPR).solve([3, 1, 5], [3, 12, 6])


@pytest.fixture(scope="module")
def quadratic():
    return CompiledProblem(rotated_quadratic(50.0)).solve([0, 0], [1, 1], x0=np.array([-2, 2.0]))


@pytest.fixture(scope="module")
def saddle():
    return CompiledProblem("x1**2 + x1*x2 - x2**2").solve([0, 0], [1, 0.2])


@pytest.fixture(scope="module")
def wide():
    text = " + ".join(f"{i}*x{i}**2" for i in range(1, 31))
    return CompiledProblem(text).solve(np.zeros(30), np.ones(30), CGSettings(max_iter=7))


def controls(fig):
    layout = fig.layout
    return layout.updatemenus[0], layout.sliders[0]


def check_animation(fig, result):
    k = result.cg.iterations
    assert len(fig.frames) == k + 1
    assert [f.name for f in fig.frames] == [str(i) for i in range(k + 1)]
    menu, slider = controls(fig)
    assert [b.label for b in menu.buttons] == ["▶ Play", "Pause"]
    assert menu.buttons[0].args[0] is None  # play all frames
    assert [s.label for s in slider.steps] == [str(i) for i in range(k + 1)]
    assert [s.args[0][0] for s in slider.steps] == [f.name for f in fig.frames]
    assert slider.active == k
    json.loads(fig.to_json())  # serialisable for st.plotly_chart


def test_contour_figure_for_n2(quadratic):
    fig = figures.iterates_figure(quadratic)
    check_animation(fig, quadratic)
    names = [t.name for t in fig.data]
    assert fig.data[0].type == "contour"
    assert {"CG iterates x_k", "search direction p_k", "steepest descent"} <= set(names)
    assert any(name.startswith("x*") for name in names)
    cg_trace = names.index("CG iterates x_k")
    # the frame for k holds x_0 … x_k
    for k, frame in enumerate(fig.frames):
        path = frame.data[frame.traces.index(cg_trace)]
        assert len(path.x) == k + 1
        assert path.x[-1] == pytest.approx(quadratic.cg.iterates[k][0])
    star = fig.data[names.index(next(n for n in names if n.startswith("x*")))]
    assert (star.x[0], star.y[0]) == pytest.approx(tuple(quadratic.reference))
    # the contour box contains the whole path and the solution
    assert fig.data[0].x[0] <= min(quadratic.cg.iterates[:, 0].min(), quadratic.reference[0])
    assert fig.data[0].y[-1] >= max(quadratic.cg.iterates[:, 1].max(), quadratic.reference[1])


def test_contour_figure_shows_the_negative_curvature_direction(saddle):
    assert saddle.cg.stop_reason == "negative_curvature"
    fig = figures.iterates_figure(saddle)
    check_animation(fig, saddle)
    direction = [t.name for t in fig.data].index("search direction p_k")
    last = fig.frames[-1]
    assert len(last.data[last.traces.index(direction)].x) == 2


def test_path3d_figure_for_n3(source):
    fig = figures.iterates_figure(source)
    check_animation(fig, source)
    assert all(t.type == "scatter3d" for t in fig.data)
    assert fig.data[-1].name == "exact solution x*"
    assert fig.layout.updatemenus[0].buttons[0].args[1]["frame"]["redraw"] is True


def test_components_figure_for_large_n_shows_top_components(wide):
    fig = figures.iterates_figure(wide)
    check_animation(fig, wide)
    assert fig.data[0].type == "bar"
    assert len(fig.data[0].x) == figures.TOP_COMPONENTS
    # the top components by |x*|: x* = 1/(2i) is largest for small i
    assert list(fig.data[0].x) == [f"x{i}" for i in range(1, 21)]
    assert fig.frames[0].data[0].y == pytest.approx(np.zeros(20))


def test_convergence_figure_log_axes_and_bound(source):
    fig = figures.convergence_figure(source)
    names = [t.name for t in fig.data]
    assert names[:4] == ["‖r_k‖ (recursive)", "true ‖g − (H+λI)x_k‖", "relative error",
                         "‖e_k‖_A"]
    assert any(name.startswith("bound") for name in names)
    assert fig.layout.yaxis.type == "log" and fig.layout.yaxis2.type == "log"
    assert len(fig.data[0].y) == source.cg.iterations + 1
    # exact zeros do not break the log axis
    assert all(v is None or v > 0 for v in fig.data[2].y)
    # float64 on a well-conditioned 3×3: the recursive residual never leaves the true one
    assert source.rounding_from is None
    assert not any("rounding" in name for name in names)
    json.loads(fig.to_json())


def test_convergence_figure_shades_the_rounding_part_of_a_float32_curve():
    """float32 with tol = 1e-10: the recursion goes far below what any iterate achieves."""
    result = CompiledProblem("@logistic_regression", n=200, dtype="float32").solve(
        np.zeros(200), np.ones(200), CGSettings(tol=1e-10, max_iter=200))
    assert result.rounding_from is not None
    fig = figures.convergence_figure(result)
    band = next(t for t in fig.data if t.name == "below float32's reach: rounding, not convergence")
    assert max(band.y) == pytest.approx(result.residual_floor)
    # every recursive ‖r_k‖ under the band's top is from the rounding part of the run
    recursive = fig.data[[t.name for t in fig.data].index("‖r_k‖ (recursive)")].y
    below = [k for k, v in enumerate(recursive) if v is not None and v < max(band.y)]
    assert below and min(below) >= result.rounding_from
    assert any(t.mode == "text" and "rounding, not convergence" in t.text[0] for t in fig.data)


def test_convergence_figure_is_none_when_nothing_is_positive():
    result = CompiledProblem("x1**2 + x2**2").solve([1, 1], [0, 0])  # g = 0: x = 0 at once
    assert result.cg.iterations == 0
    assert figures.convergence_figure(result) is None


def test_convergence_figure_explains_an_empty_a_norm_panel():
    # H = diag(2, −2), g = (0, 1): e_0 = −x* = (0, 0.5) has e_0ᵀHe_0 = −0.5 < 0, no A-norm
    result = CompiledProblem("x1**2 - x2**2").solve([0, 0], [0, 1])
    assert np.all(np.isnan(result.a_norm_errors))
    fig = figures.convergence_figure(result)
    assert all(t.xaxis != "x2" for t in fig.data)  # nothing drawn in the right panel …
    assert any("not positive definite" in a.text for a in fig.layout.annotations)  # … but why
    assert fig.layout.yaxis2.visible is False  # and no empty log axis with odd ticks


def test_spectrum_figure(source, saddle):
    fig = figures.spectrum_figure(source)
    assert fig.data[0].y == pytest.approx(list(source.eigenvalues))
    assert fig.layout.yaxis.type == "log"
    assert figures.spectrum_figure(saddle).layout.yaxis.type != "log"


def test_trace_table_columns(saddle, source):
    table = figures.trace_table(source)
    assert table["k"] == [0, 1, 2, 3]
    h = np.array([[18.0, 2, 0], [2, 2, 0], [0, 0, 2]])  # the Hessian by hand
    expected = np.linalg.norm(np.array([3.0, 12, 6]) - source.cg.iterates @ h, axis=1)
    assert table["true ‖g − (H+λI)x_k‖"][:3] == pytest.approx(expected[:3], rel=1e-9)
    assert table["α_k"][:3] == pytest.approx(list(source.cg.alphas))
    assert table["α_k"][3] is None
    saddle_table = figures.trace_table(saddle)
    assert saddle_table["p_kᵀAp_k"][-1] <= 0  # the curvature that stopped CG
    # the downloadable CSV leaves an undefined entry empty: never "nan" or "None"
    csv = pd.DataFrame(saddle_table).to_csv(index=False)
    assert ",," in csv and "nan" not in csv.lower() and "None" not in csv


def test_explanations(source, saddle):
    assert explain.curvature_message(source) is None
    message = explain.curvature_message(saddle)
    assert f"k = {saddle.cg.iterations}" in message and "damping λ > 2.236" in message
    assert "not positive definite" in explain.spectrum_note(saddle)
    assert "3 of n = 3" in explain.spectrum_note(source)
    assert explain.distinct_eigenvalues(np.array([1.0, 1.0, 2.0, 2.0 + 1e-12, 5.0])) == 3
    assert explain.bound_iterations(1.0, 1e-6) == 1
    assert explain.bound_iterations(100.0, 1e-6) == 73
