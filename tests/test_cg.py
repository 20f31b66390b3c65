"""The traced CG solver against numpy.linalg.solve, scipy.sparse.linalg.cg and theory."""

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.sparse.linalg import cg as scipy_cg

from trpo_viz.cg import ConjugateGradient
from trpo_viz.hvp import HessianVectorProduct


def _matrix_solver(a, dtype=tf.float64, **kwargs):
    a_tensor = tf.constant(a, dtype)
    return ConjugateGradient(lambda v: tf.linalg.matvec(a_tensor, v), **kwargs)


def _random_spd(rng, n, kappa=50.0):
    q, _ = np.linalg.qr(rng.normal(size=(n, n)))
    eigenvalues = np.geomspace(1.0, kappa, n)
    return q @ np.diag(eigenvalues) @ q.T


def test_source_post_example_converges_in_three_iterations():
    """The source post: f = x1³ + 2x1x2 + x2² − x1 + x3², θ = (3, 1, 5), g = (3, 12, 6).

    Exact H⁻¹g = (−0.5625, 6.5625, 3).
    """
    theta = tf.Variable(tf.constant([3.0, 1.0, 5.0], tf.float64))

    def f():
        x1, x2, x3 = tf.unstack(theta)
        return x1**3 + 2 * x1 * x2 + x2**2 - x1 + x3**2

    for mode in ("reverse", "forward"):
        result = ConjugateGradient(HessianVectorProduct(f, [theta], mode)).solve([3.0, 12.0, 6.0])
        assert result.stop_reason == "converged"
        assert result.iterations == 3
        np.testing.assert_allclose(result.x, [-0.5625, 6.5625, 3.0], rtol=0, atol=1e-10)


def _scipy_cg_iterates(a, b, rtol):
    """x_0 = 0, x_1, … as scipy.sparse.linalg.cg computes them (its callback gets x_k, k ≥ 1)."""
    iterates = [np.zeros_like(b)]
    scipy_cg(a, b, rtol=rtol, atol=0.0, maxiter=200, callback=lambda x: iterates.append(x.copy()))
    return np.array(iterates)


def _decisive_tolerance(residual_norms, b_norm, below=1e-6):
    """A relative tolerance at which the iteration count does not depend on rounding.

    k is the first iteration with ‖r_k‖ ≤ below·‖b‖; the tolerance lies halfway (on a
    log scale) between ‖r_k‖ and the smallest earlier ‖r_j‖, so every run that agrees
    with these residuals to a relative 1e-3 stops at k. Residuals of CG are not
    monotone, hence the minimum over all earlier ones. Returns (k, tol, margin).
    """
    k = int(np.argmax(residual_norms <= below * b_norm))
    earlier = residual_norms[:k].min()
    return k, np.sqrt(earlier * residual_norms[k]) / b_norm, np.sqrt(earlier / residual_norms[k])


@pytest.mark.parametrize("seed", range(4))
def test_iterates_equal_scipy_cg(seed):
    """The same mathematics as SciPy's CG: iterates, answer, and where it stops.

    Both run at rtol = 1e-12, near float64's floor (about κ·ε·‖b‖ ≈ 7e-15·‖b‖): there
    the last iteration is decided by rounding (BLAS, summation order), so the iterates
    are compared while the residual is far above the floor, the answers against
    numpy.linalg.solve, and the iteration counts at a tolerance where they are decided.
    """
    rng = np.random.default_rng(seed)
    n = 12
    a = _random_spd(rng, n, kappa=30.0)
    b = rng.normal(size=n)
    b_norm = np.linalg.norm(b)
    reference = _scipy_cg_iterates(a, b, rtol=1e-12)
    solver = _matrix_solver(a)
    ours = solver.solve(b, rtol=1e-12, max_iter=200)

    # Iterates: equal to rounding while ‖b − A x_k‖ ≥ 1e-8‖b‖ (10⁶ above the floor).
    true_norms = np.linalg.norm(b - reference @ a.T, axis=1)
    far = int(np.sum(np.cumprod(true_norms >= 1e-8 * b_norm)))  # length of that prefix
    assert 6 <= far < len(ours.iterates)
    x_scale = np.linalg.norm(np.linalg.solve(a, b))
    np.testing.assert_allclose(
        ours.iterates[:far], reference[:far], rtol=1e-9, atol=1e-12 * x_scale
    )

    # Answers: both at the solution to well within what rtol = 1e-12 promises (κ·1e-12).
    exact = np.linalg.solve(a, b)
    np.testing.assert_allclose(ours.x, exact, rtol=0, atol=1e-9 * x_scale)
    np.testing.assert_allclose(reference[-1], exact, rtol=0, atol=1e-9 * x_scale)

    # Iteration counts: equal at a tolerance that lies well between two residuals.
    k, tol, margin = _decisive_tolerance(true_norms, b_norm)
    assert margin > 1.01, "no decisive tolerance near 1e-6 for this seed"
    stopped = solver.solve(b, rtol=tol, max_iter=200)
    assert stopped.stop_reason == "converged"
    assert stopped.iterations == k == len(_scipy_cg_iterates(a, b, rtol=tol)) - 1


