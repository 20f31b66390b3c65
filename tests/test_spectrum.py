"""Lanczos with full reorthogonalisation and stochastic Lanczos quadrature against numpy."""

import json

import numpy as np
import pytest
import tensorflow as tf

from trpo_viz.cg import ConjugateGradient
from trpo_viz.curvature import negative_curvature_advice
from trpo_viz.hessian_operator import ObjectiveHessian
from trpo_viz.inputs import InputError
from trpo_viz.slq import slq_density
from trpo_viz.spectrum import (
    Lanczos,
    estimate_spectrum,
    positive_definite_damping,
    rademacher,
)

N = 60


@pytest.fixture(scope="module")
def operator():
    matrix = tf.Variable(tf.zeros((N, N), tf.float64))
    lanczos = Lanczos(lambda v: tf.linalg.matvec(matrix, v), record_basis=True)

    def with_matrix(a):
        matrix.assign(a)
        return lanczos

    return with_matrix


def _symmetric(seed, eigenvalues):
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.normal(size=(len(eigenvalues), len(eigenvalues))))
    return q @ np.diag(eigenvalues) @ q.T, q


def test_lanczos_basis_stays_orthonormal_and_projects_a(operator):
    """A spectrum with a few well-separated large eigenvalues: plain Lanczos would lose
    orthogonality as soon as they converge; full reorthogonalisation keeps VᵀV = I."""
    eigenvalues = np.r_[np.linspace(1, 2, N - 3), 50.0, 80.0, 100.0]
    a, _ = _symmetric(0, eigenvalues)
    k = 40
    result = operator(a).run(N, k, seed=1)
    v = result.basis[:k]
    assert result.steps == k and result.hvps == k and not result.invariant
    np.testing.assert_allclose(v @ v.T, np.eye(k), atol=1e-12)
    t = np.diag(result.alphas) + np.diag(result.betas[:-1], 1) + np.diag(result.betas[:-1], -1)
    np.testing.assert_allclose(v @ a @ v.T, t, atol=1e-10 * 100)
    # No ghosts: each converged large eigenvalue appears once.
    assert np.sum(np.abs(result.ritz_values - 100.0) < 1e-6) == 1


@pytest.mark.parametrize("seed", range(3))
def test_every_ritz_value_has_an_eigenvalue_within_its_bound(operator, seed):
    eigenvalues = np.r_[-3.0, np.geomspace(0.01, 10.0, N - 1)]
    a, _ = _symmetric(seed, eigenvalues)
    result = operator(a).run(N, 20, seed=seed)
    distance = np.min(np.abs(result.ritz_values[:, None] - eigenvalues[None, :]), axis=1)
    assert np.all(distance <= result.ritz_residual_bounds * (1 + 1e-6) + 1e-10)
    # Ritz values lie inside [λ_min, λ_max], the extremes converge first.
    assert eigenvalues.min() - 1e-12 <= result.ritz_values[0]
    assert result.ritz_values[-1] <= eigenvalues.max() + 1e-12
    largest, largest_bounds = result.largest(2)
    assert largest[0] >= largest[1] and abs(largest[0] - 10.0) <= largest_bounds[0] + 1e-12
    assert largest_bounds[0] < 1e-6
    smallest, _ = result.smallest(1)
    np.testing.assert_allclose(smallest[0], -3.0, atol=1e-8)  # isolated: found early
    assert result.condition_estimate == float("inf")  # θ_min ≤ 0: not positive definite


def test_condition_estimate_is_a_lower_bound(operator):
    eigenvalues = np.geomspace(0.1, 100.0, N)
    a, _ = _symmetric(3, eigenvalues)
    result = operator(a).run(N, 15)
    assert 1.0 < result.condition_estimate <= 1000.0 * (1 + 1e-12)


def test_start_in_an_invariant_subspace_stops_early_with_exact_eigenvalues(operator):
    eigenvalues = np.linspace(1, 6, N)
    a, q = _symmetric(4, eigenvalues)
    start = q[:, 2] + 2 * q[:, 10] - q[:, 40]
    result = operator(a).run(N, 30, start=start)
    assert result.invariant and result.steps == 3
    np.testing.assert_allclose(result.ritz_values, eigenvalues[[2, 10, 40]], atol=1e-10)
    np.testing.assert_allclose(result.quadrature_weights, np.array([1, 4, 1]) / 6, atol=1e-10)


