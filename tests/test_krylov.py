"""The Krylov view of CG against an independent Lanczos, eigendecompositions and theory."""

import json
from types import SimpleNamespace

import numpy as np
import pytest
import tensorflow as tf

from trpo_viz.cg import ConjugateGradient
from trpo_viz.hvp import HessianVectorProduct
from trpo_viz.krylov import (
    eigencomponent_errors,
    final_ritz_copies,
    krylov_view,
    lanczos_tridiagonal,
    polynomial_from_ritz,
    residual_polynomials,
    ritz_copies,
    ritz_residual_bounds,
    ritz_values,
)

N = 30


def _spd(seed, n=N, kappa=100.0):
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.normal(size=(n, n)))
    eigenvalues = np.geomspace(1.0, kappa, n)
    return q @ np.diag(eigenvalues) @ q.T, eigenvalues, q, rng.normal(size=n)


def _lanczos(a, v, k):
    """Textbook Lanczos on the explicit matrix, float64, full reorthogonalisation."""
    basis = [v / np.linalg.norm(v)]
    alphas, betas = [], []
    for _ in range(k):
        w = a @ basis[-1]
        alphas.append(basis[-1] @ w)
        v_mat = np.array(basis)
        for _ in range(2):
            w = w - v_mat.T @ (v_mat @ w)
        betas.append(np.linalg.norm(w))
        basis.append(w / betas[-1])
    return np.array(alphas), np.array(betas)


@pytest.fixture(scope="module")
def solve():
    matrix = tf.Variable(tf.zeros((N, N), tf.float64))
    solver = ConjugateGradient(lambda v: tf.linalg.matvec(matrix, v))

    def run(a, b, **kwargs):
        matrix.assign(a)
        return solver.solve(b, **kwargs)

    return run


@pytest.mark.parametrize("seed", range(3))
def test_ritz_values_and_bounds_equal_an_independent_lanczos(solve, seed):
    a, _, _, b = _spd(seed)
    k = 8  # well before any Ritz value converges: orthogonality is intact in both
    result = solve(a, b, rtol=0.0, max_iter=k)
    alphas, betas = _lanczos(a, b, k)
    ours = ritz_values(result.alphas, result.betas)
    bounds = ritz_residual_bounds(result.alphas, result.betas)
    scale = np.linalg.norm(a, 2)
    for j in range(1, k + 1):
        t = np.diag(alphas[:j]) + np.diag(betas[: j - 1], 1) + np.diag(betas[: j - 1], -1)
        values, vectors = np.linalg.eigh(t)
        assert len(ours[j - 1]) == j
        np.testing.assert_allclose(ours[j - 1], values, rtol=0, atol=1e-10 * scale)
        np.testing.assert_allclose(
            bounds[j - 1], betas[j - 1] * np.abs(vectors[-1]), rtol=0, atol=1e-9 * scale
        )


def test_tridiagonal_is_the_ldlt_product_of_cg_coefficients():
    alphas = np.array([0.5, 0.25, 2.0])
    betas = np.array([0.3, 0.6, 0.9])
    diagonal, off = lanczos_tridiagonal(alphas, betas)
    lower = np.eye(3) + np.diag(np.sqrt(betas[:2]), -1)
    t = lower @ np.diag(1 / alphas) @ lower.T
    np.testing.assert_allclose(diagonal, np.diag(t))
    np.testing.assert_allclose(off, np.diag(t, 1))
    np.testing.assert_allclose(diagonal, [2.0, 4.0 + 0.3 * 2.0, 0.5 + 0.6 * 4.0])


