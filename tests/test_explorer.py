"""The explorer's solve (expression → HVP → CG → references) against numpy on explicit matrices."""

import numpy as np
import pytest

from trpo_viz.explorer import MAX_ITER, CGSettings, CompiledProblem
from trpo_viz.inputs import InputError, parse_vector

SOURCE = "x1**3 + 2*x1*x2 + x2**2 - x1 + x3**2"


@pytest.fixture(scope="module")
def source_problem():
    return CompiledProblem(SOURCE)


def test_source_example_end_to_end(source_problem):
    result = source_problem.solve([3, 1, 5], [3, 12, 6])
    np.testing.assert_allclose(result.exact, [-0.5625, 6.5625, 3.0], atol=1e-12)
    np.testing.assert_allclose(result.solution, result.exact, atol=1e-10)
    np.testing.assert_allclose(result.hessian, [[18, 2, 0], [2, 2, 0], [0, 0, 2]])
    assert result.value == pytest.approx(27 + 6 + 1 - 3 + 25)
    np.testing.assert_allclose(result.gradient, [3 * 9 + 2 - 1, 6 + 2, 10])
    assert result.cg.iterations == 3 and result.cg.stop_reason == "converged"
    assert result.relative_errors[0] == pytest.approx(1.0) and result.final_error < 1e-12
    assert np.all(result.a_norm_errors <= result.error_bound + 1e-12)
    np.testing.assert_allclose(result.eigenvalues, np.linalg.eigvalsh(result.hessian))
    np.testing.assert_allclose(result.hessian_inverse @ result.hessian, np.eye(3), atol=1e-12)


def test_damping_compares_iterates_with_the_damped_solution(source_problem):
    result = source_problem.solve([3, 1, 5], [3, 12, 6], CGSettings(damping=0.5))
    h = np.array([[18.0, 2, 0], [2, 2, 0], [0, 0, 2]])
    np.testing.assert_allclose(result.reference, np.linalg.solve(h + 0.5 * np.eye(3), [3, 12, 6]))
    np.testing.assert_allclose(result.exact, [-0.5625, 6.5625, 3.0])
    np.testing.assert_allclose(result.solution, result.reference, atol=1e-10)
    assert result.to_dict()["damped_exact"] == pytest.approx(result.reference.tolist())


def test_solver_is_not_retraced_when_inputs_change(source_problem):
    for theta, g, settings in [
        ([1, 2, 3], [1, 0, 0], CGSettings()),
        ([-2, 0.5, 1], [0, 1, 1], CGSettings(damping=1.0, max_iter=2, tol=1e-4)),
    ]:
        result = source_problem.solve(theta, g, settings)
        h = result.hessian
        if settings.max_iter is None:
            np.testing.assert_allclose(result.solution, np.linalg.solve(h, g), rtol=1e-8)
    assert source_problem.cg._solve.experimental_get_tracing_count() == 1


def test_float32_and_forward_mode_agree_with_float64():
    result64 = CompiledProblem(SOURCE).solve([3, 1, 5], [3, 12, 6])
    result32 = CompiledProblem(SOURCE, dtype="float32", hvp_mode="forward").solve(
        [3, 1, 5], [3, 12, 6], CGSettings(tol=1e-6)
    )
    np.testing.assert_allclose(result32.solution, result64.solution, rtol=1e-4)


def test_indefinite_problem_reports_negative_curvature():
    result = CompiledProblem("x1**2 - x2**2").solve([0, 0], [0, 1])
    assert result.cg.stop_reason == "negative_curvature"
    assert result.condition_number == float("inf")
    np.testing.assert_allclose(result.exact, [0.0, -0.5])  # H is invertible, only indefinite


def test_singular_hessian_has_no_exact_solution():
    result = CompiledProblem("x1**2", n=2).solve([1, 1], [1, 1])
    assert result.exact is None and result.relative_errors is None
    assert result.to_dict()["exact"] is None


def test_builtin_logistic_regression_needs_far_fewer_hvps_than_n():
    problem = CompiledProblem("@logistic_regression", n=200)
    theta = np.zeros(200)
    g = np.ones(200)
    result = problem.solve(theta, g, CGSettings(max_iter=60, tol=1e-6))
    assert result.cg.stop_reason == "converged"
    assert result.cg.matvecs < 200 / 3
    np.testing.assert_allclose(result.solution, np.linalg.solve(result.hessian, g), rtol=1e-4)


@pytest.mark.parametrize(
    "settings, message",
    [
        (CGSettings(max_iter=MAX_ITER + 1), "max iterations"),
        (CGSettings(damping=-1.0), "damping"),
        (CGSettings(tol=float("nan")), "tolerance"),
    ],
)
def test_settings_are_bounded(source_problem, settings, message):
    with pytest.raises(InputError, match=message):
        source_problem.solve([3, 1, 5], [3, 12, 6], settings)


def test_vector_parsing():
    np.testing.assert_array_equal(parse_vector(" 3, -1.5 ,2e1 ", "θ", 3), [3, -1.5, 20])
    np.testing.assert_array_equal(parse_vector("(1, 2)", "θ"), [1, 2])
    np.testing.assert_array_equal(parse_vector("0", "g", 4), np.zeros(4))
    for text, message in [
        ("1,2", "has 2 entries"),
        ("1,x,3", "entry 2"),
        ("1,inf,3", "finite"),
        ("", "empty"),
    ]:
        with pytest.raises(InputError, match=message):
            parse_vector(text, "θ", 3)