def test_steps_are_validated_and_capped(operator):
    a, _ = _symmetric(5, np.linspace(1, 2, N))
    lanczos = operator(a)
    assert lanczos.run(N, 500).steps <= N
    with pytest.raises(InputError, match="steps"):
        lanczos.run(N, 0)
    with pytest.raises(InputError, match="start"):
        lanczos.run(N, 5, start=np.zeros(N))
    big = Lanczos(lambda v: v)  # never traced: the size check comes first
    with pytest.raises(InputError, match="smaller k"):
        big.run(2_000_000, 100)


def test_quadrature_of_one_start_is_exact_for_low_degree_moments(operator):
    """Gauss quadrature with k nodes integrates polynomials of degree ≤ 2k − 1 exactly:
    Σ τ_j θ_j^p = vᵀA^p v / vᵀv for p ≤ 2k − 1."""
    eigenvalues = np.geomspace(0.5, 20.0, N)
    a, _ = _symmetric(6, eigenvalues)
    start = np.random.default_rng(7).normal(size=N)
    result = operator(a).run(N, 5, start=start)
    v = start / np.linalg.norm(start)
    np.testing.assert_allclose(np.sum(result.quadrature_weights), 1.0, rtol=1e-12)
    for power in range(0, 10):
        exact = v @ np.linalg.matrix_power(a, power) @ v
        quadrature = np.sum(result.quadrature_weights * result.ritz_values**power)
        np.testing.assert_allclose(quadrature, exact, rtol=1e-9)


def test_slq_density_integrates_to_one_and_matches_the_trace_moments(operator):
    eigenvalues = np.r_[np.linspace(0.1, 1.0, N - 10), np.linspace(4.0, 5.0, 10)]
    a, _ = _symmetric(8, eigenvalues)
    starts = 8
    density = slq_density(operator(a), N, k=12, starts=starts, seed=3, eigenvalues=eigenvalues)
    assert density.hvps == starts * 12
    np.testing.assert_allclose(np.trapezoid(density.density, density.grid), 1.0, atol=1e-3)
    np.testing.assert_allclose(np.trapezoid(density.exact_density, density.grid), 1.0, atol=1e-3)
    # Gaussian broadening keeps the mean and adds σ² to the second moment.
    mean = np.trapezoid(density.grid * density.density, density.grid)
    np.testing.assert_allclose(mean, density.moment(1), rtol=1e-3)
    second = np.trapezoid(density.grid**2 * density.density, density.grid)
    np.testing.assert_allclose(second, density.moment(2) + density.sigma**2, rtol=1e-3)
    # Each start's moments are Hutchinson samples zᵀA^p z / n for its Rademacher z, exactly
    # (Gauss quadrature with 12 nodes is exact for degree ≤ 23) ...
    zs = [rademacher(N, 3 + i) for i in range(starts)]
    for power in (1, 2):
        ap = np.linalg.matrix_power(a, power)
        hutchinson = np.mean([z @ ap @ z for z in zs]) / N
        np.testing.assert_allclose(density.moment(power), hutchinson, rtol=1e-10)
        # ... so unbiased for tr(A^p)/n, with Var = 2(‖A^p‖_F² − Σ_i (A^p)_ii²)/n² per
        # start. 4σ: a deterministic draw (fixed seeds) that Chebyshev allows 1 in 16 to miss.
        std = np.sqrt(2 * (np.sum(ap**2) - np.sum(np.diag(ap) ** 2)) / starts) / N
        assert abs(density.moment(power) - np.trace(ap) / N) <= 4 * std
    # The two-cluster shape: most mass near [0.1, 1], a sixth near [4, 5].
    upper = density.grid > 2.5
    np.testing.assert_allclose(
        np.trapezoid(density.density[upper], density.grid[upper]), 10 / N, atol=0.1
    )
    json.dumps(density.to_dict())