def test_residual_polynomial_reproduces_the_residuals(solve):
    """r_k = p_k(A) r_0, evaluated through A's eigendecomposition."""
    a, eigenvalues, q, b = _spd(3)
    x0 = np.random.default_rng(9).normal(size=N)
    result = solve(a, b, x0=x0, rtol=0.0, max_iter=10)
    p = residual_polynomials(result.alphas, result.betas, eigenvalues)
    r0 = b - a @ x0
    for k in range(11):
        predicted = q @ (p[k] * (q.T @ r0))
        np.testing.assert_allclose(predicted, result.residuals[k], atol=1e-9 * np.linalg.norm(r0))
    ritz = ritz_values(result.alphas, result.betas)
    grid = np.linspace(0, 110, 57)
    curves = residual_polynomials(result.alphas, result.betas, grid)
    np.testing.assert_array_equal(curves[:, 0], 1.0)  # p_k(0) = 1
    for k in (1, 4, 10):
        np.testing.assert_allclose(
            polynomial_from_ritz(ritz[k - 1], grid), curves[k], rtol=1e-7, atol=1e-9
        )
        # Its roots are the Ritz values.
        assert np.max(np.abs(polynomial_from_ritz(ritz[k - 1], ritz[k - 1]))) < 1e-9


def test_error_per_eigencomponent_is_the_polynomial_at_each_eigenvalue(solve):
    a, eigenvalues, q, b = _spd(4)
    result = solve(a, b, rtol=0.0, max_iter=12)
    x_star = np.linalg.solve(a, b)
    errors = eigencomponent_errors(result.iterates, x_star, q)
    p = residual_polynomials(result.alphas, result.betas, eigenvalues)
    expected = np.abs(p * (q.T @ (result.iterates[0] - x_star)))
    np.testing.assert_allclose(errors, expected, atol=1e-9 * np.linalg.norm(x_star))


def test_extreme_eigenvalues_converge_first_and_ritz_values_interlace(solve):
    a, eigenvalues, _, b = _spd(5)
    result = solve(a, b, rtol=0.0, max_iter=10)
    ritz = ritz_values(result.alphas, result.betas)
    last = ritz[-1]
    # Cauchy interlacing: θ_i^(k+1) ≤ θ_i^(k) ≤ θ_{i+1}^(k+1).
    slack = 1e-9 * eigenvalues[-1]
    for k in range(1, len(ritz)):
        lo, hi = ritz[k], ritz[k - 1]
        assert np.all(lo[:-1] <= hi + slack) and np.all(hi <= lo[1:] + slack)
    # After 10 of 30 steps the top Ritz value is within 1 % of λ_max; the middle ones are
    # nowhere near converged (the error bounds say which is which).
    assert abs(last[-1] - eigenvalues[-1]) < 0.01 * eigenvalues[-1]
    bounds = ritz_residual_bounds(result.alphas, result.betas)[-1]
    assert bounds[-1] < 0.1 * np.max(bounds[1:-1])
    assert np.all(last > 0) and np.all(last <= eigenvalues[-1] * (1 + 1e-12))


def test_krylov_view_on_an_explorer_sized_problem(solve):
    a, eigenvalues, _, b = _spd(6)
    result = solve(a, b, rtol=1e-10)
    view = krylov_view(result, hessian=a, reference=np.linalg.solve(a, b))
    k = result.iterations
    assert view.iterations == k and [len(r) for r in view.ritz_values] == list(range(1, k + 1))
    np.testing.assert_allclose(view.eigenvalues, eigenvalues, rtol=1e-10)
    assert view.residual_polynomials.shape == (k + 1, len(view.grid))
    assert view.grid[0] <= 0 and view.grid[-1] >= eigenvalues[-1]
    assert view.eigencomponent_errors.shape == (k + 1, N)
    assert view.polynomial_at_eigenvalues.shape == (k + 1, N)
    assert view.rejected_ritz_values is None
    document = json.loads(json.dumps(view.to_dict()))
    assert len(document["ritz_values"]) == k
    assert document["ritz_values"][0] == pytest.approx(view.ritz_values[0].tolist())
    # Without H: Ritz values and polynomials still, no heatmap.
    bare = krylov_view(result)
    assert bare.eigenvalues is None and bare.eigencomponent_errors is None
    assert len(bare.ritz_values) == k


