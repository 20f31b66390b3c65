"""Presets: plain data that the explorer solves, each showing what its lesson says."""

import math

import numpy as np
import pytest

from trpo_viz import presets
from trpo_viz.explorer import CGSettings, CompiledProblem
from trpo_viz.inputs import parse_vector


def solve(inputs: dict):
    problem = CompiledProblem(inputs["expr"], dtype=inputs["dtype"], hvp_mode=inputs["hvp"])
    n = problem.n
    x0 = parse_vector(inputs["x0"], "x0", n) if inputs["x0"] else None
    settings = CGSettings(inputs["damping"], inputs["iters"], inputs["tol"])
    return problem.solve(parse_vector(inputs["theta"], "θ", n),
                         parse_vector(inputs["g"], "g", n), settings, x0=x0)


def test_default_is_the_source_post_example():
    result = solve(presets.DEFAULT_INPUTS)
    assert result.exact == pytest.approx([-0.5625, 6.5625, 3.0])
    assert result.cg.stop_reason == "converged"


@pytest.mark.parametrize("kappa", [1.0, 10.0, 250.0, 1000.0])
def test_rotated_quadratic_has_condition_number_kappa(kappa):
    result = solve(presets.preset_inputs("quadratic", kappa))
    assert result.condition_number == pytest.approx(kappa, rel=1e-8)
    assert result.cg.iterations <= 2
    off_diagonal = result.hessian[0, 1]
    assert (off_diagonal != 0) == (kappa != 1)  # rotated against the axes


@pytest.mark.parametrize("kappa", [0.5, 1e4, math.nan])
def test_rotated_quadratic_refuses_bad_kappa(kappa):
    with pytest.raises(ValueError):
        presets.rotated_quadratic(kappa)


def test_quadratic_steepest_descent_zigzags_more_for_larger_kappa():
    def sd_error(kappa):
        result = solve(presets.preset_inputs("quadratic", kappa))
        start = np.linalg.norm(result.steepest_descent[0] - result.reference)
        return np.linalg.norm(result.steepest_descent[-1] - result.reference) / start

    assert sd_error(100.0) > 0.5 > sd_error(2.0)


def test_rosenbrock_g_is_the_gradient_so_cg_gives_the_newton_step():
    result = solve(presets.preset_inputs("rosenbrock"))
    assert result.g == pytest.approx(result.gradient)
    assert result.cg.x == pytest.approx(np.linalg.solve(result.hessian, result.gradient))


def test_saddle_meets_negative_curvature_and_damping_cures_it():
    inputs = presets.preset_inputs("saddle")
    result = solve(inputs)
    assert result.cg.stop_reason == "negative_curvature"
    assert result.eigenvalues[0] == pytest.approx(-math.sqrt(5))
    damped = solve(inputs | {"damping": 3.0})
    assert damped.cg.stop_reason == "converged"


def test_every_preset_has_a_lesson_and_valid_inputs():
    for key, preset in presets.PRESETS.items():
        assert preset.key == key and preset.lesson and preset.title
        assert set(preset.inputs()) == {"expr", "theta", "g", "damping", "iters", "tol",
                                        "dtype", "hvp", "x0"}


@pytest.mark.parametrize("key", ["source", "quadratic", "rosenbrock"])
def test_presets_converge_in_float32_with_its_default_tolerance(key):
    """The dtype's default tolerance is reachable: float32 converges, and truly so."""
    inputs = presets.preset_inputs(key) | {"dtype": "float32"}
    assert inputs["tol"] is None  # the dtype's default applies
    result = solve(inputs)
    assert result.cg.stop_reason == "converged"
    g = result.g
    true = np.linalg.norm(g - result.hessian @ result.solution)  # float64 reference
    assert true <= 10 * result.settings.tol * np.linalg.norm(g)


def test_preset_expression_follows_kappa_for_the_quadratic_only():
    assert presets.preset_expression("quadratic", 7.0) == presets.rotated_quadratic(7.0)
    assert presets.preset_expression("saddle", 7.0) == presets.PRESETS["saddle"].expr
    assert presets.preset_inputs("quadratic", 7.0)["expr"] == presets.rotated_quadratic(7.0)