def test_estimate_spectrum_of_the_logistic_regression_preset():
    op = ObjectiveHessian("@logistic_regression", n=150)
    with op.at(np.zeros(150)):
        hessian = op.explicit()
        estimate = estimate_spectrum(op.lanczos, op.n, k=30, hessian=hessian)
    eigenvalues = np.linalg.eigvalsh(hessian)
    assert estimate.hvps == 30 and estimate.k == 30
    np.testing.assert_allclose(estimate.exact_largest, eigenvalues[::-1][:5])
    # The largest eigenvalues are well separated and found to near machine precision.
    np.testing.assert_allclose(estimate.largest[:3], eigenvalues[::-1][:3], rtol=1e-8)
    assert np.all(np.diff(estimate.largest) <= 0) and np.all(np.diff(estimate.smallest) >= 0)
    # The smallest sit in a cluster at l2 = 0.01: θ_min ≥ λ_min and within its bound of one.
    assert estimate.smallest[0] >= eigenvalues[0] - 1e-12
    gap = np.min(np.abs(estimate.smallest[0] - eigenvalues))
    assert gap <= estimate.smallest_residual_bounds[0] + 1e-12
    assert estimate.condition_estimate <= estimate.exact_condition * (1 + 1e-9)
    assert estimate.suggested_damping == 0.0  # already positive definite
    document = json.loads(json.dumps(estimate.to_dict()))
    assert {"largest", "smallest", "condition_estimate", "hvps"} <= set(document)


def test_positive_definite_damping():
    assert positive_definite_damping(1.0, 10.0) == 0.0
    lam = positive_definite_damping(-2.0, 10.0, margin=1e-3)
    assert lam == pytest.approx(2.0 + 1e-2)
    assert positive_definite_damping(-2.0, 10.0, residual_bound=0.5) == pytest.approx(2.5 + 1e-2)


def test_negative_curvature_advice_offers_minres_and_a_working_damping():
    op = ObjectiveHessian("x1**2 - 3*x2**2 + 0.5*x3**2 + x1*x3")
    with op.at([0.0, 0.0, 0.0]):
        hessian = op.explicit()
        g = np.array([1.0, 1.0, 1.0])
        cg = op.suite.cg.solve(g)
        assert cg.stop_reason == "negative_curvature"
        eigenvalues = np.linalg.eigvalsh(hessian)
        advice = negative_curvature_advice(cg, eigenvalues=eigenvalues)
        assert advice.source == "exact" and advice.guaranteed
        assert advice.smallest_eigenvalue == pytest.approx(-6.0)
        assert "MINRES" in advice.explanation and "not positive definite" in advice.explanation
        # The Rayleigh quotient along the refused direction bounds λ_min from above.
        assert eigenvalues[0] <= advice.rayleigh_quotient <= 0
        damped = op.suite.cg.solve(g, damping=advice.suggested_damping, rtol=1e-10)
        assert damped.stop_reason == "converged"
        shifted = hessian + advice.suggested_damping * np.eye(3)
        np.testing.assert_allclose(damped.x, np.linalg.solve(shifted, g), rtol=1e-8)
        # From Lanczos and from CG alone: estimates, not guarantees.
        lanczos = op.lanczos.run(3, 3)
        from_lanczos = negative_curvature_advice(cg, lanczos=lanczos)
        assert from_lanczos.source == "lanczos" and not from_lanczos.guaranteed
        assert from_lanczos.smallest_eigenvalue == pytest.approx(-6.0)  # k = n: exact
        from_cg = negative_curvature_advice(cg)
        assert from_cg.source == "cg" and from_cg.smallest_eigenvalue >= eigenvalues[0] - 1e-12
        json.dumps(from_cg.to_dict())
    converged = ConjugateGradient(lambda v: 2.0 * v).solve([1.0, 2.0])
    assert negative_curvature_advice(converged) is None


def test_hessian_spectrum_in_float32_compares_with_the_exact_one():
    from trpo_viz.spectrum import hessian_spectrum

    op = ObjectiveHessian("x1**4 + x1*x2 + 3*x2**2 - x3**2 + exp(x3)", dtype="float32")
    estimate = hessian_spectrum(op, [1.0, 0.5, 0.0], k=30)
    assert estimate.k == 3 and estimate.hvps == 3  # k capped at n
    exact = np.linalg.eigvalsh([[12.0, 1.0, 0.0], [1.0, 6.0, 0.0], [0.0, 0.0, -1.0]])
    np.testing.assert_allclose(estimate.exact_largest, exact[::-1], rtol=1e-5)
    np.testing.assert_allclose(estimate.largest, exact[::-1], rtol=1e-5)
    assert estimate.condition_estimate == float("inf")
    assert estimate.suggested_damping == pytest.approx(1.0 + 1e-3 * exact[-1], rel=1e-4)
    with pytest.raises(InputError, match="θ must have"):
        hessian_spectrum(op, [1.0, 2.0])
