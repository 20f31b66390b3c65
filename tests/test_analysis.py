"""Reference computations in trpo_viz.analysis against hand-derived cases."""

import numpy as np
import pytest

from trpo_viz import analysis


def test_exact_solution_and_singular_detection():
    h = np.array([[18.0, 2, 0], [2, 2, 0], [0, 0, 2]])
    np.testing.assert_allclose(
        analysis.exact_solution(h, np.array([3.0, 12, 6])), [-0.5625, 6.5625, 3.0]
    )
    # Damping: (H + I)⁻¹ on a diagonal matrix divides by (d + 1).
    np.testing.assert_allclose(
        analysis.exact_solution(np.diag([1.0, 3.0]), np.array([2.0, 8.0]), damping=1.0), [1.0, 2.0]
    )
    assert analysis.exact_solution(np.array([[1.0, 1.0], [1.0, 1.0]]), np.ones(2)) is None
    assert analysis.exact_solution(np.array([[np.inf, 0], [0, 1.0]]), np.ones(2)) is None


def test_spectrum_and_condition_number():
    eigenvalues, kappa = analysis.spectrum(np.diag([4.0, 1.0, 2.0]))
    np.testing.assert_allclose(eigenvalues, [1.0, 2.0, 4.0])
    assert kappa == pytest.approx(4.0)
    assert analysis.spectrum(np.diag([1.0, -1.0]))[1] == float("inf")


def test_errors_per_iterate():
    x_star = np.array([3.0, 4.0])
    iterates = np.array([[0.0, 0.0], [3.0, 4.0], [3.0, 0.0]])
    np.testing.assert_allclose(analysis.relative_errors(iterates, x_star), [1.0, 0.0, 0.8])
    a = np.diag([1.0, 4.0])
    # e = (−3, −4): eᵀAe = 9 + 64 = 73; e = (0, −4): 64.
    np.testing.assert_allclose(analysis.a_norm_errors(iterates, x_star, a), [np.sqrt(73), 0.0, 8.0])


def test_cg_bound_formula_and_that_cg_respects_it():
    bound = analysis.cg_error_bound(kappa=9.0, iterations=3, initial_error=1.0)
    np.testing.assert_allclose(bound, 2 * 0.5 ** np.arange(4))  # (√9 − 1)/(√9 + 1) = 1/2
    assert np.all(np.isnan(analysis.cg_error_bound(float("inf"), 2, 1.0)))
    # CG's actual A-norm error (numpy CG) never exceeds the bound.
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.normal(size=(30, 30)))
    a = q @ np.diag(np.linspace(1, 100, 30)) @ q.T
    b = rng.normal(size=30)
    x_star = np.linalg.solve(a, b)
    x, r = np.zeros(30), b.copy()
    p, iterates = r.copy(), [np.zeros(30)]
    for _ in range(15):
        alpha = (r @ r) / (p @ a @ p)
        x, r_new = x + alpha * p, r - alpha * (a @ p)
        p, r = r_new + (r_new @ r_new) / (r @ r) * p, r_new
        iterates.append(x.copy())
    errors = analysis.a_norm_errors(np.array(iterates), x_star, a)
    _, kappa = analysis.spectrum(a)
    assert np.all(errors <= analysis.cg_error_bound(kappa, 15, errors[0]) + 1e-12)


def test_steepest_descent_path_zigzags_towards_the_solution():
    a = np.diag([1.0, 10.0])
    b = np.array([1.0, 1.0])
    path = analysis.steepest_descent_path(a, b, np.zeros(2), steps=300)
    assert len(path) > 5  # an ill-conditioned quadratic takes many steps
    np.testing.assert_allclose(path[-1], [1.0, 0.1], atol=1e-6)
    # Exact line search makes consecutive steps orthogonal.
    steps = np.diff(path, axis=0)
    np.testing.assert_allclose(np.sum(steps[1:] * steps[:-1], axis=1), 0.0, atol=1e-12)


def test_true_residual_norms_by_hand():
    a = np.diag([2.0, 4.0])
    b = np.array([2.0, 4.0])  # x* = (1, 1)
    iterates = np.array([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0]])
    # b − Ax: (2, 4), (0, 4), (0, 0)
    np.testing.assert_allclose(analysis.residual_norms(iterates, a, b), [np.sqrt(20), 4.0, 0.0])


def test_rounding_floor():
    eps = 2.0**-23  # float32
    # no iterate better than 1e-5: a recursive value below 5e-6 describes none of them
    assert analysis.rounding_floor(eps, 10.0, 1e-5) == pytest.approx(5e-6)
    # the true residuals went lower than the dtype resolves: eps·‖g‖ is the floor
    assert analysis.rounding_floor(eps, 10.0, 1e-9) == pytest.approx(10 * eps)
    assert analysis.rounding_floor(eps, 10.0, None) == pytest.approx(10 * eps)
    assert analysis.rounding_floor(eps, 10.0, float("nan")) == pytest.approx(10 * eps)


@pytest.mark.filterwarnings("error")  # numpy's RuntimeWarnings would reach the server console
def test_reference_computations_never_warn_on_overflow():
    huge = np.array([1e308, 1e308])
    a = np.diag([2.0, 2.0])
    iterates = np.array([[0.0, 0.0], [-1e308, 1e308]])
    assert np.all(np.isnan(analysis.relative_errors(iterates, huge)))  # ‖x*‖ overflows
    assert np.isnan(analysis.a_norm_errors(iterates, huge, a)).all()
    assert np.isnan(analysis.residual_norms(iterates, a, huge)).all()
    # the exact solve itself is fine: x* = b/2, computed without any norm
    np.testing.assert_allclose(analysis.exact_solution(a, huge), huge / 2)
    assert analysis.exact_solution(np.diag([1e308, 1e-308]), np.ones(2)) is None  # κ overflows
    path = analysis.steepest_descent_path(a, huge, np.zeros(2), 5)
    assert np.all(np.isfinite(path))  # stops before a value overflows
    assert np.all(np.isnan(analysis.cg_error_bound(4.0, 3, float("inf"))))
    assert analysis.spectrum(np.diag([1e-300, 1e300]))[1] == float("inf")