def test_krylov_view_with_damping_shows_the_shifted_spectrum(solve):
    a, eigenvalues, _, b = _spd(7, n=N, kappa=10.0)
    result = solve(a, b, damping=2.0, rtol=0.0, max_iter=N)
    view = krylov_view(result, hessian=a, damping=2.0)
    np.testing.assert_allclose(view.eigenvalues, eigenvalues + 2.0, rtol=1e-10)
    np.testing.assert_allclose(view.ritz_values[-1][[0, -1]], eigenvalues[[0, -1]] + 2.0,
                               rtol=1e-8)


def test_negative_curvature_shows_a_non_positive_ritz_value():
    """f = x1² − x2², H = diag(2, −2), g = (2, 1): one step, then p₁ᵀHp₁ ≤ 0."""
    theta = tf.Variable(tf.zeros(2, tf.float64))
    hvp = HessianVectorProduct(lambda: theta[0] ** 2 - theta[1] ** 2, [theta])
    result = ConjugateGradient(hvp).solve([2.0, 1.0])
    assert result.stop_reason == "negative_curvature" and result.iterations == 1
    view = krylov_view(result, hessian=np.diag([2.0, -2.0]))
    assert np.all(view.ritz_values[0] > 0)  # T_1 from the accepted step
    rejected = view.rejected_ritz_values
    assert len(rejected) == 2 and rejected[0] <= 0
    # Two steps span R²: T_2 is H in the Lanczos basis, so its eigenvalues are H's.
    np.testing.assert_allclose(rejected, [-2.0, 2.0], atol=1e-12)


def test_pcg_negative_curvature_ritz_values_are_those_of_the_preconditioned_matrix():
    """A = diag(2, −2), M = |diag A| = 2I: M^{-1/2}AM^{-1/2} = diag(1, −1)."""
    from trpo_viz.jacobi import JacobiPreconditioner
    from trpo_viz.pcg import PreconditionedCG

    a = tf.constant(np.diag([2.0, -2.0]))
    pcg = PreconditionedCG(lambda v: tf.linalg.matvec(a, v))
    result = pcg.solve([2.0, 1.0], JacobiPreconditioner(np.array([2.0, -2.0]), "exact", 2))
    assert result.stop_reason == "negative_curvature" and result.iterations == 1
    np.testing.assert_allclose(krylov_view(result).rejected_ritz_values, [-1.0, 1.0], atol=1e-12)


# ------------------------------------------------------- copies ("ghosts") that rounding makes


def _textbook_cg(a, b, k, dtype):
    """α_j, β_j of plain CG in ``dtype`` (numpy; independent of trpo_viz.cg)."""
    a, r = a.astype(dtype), b.astype(dtype)
    p = r.copy()
    alphas, betas = [], []
    for _ in range(k):
        ap = a @ p
        rr = r @ r
        alpha = rr / (p @ ap)
        r = r - alpha * ap
        beta = (r @ r) / rr
        p = r + beta * p
        alphas.append(float(alpha))
        betas.append(float(beta))
    return np.array(alphas), np.array(betas)


def _three_outliers():
    """100 × 100, eigenvalues 0.01 … 1 (97 of them) and 30, 60, 100: CG finds the three
    outliers within a few steps, and their Ritz values then come back as copies."""
    rng = np.random.default_rng(0)
    eigenvalues = np.concatenate([np.geomspace(1e-2, 1.0, 97), [30.0, 60.0, 100.0]])
    q, _ = np.linalg.qr(rng.normal(size=(100, 100)))
    return q @ np.diag(eigenvalues) @ q.T, eigenvalues, rng.normal(size=100)