def test_iterations_equal_the_number_of_distinct_eigenvalues():
    """In exact arithmetic CG ends after as many steps as A has distinct eigenvalues.

    A 12×12 matrix with eigenvalues {1, 4, 10} (each four times): after 2 steps the
    residual is far from 0 (no degree-2 polynomial with p(0) = 1 vanishes on three
    points), after 3 it is at float64's rounding floor. A tolerance of 1e-10 lies
    many orders of magnitude from both, so the count 3 is decided by mathematics.
    """
    rng = np.random.default_rng(11)
    q, _ = np.linalg.qr(rng.normal(size=(12, 12)))
    a = q @ np.diag(np.repeat([1.0, 4.0, 10.0], 4)) @ q.T
    b = rng.normal(size=12)
    result = _matrix_solver(a).solve(b, rtol=1e-10, max_iter=12)
    b_norm = np.linalg.norm(b)
    assert result.residual_norms[2] > 1e-3 * b_norm  # far above the tolerance …
    assert result.residual_norms[3] < 1e-13 * b_norm  # … and far below it
    assert result.stop_reason == "converged" and result.iterations == 3
    np.testing.assert_allclose(result.x, np.linalg.solve(a, b), rtol=1e-10)


def test_trace_is_consistent_with_the_recurrences():
    rng = np.random.default_rng(7)
    n = 6
    a = _random_spd(rng, n)
    b = rng.normal(size=n)
    r = _matrix_solver(a).solve(b, rtol=1e-12)
    k = r.iterations
    assert r.iterates.shape == r.residuals.shape == r.directions.shape == (k + 1, n)
    assert len(r.alphas) == len(r.betas) == len(r.curvatures) == k
    np.testing.assert_allclose(r.residuals, b - r.iterates @ a.T, atol=1e-9)
    np.testing.assert_allclose(r.residual_norms, np.linalg.norm(r.residuals, axis=1), rtol=1e-12)
    for i in range(k):
        p = r.directions[i]
        np.testing.assert_allclose(r.curvatures[i], p @ a @ p, rtol=1e-10)
        np.testing.assert_allclose(r.iterates[i + 1], r.iterates[i] + r.alphas[i] * p, atol=1e-12)
        np.testing.assert_allclose(
            r.directions[i + 1], r.residuals[i + 1] + r.betas[i] * p, atol=1e-12
        )
    # Conjugacy: p_iᵀ A p_j = 0 for i ≠ j (up to rounding).
    gram = r.directions[:k] @ a @ r.directions[:k].T
    off_diagonal = gram - np.diag(np.diag(gram))
    assert np.max(np.abs(off_diagonal)) < 1e-8 * np.max(np.diag(gram))


_SOLVERS: dict[int, tuple[tf.Variable, ConjugateGradient]] = {}