def test_rounding_copies_of_converged_ritz_values_are_marked():
    a, eigenvalues, b = _three_outliers()
    alphas, betas = _textbook_cg(a, b, 40, np.float32)
    theta = ritz_values(alphas, betas)[-1]
    bounds = ritz_residual_bounds(alphas, betas, [40])[-1]
    copies = ritz_copies(theta, bounds, float(np.finfo(np.float32).eps))
    for outlier in (30.0, 60.0, 100.0):
        near = np.abs(theta - outlier) <= 1e-4 * outlier
        assert near.sum() >= 3  # float32 CG has found each outlier several times over
        assert (near & ~copies).sum() == 1  # one Ritz value each once the copies are out
    # Only values sitting on an eigenvalue found before are copies: none in the bulk.
    assert np.all(np.min(np.abs(theta[copies][:, None] - [30.0, 60.0, 100.0]), axis=1)
                  <= 1e-4 * 100)


def test_no_copies_without_rounding_or_when_nothing_has_converged_twice():
    a, eigenvalues, b = _three_outliers()
    # Lanczos with full reorthogonalisation: what exact arithmetic gives, no copies.
    diagonal, off = _lanczos(a, b, 40)
    t = np.diag(diagonal) + np.diag(off[:-1], 1) + np.diag(off[:-1], -1)
    theta, vectors = np.linalg.eigh(t)
    bounds = np.abs(off[-1] * vectors[-1, :])
    assert not ritz_copies(theta, bounds, float(np.finfo(np.float64).eps)).any()
    # Float64 CG before it loses orthogonality: no copies either.
    alphas, betas = _textbook_cg(a, b, 8, np.float64)
    theta = ritz_values(alphas, betas)[-1]
    bounds = ritz_residual_bounds(alphas, betas, [8])[-1]
    assert not ritz_copies(theta, bounds, float(np.finfo(np.float64).eps)).any()
    # Hand-made cases: equal values without bounds; two converged values whose intervals
    # overlap (the better converged one stays); overlapping values not converged.
    eps = float(np.finfo(np.float64).eps)
    np.testing.assert_array_equal(ritz_copies([2.0, 1.0, 1.0 + 1e-15], [0, 0, 0], eps),
                                  [False, False, True])
    np.testing.assert_array_equal(ritz_copies([5.0, 5.001, 3.0], [1e-3, 1e-9, 1e-9], eps),
                                  [True, False, False])
    assert not ritz_copies([5.0, 5.1], [0.1, 0.1], eps).any()  # b/θ = 2 %: not converged
    assert not ritz_copies([1.0], [0.0], eps).any() and len(ritz_copies([], [], eps)) == 0


def test_the_copies_of_the_last_ritz_row_and_of_every_row_of_the_view():
    a, eigenvalues, b = _three_outliers()
    alphas, betas = _textbook_cg(a, b, 40, np.float32)
    eps = float(np.finfo(np.float32).eps)
    values, copies = final_ritz_copies(alphas, betas, eps)
    np.testing.assert_allclose(values, ritz_values(alphas, betas)[-1])
    bounds = ritz_residual_bounds(alphas, betas, [40])[-1]
    np.testing.assert_array_equal(copies, ritz_copies(values, bounds, eps))
    assert copies.sum() >= 6  # each outlier found three times or more, kept once
    view = krylov_view(SimpleNamespace(alphas=alphas, betas=betas, stop_reason="max_iter",
                                       iterates=None), eps=eps)
    assert [len(m) for m in view.ritz_copies] == [len(r) for r in view.ritz_values]
    np.testing.assert_array_equal(view.ritz_copies[-1], copies)
    assert not any(m.any() for m in view.ritz_copies[:3])  # nothing has converged twice yet
    assert json.loads(json.dumps(view.to_dict()))["ritz_copies"][-1] == copies.tolist()
    # Without rounding to speak of (float64, 8 steps) there are none; nor without a T_K.
    alphas, betas = _textbook_cg(a, b, 8, np.float64)
    assert not final_ritz_copies(alphas, betas, float(np.finfo(np.float64).eps))[1].any()
    for bad in ([], [np.nan, 1.0], [1.0, -2.0]):
        values, copies = final_ritz_copies(bad, [0.5] * len(bad), eps)
        assert len(values) == len(copies) == 0