def _solver_for_size(n: int, a: np.ndarray) -> ConjugateGradient:
    """One compiled solver per n over a matrix variable, so examples do not retrace."""
    if n not in _SOLVERS:
        matrix = tf.Variable(tf.zeros((n, n), tf.float64))
        _SOLVERS[n] = (matrix, ConjugateGradient(lambda v: tf.linalg.matvec(matrix, v)))
    matrix, solver = _SOLVERS[n]
    matrix.assign(a)
    return solver


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n=st.integers(1, 8),
    seed=st.integers(0, 2**31 - 1),
    # In exact arithmetic any κ works. In float64 a geometric spectrum loses orthogonality:
    # after n = 8 steps the worst relative residual over 30,000 draws was 5e-9 at κ = 100
    # (a rounding-decided pass at rtol = 1e-8), 4e-11 at κ = 30 and 1e-13 at κ = 10.
    log_kappa=st.floats(0.0, 1.0),
)
def test_exact_convergence_in_at_most_n_iterations(n, seed, log_kappa):
    rng = np.random.default_rng(seed)
    a = _random_spd(rng, n, kappa=10.0**log_kappa)
    b = rng.normal(size=n)
    result = _solver_for_size(n, a).solve(b, rtol=1e-8, max_iter=n)
    assert result.stop_reason == "converged"
    assert result.iterations <= n
    np.testing.assert_allclose(result.x, np.linalg.solve(a, b), rtol=1e-6, atol=1e-8)


def test_damping_solves_the_shifted_system():
    rng = np.random.default_rng(1)
    a = _random_spd(rng, 5)
    b = rng.normal(size=5)
    result = _matrix_solver(a).solve(b, damping=0.7, rtol=1e-12)
    np.testing.assert_allclose(result.x, np.linalg.solve(a + 0.7 * np.eye(5), b), rtol=1e-10)


def test_x0_max_iter_and_absolute_tolerance():
    rng = np.random.default_rng(2)
    a = _random_spd(rng, 8, kappa=1e3)
    b = rng.normal(size=8)
    x0 = rng.normal(size=8)
    solver = _matrix_solver(a)
    result = solver.solve(b, x0=x0, max_iter=2, rtol=0.0)
    assert result.stop_reason == "max_iter" and result.iterations == 2
    np.testing.assert_array_equal(result.iterates[0], x0)
    assert result.matvecs == 3  # one for r0 = b − A x0, one per step
    loose = solver.solve(b, atol=1e3)  # ‖b‖ is far below 1e3: converged before any step
    assert loose.stop_reason == "converged" and loose.iterations == 0 and loose.matvecs == 0
    zero = solver.solve(b, max_iter=0)
    assert zero.stop_reason == "max_iter" and zero.iterations == 0


def test_negative_curvature_stops_and_reports():
    """An indefinite Hessian: f = x1² − x2² has H = diag(2, −2)."""
    theta = tf.Variable(tf.zeros(2, tf.float64))
    solver = ConjugateGradient(HessianVectorProduct(lambda: theta[0] ** 2 - theta[1] ** 2, [theta]))
    result = solver.solve([0.0, 1.0])
    assert result.stop_reason == "negative_curvature"
    assert result.iterations == 0
    np.testing.assert_allclose(result.curvatures, [-2.0])  # p0 = g, p0ᵀHp0 = −2
    np.testing.assert_array_equal(result.x, [0.0, 0.0])  # the step was not taken
    # Along a direction mixing both eigenvalues CG takes a step, then meets p1ᵀHp1 ≤ 0.
    mixed = solver.solve([2.0, 1.0])
    assert mixed.stop_reason == "negative_curvature"
    assert mixed.iterations == 1 and len(mixed.curvatures) == 2 and mixed.curvatures[-1] <= 0
    assert np.all(np.isfinite(mixed.x))


def test_breakdown_on_non_finite_products():
    solver = ConjugateGradient(lambda v: v * tf.constant([1.0, np.nan], tf.float64))
    result = solver.solve([1.0, 1.0])
    assert result.stop_reason == "breakdown"
    assert np.all(np.isfinite(result.x))


def test_float32_solves_to_single_precision():
    rng = np.random.default_rng(4)
    a = _random_spd(rng, 10, kappa=10.0)
    b = rng.normal(size=10)
    result = _matrix_solver(a, tf.float32).solve(tf.constant(b, tf.float32), rtol=1e-5)
    assert result.x.dtype == np.float32
    np.testing.assert_allclose(result.x, np.linalg.solve(a, b), rtol=1e-3, atol=1e-4)


def test_compiled_solver_is_reused_across_calls():
    rng = np.random.default_rng(5)
    a = _random_spd(rng, 6)
    solver = _matrix_solver(a)
    for damping, max_iter, tol in [(0.0, 6, 1e-10), (0.5, 3, 1e-6), (1.0, 2, 1e-3)]:
        solver.solve(rng.normal(size=6), damping=damping, max_iter=max_iter, rtol=tol)
    assert solver._solve.experimental_get_tracing_count() == 1
