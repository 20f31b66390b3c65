"""PCG, MINRES, steepest descent and the line-up against scipy, numpy and theory."""

import json

import numpy as np
import pytest
import tensorflow as tf
from scipy.sparse.linalg import cg as scipy_cg
from scipy.sparse.linalg import minres as scipy_minres

from trpo_viz.cg import ConjugateGradient
from trpo_viz.jacobi import DiagonalEstimator, JacobiPreconditioner
from trpo_viz.lineup import METHODS, SolverSuite
from trpo_viz.minres import Minres
from trpo_viz.pcg import PreconditionedCG
from trpo_viz.steepest import SteepestDescent

N = 12


class MatrixOperator:
    """A matvec over a matrix variable: one set of compiled solvers for every test matrix."""

    def __init__(self, n, dtype=tf.float64):
        self.matrix = tf.Variable(tf.zeros((n, n), dtype))
        self.suite = SolverSuite(lambda v: tf.linalg.matvec(self.matrix, v))

    def set(self, a):
        self.matrix.assign(a)
        return self.suite


@pytest.fixture(scope="module")
def op():
    return MatrixOperator(N)


def _random_symmetric(rng, eigenvalues):
    n = len(eigenvalues)
    q, _ = np.linalg.qr(rng.normal(size=(n, n)))
    return q @ np.diag(eigenvalues) @ q.T, q


def _badly_scaled_spd(rng, n=N, kappa=10.0, spread=100.0):
    a, _ = _random_symmetric(rng, np.geomspace(1.0, kappa, n))
    d = np.geomspace(1.0, spread, n)
    return d[:, None] * a * d[None, :]


# ---------------------------------------------------------------- PCG


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("use_x0", [False, True])
def test_pcg_iterates_equal_scipy_cg_with_jacobi_m(op, seed, use_x0):
    rng = np.random.default_rng(seed)
    a = _badly_scaled_spd(rng)
    b = rng.normal(size=N)
    x0 = rng.normal(size=N) if use_x0 else None
    suite = op.set(a)
    pre = suite.jacobi(N, exact_max_n=N)
    assert pre.method == "exact" and pre.hvps == N
    np.testing.assert_allclose(pre.diagonal, np.diag(a), rtol=1e-12)
    theirs = []
    scipy_cg(a, b, x0=x0, rtol=1e-10, atol=0.0, maxiter=200, M=np.diag(1 / np.diag(a)),
             callback=lambda xk: theirs.append(xk.copy()))
    ours = []
    result = suite.pcg.solve(b, pre, x0=x0, rtol=1e-10, max_iter=200, callback=ours.append)
    assert result.stop_reason == "converged"
    m = min(len(ours), len(theirs))
    assert abs(len(ours) - len(theirs)) <= 1  # ‖r‖ < tol (scipy) vs ≤ tol (ours)
    scale = np.linalg.norm(np.linalg.solve(a, b))
    np.testing.assert_allclose(np.array(ours[:m]), np.array(theirs[:m]), rtol=0, atol=1e-8 * scale)
    np.testing.assert_allclose(result.x, np.linalg.solve(a, b), rtol=0, atol=1e-8 * scale)
    assert result.hvps == result.matvecs + N
    assert result.matvecs == result.iterations + int(use_x0)


def test_pcg_with_identity_preconditioner_is_cg(op):
    rng = np.random.default_rng(3)
    a, _ = _random_symmetric(rng, np.geomspace(1, 30, N))
    b = rng.normal(size=N)
    suite = op.set(a)
    identity = JacobiPreconditioner(np.ones(N), "exact", hvps=0)
    for pre in (None, identity):
        # rtol 1e-6 is far above the rounding floor: the stopping iteration is decided by the
        # mathematics, not by the last bits, and the traces agree to well below it.
        p = suite.pcg.solve(b, pre, rtol=1e-6)
        c = suite.cg.solve(b, rtol=1e-6)
        assert p.iterations == c.iterations
        for name in ("alphas", "betas", "iterates", "residuals", "directions", "residual_norms"):
            np.testing.assert_allclose(getattr(p, name), getattr(c, name), rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(p.preconditioned_norms, p.residual_norms, rtol=1e-9)


def test_jacobi_preconditioning_pays_on_a_badly_scaled_matrix(op):
    """κ(DAD) ~ 10⁵ but κ of the Jacobi-scaled matrix is near κ(A) = 10: far fewer steps."""
    rng = np.random.default_rng(4)
    a = _badly_scaled_spd(rng, spread=300.0)
    b = rng.normal(size=N)
    suite = op.set(a)
    pcg = suite.pcg.solve(b, suite.jacobi(N, exact_max_n=N), rtol=1e-8, max_iter=500)
    cg = suite.cg.solve(b, rtol=1e-8, max_iter=500)
    assert pcg.stop_reason == "converged"
    assert pcg.iterations <= N < cg.iterations


def test_pcg_is_compiled_once(op):
    rng = np.random.default_rng(5)
    suite = op.set(_badly_scaled_spd(rng))
    before = suite.pcg._solve.experimental_get_tracing_count()
    for damping, tol in [(0.0, 1e-8), (0.5, 1e-4)]:
        pre = JacobiPreconditioner(rng.uniform(1, 2, N), "exact", hvps=N)
        suite.pcg.solve(rng.normal(size=N), pre, x0=rng.normal(size=N), damping=damping, rtol=tol)
        suite.pcg.solve(rng.normal(size=N), None, damping=damping, rtol=tol, max_iter=3)
    assert suite.pcg._solve.experimental_get_tracing_count() - before <= 1


def test_jacobi_floor_on_indefinite_diagonal():
    pre = JacobiPreconditioner(np.array([4.0, -2.0, 1e-20, 1.0]), "exact", hvps=4)
    inverse, modified = pre.inverse_diagonal()
    assert modified == 2  # the negative and the tiny entry
    np.testing.assert_allclose(inverse, [0.25, 0.5, 1 / (4e-8), 1.0])
    inverse, modified = pre.inverse_diagonal(damping=3.0)  # diag + λ = 7, 1, 3, 4
    assert modified == 0
    np.testing.assert_allclose(inverse, 1 / np.array([7.0, 1.0, 3.0, 4.0]))
    assert "2 non-positive" in pre.describe(2)


def test_hutchinson_diagonal_is_exact_for_a_diagonal_matrix_and_unbiased_otherwise():
    rng = np.random.default_rng(6)
    n = 40
    d = rng.uniform(1, 5, n)
    diagonal_op = DiagonalEstimator(lambda v: tf.constant(d) * v)
    np.testing.assert_allclose(diagonal_op.hutchinson(n, probes=1).diagonal, d, rtol=1e-12)
    a, _ = _random_symmetric(rng, rng.uniform(1, 5, n))
    probes = 64
    estimate = DiagonalEstimator(lambda v: tf.linalg.matvec(tf.constant(a), v)).hutchinson(
        n, probes=probes, seed=3
    )
    assert estimate.hvps == probes and estimate.method == "hutchinson"
    # (z ⊙ Az)_i = A_ii + Σ_{j≠i} A_ij z_i z_j: mean A_ii, variance Σ_{j≠i} A_ij² per probe.
    std = np.sqrt((np.sum(a**2, axis=1) - np.diag(a) ** 2) / probes)
    assert np.all(np.abs(estimate.diagonal - np.diag(a)) <= 5 * std)
    assert not np.allclose(estimate.diagonal, np.diag(a), rtol=1e-6)  # it is an estimate


# ---------------------------------------------------------------- MINRES


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("use_x0", [False, True])
def test_minres_iterates_equal_scipy_minres_on_an_indefinite_matrix(op, seed, use_x0):
    rng = np.random.default_rng(10 + seed)
    eigenvalues = np.concatenate([-np.geomspace(1, 4, 4), np.geomspace(1, 8, N - 4)])
    a, _ = _random_symmetric(rng, eigenvalues)
    b = rng.normal(size=N)
    x0 = rng.normal(size=N) if use_x0 else None
    damping = 0.3
    steps = 8
    theirs = []
    # scipy's x0 residual ignores its `shift`, so give it A + λI itself.
    scipy_minres(a + damping * np.eye(N), b, x0=x0, rtol=1e-15, maxiter=steps,
                 callback=lambda xk: theirs.append(xk.copy()))
    ours = []
    result = op.set(a).minres.solve(b, x0=x0, damping=damping, rtol=0.0, max_iter=steps,
                                    callback=ours.append)
    assert result.stop_reason == "max_iter" and len(ours) == len(theirs) == steps
    scale = np.linalg.norm(np.linalg.solve(a + damping * np.eye(N), b))
    np.testing.assert_allclose(np.array(ours), np.array(theirs), rtol=0, atol=1e-8 * scale)
    assert result.hvps == steps + int(use_x0)


def test_minres_shift_matches_scipy_shift(op):
    rng = np.random.default_rng(13)
    a, _ = _random_symmetric(rng, np.linspace(-3, 5, N))
    b = rng.normal(size=N)
    theirs = []
    scipy_minres(a, b, shift=-0.7, rtol=1e-15, maxiter=6,
                 callback=lambda xk: theirs.append(xk.copy()))
    result = op.set(a).minres.solve(b, damping=0.7, rtol=0.0, max_iter=6)
    np.testing.assert_allclose(result.iterates[1:], np.array(theirs), atol=1e-9)


def test_minres_residuals_are_the_true_ones_and_never_increase(op):
    rng = np.random.default_rng(14)
    a, _ = _random_symmetric(rng, np.concatenate([-np.geomspace(1, 10, 5), np.geomspace(1, 50, 7)]))
    b = rng.normal(size=N)
    result = op.set(a).minres.solve(b, rtol=1e-10, max_iter=200)
    assert result.stop_reason == "converged"
    true = np.linalg.norm(b - result.iterates @ a.T, axis=1)
    np.testing.assert_allclose(
        result.residual_norms, true, rtol=1e-6, atol=1e-9 * np.linalg.norm(b)
    )
    assert np.all(np.diff(result.residual_norms) <= 1e-12 * np.linalg.norm(b))
    np.testing.assert_allclose(result.x, np.linalg.solve(a, b), atol=1e-8)
    assert result.true_residual_norm <= 1e-8 * np.linalg.norm(b)


def test_minres_on_a_singular_inconsistent_system_stops_at_a_least_squares_solution(op):
    rng = np.random.default_rng(15)
    eigenvalues = np.concatenate([[0.0], np.linspace(-4, -1, 4), np.linspace(1, 6, N - 5)])
    a, q = _random_symmetric(rng, eigenvalues)
    b = rng.normal(size=N)
    null_component = abs(q[:, 0] @ b)  # no x reaches below this residual
    result = op.set(a).minres.solve(b, rtol=1e-10, max_iter=200)
    assert result.stop_reason == "least_squares"
    residual = b - a @ result.x
    np.testing.assert_allclose(np.linalg.norm(residual), null_component, rtol=1e-6)
    assert np.linalg.norm(a @ residual) <= 1e-6 * np.linalg.norm(b)
    assert np.linalg.norm(result.x) < 1e3 * np.linalg.norm(np.linalg.pinv(a) @ b)


def test_minres_lanczos_coefficients_give_the_ritz_values(op):
    rng = np.random.default_rng(16)
    a, _ = _random_symmetric(rng, np.linspace(-2, 7, N))
    b = rng.normal(size=N)
    k = 5
    result = op.set(a).minres.solve(b, rtol=0.0, max_iter=k)
    t = np.diag(result.alphas) + np.diag(result.betas[:-1], 1) + np.diag(result.betas[:-1], -1)
    v, _ = np.linalg.qr(np.column_stack([np.linalg.matrix_power(a, j) @ b for j in range(k)]))
    np.testing.assert_allclose(np.linalg.eigvalsh(t), np.linalg.eigvalsh(v.T @ a @ v), atol=1e-9)


def test_minres_zero_rhs_and_exact_start(op):
    rng = np.random.default_rng(17)
    a, _ = _random_symmetric(rng, np.linspace(1, 3, N))
    minres = op.set(a).minres
    zero = minres.solve(np.zeros(N))
    assert zero.stop_reason == "converged" and zero.iterations == 0
    b = rng.normal(size=N)
    exact = minres.solve(b, x0=np.linalg.solve(a, b), atol=1e-12)
    assert exact.stop_reason == "converged" and exact.iterations == 0 and exact.hvps == 1


# ---------------------------------------------------------------- steepest descent


def test_steepest_descent_matches_the_explicit_path_and_kantorovich_bound(op):
    from trpo_viz.analysis import a_norm_errors, steepest_descent_path

    rng = np.random.default_rng(20)
    kappa = 20.0
    a, _ = _random_symmetric(rng, np.linspace(1, kappa, N))
    b = rng.normal(size=N)
    steps = 15
    result = op.set(a).sd.solve(b, rtol=0.0, max_iter=steps)
    assert result.iterations == steps and result.hvps == steps
    np.testing.assert_allclose(
        result.iterates, steepest_descent_path(a, b, np.zeros(N), steps), atol=1e-10
    )
    errors = a_norm_errors(result.iterates, np.linalg.solve(a, b), a)
    bound = ((kappa - 1) / (kappa + 1)) ** np.arange(steps + 1) * errors[0]
    assert np.all(errors <= bound * (1 + 1e-9))
    assert np.all(np.diff(errors) < 0)


def test_steepest_descent_stops_on_negative_curvature(op):
    a = np.diag(np.r_[2.0, -2.0, np.ones(N - 2)])
    b = np.zeros(N)
    b[1] = 1.0
    result = op.set(a).sd.solve(b)
    assert result.stop_reason == "negative_curvature" and result.iterations == 0
    np.testing.assert_allclose(result.curvatures, [-2.0])
    np.testing.assert_array_equal(result.x, np.zeros(N))


def test_solvers_run_in_float32():
    rng = np.random.default_rng(21)
    a, _ = _random_symmetric(rng, np.linspace(1, 10, 8))
    b = rng.normal(size=8)
    matrix = tf.constant(a, tf.float32)
    matvec = lambda v: tf.linalg.matvec(matrix, v)  # noqa: E731
    exact = np.linalg.solve(a, b)
    b32 = tf.constant(b, tf.float32)
    for solver in (Minres(matvec), SteepestDescent(matvec)):
        result = solver.solve(b32, rtol=1e-5, max_iter=400)
        assert result.x.dtype == np.float32
        np.testing.assert_allclose(result.x, exact, rtol=1e-3, atol=1e-3)
    pcg = PreconditionedCG(matvec).solve(b32, DiagonalEstimator(matvec).exact(8, tf.float32),
                                         rtol=1e-5)
    np.testing.assert_allclose(pcg.x, exact, rtol=1e-3, atol=1e-3)


# ---------------------------------------------------------------- line-up


def test_lineup_shares_budget_problem_and_axis(op):
    rng = np.random.default_rng(30)
    a = _badly_scaled_spd(rng, spread=30.0)
    b = rng.normal(size=N)
    suite = op.set(a)
    assert isinstance(suite.cg, ConjugateGradient)  # the one CG of the project
    budget = 20
    lineup = suite.lineup(b, budget, rtol=1e-9, hessian=a, exact_max_n=4, probes=5)
    assert list(lineup.traces) == [*METHODS, "exact"]
    reference = np.linalg.solve(a, b)
    np.testing.assert_allclose(lineup.reference, reference)
    assert lineup.positive_definite
    for key in METHODS:
        trace = lineup.traces[key]
        assert trace.total_hvps <= budget
        assert trace.hvps[-1] == trace.total_hvps
        assert len(trace.hvps) == len(trace.residual_norms) == len(trace.relative_errors)
        np.testing.assert_allclose(trace.relative_errors[0], 1.0)
        assert np.all(np.isfinite(trace.a_norm_errors))
    assert lineup.traces["pcg"].setup_hvps == 5 and lineup.traces["pcg"].hvps[0] == 5
    assert "Hutchinson, 5 probes" in lineup.traces["pcg"].note
    # CG minimises the A-norm error over the Krylov space: never worse than SD at equal HVPs.
    cg, sd = lineup.traces["cg"], lineup.traces["sd"]
    m = min(len(cg.a_norm_errors), len(sd.a_norm_errors))
    assert np.all(cg.a_norm_errors[:m] <= sd.a_norm_errors[:m] * (1 + 1e-9))
    exact = lineup.traces["exact"]
    assert exact.total_hvps == N and exact.hvps.tolist() == [N]
    json.dumps(lineup.to_dict())


def test_lineup_on_an_indefinite_matrix_has_no_a_norm_and_minres_solves_it(op):
    rng = np.random.default_rng(31)
    a, _ = _random_symmetric(rng, np.r_[-1.0, np.linspace(1, 5, N - 1)])
    b = rng.normal(size=N)
    lineup = op.set(a).lineup(b, 40, rtol=1e-10, hessian=a, x0=np.zeros(N))
    assert lineup.positive_definite is False
    assert all(t.a_norm_errors is None for t in lineup.traces.values())
    assert "not positive definite" in lineup.traces["cg"].note
    minres = lineup.traces["minres"]
    assert minres.stop_reason == "converged" and minres.hvps[0] == 1  # x0 given: one product
    assert minres.relative_errors[-1] < 1e-8


def test_lineup_pcg_setup_beyond_budget(op):
    rng = np.random.default_rng(32)
    suite = op.set(_badly_scaled_spd(rng))
    lineup = suite.lineup(rng.normal(size=N), budget=5, methods=("pcg",), exact_max_n=N)
    pcg = lineup.traces["pcg"]
    assert pcg.iterations == 0 and pcg.total_hvps == N and "exceeds the budget" in pcg.note


def test_lineup_rejects_bad_input(op):
    from trpo_viz.inputs import InputError

    suite = op.suite
    with pytest.raises(InputError, match="unknown method"):
        suite.lineup(np.ones(N), 10, methods=("gmres",))
    with pytest.raises(InputError, match="budget"):
        suite.lineup(np.ones(N), 0)


def test_solve_by_method_and_its_json_summary(op):
    from trpo_viz.lineup import result_summary

    rng = np.random.default_rng(40)
    a = _badly_scaled_spd(rng, spread=10.0)
    b = rng.normal(size=N)
    suite = op.set(a)
    summaries = {}
    for method in METHODS:
        result = suite.solve(method, b, max_iter=6, rtol=0.0, exact_max_n=N)
        summary = json.loads(json.dumps(result_summary(method, result)))
        assert summary["method"] == method and summary["iterations"] == 6
        assert len(summary["iterates"]) == 7 and len(summary["residual_norms"]) == 7
        summaries[method] = summary
    assert summaries["pcg"]["hvps"] == 6 + N and summaries["cg"]["hvps"] == 6
    assert summaries["sd"]["ritz_values"] is None
    # CG and MINRES run the same Lanczos process from r_0 = b: the same T_k, the same Ritz
    # values (MINRES from its α, β directly, CG through 1/α_k + β_{k−1}/α_{k−1}, √β_k/α_k).
    for cg_k, minres_k in zip(summaries["cg"]["ritz_values"], summaries["minres"]["ritz_values"],
                              strict=True):
        np.testing.assert_allclose(cg_k, minres_k, rtol=1e-9)
    # PCG's Ritz values are those of the Jacobi-scaled matrix D^{-1/2} A D^{-1/2}.
    d = 1 / np.sqrt(np.diag(a))
    scaled = np.linalg.eigvalsh(d[:, None] * a * d[None, :])
    last = np.array(summaries["pcg"]["ritz_values"][-1])
    assert scaled[0] * (1 - 1e-9) <= last[0] and last[-1] <= scaled[-1] * (1 + 1e-9)
    with pytest.raises(Exception, match="unknown method"):
        suite.solve("bicg", b)


def test_suite_of_a_float32_objective_takes_plain_lists():
    from trpo_viz.hessian_operator import ObjectiveHessian
    from trpo_viz.lineup import result_summary

    op = ObjectiveHessian("x1**2 + x1*x2 + 2*x2**2 + x3**2", dtype="float32")
    with op.at([0.0, 0.0, 0.0]):
        lineup = op.suite.lineup([1.0, 2.0, 3.0], budget=6, methods=("cg", "minres"))
        result = op.suite.solve("pcg", [1.0, 2.0, 3.0])
    exact = np.linalg.solve([[2.0, 1.0, 0.0], [1.0, 4.0, 0.0], [0.0, 0.0, 2.0]], [1.0, 2.0, 3.0])
    for trace in lineup.traces.values():
        np.testing.assert_allclose(trace.x, exact, rtol=1e-5)
    assert result.x.dtype == np.float32 and result.iterations <= 3
    assert result_summary("pcg", result)["hvps"] == 3 + result.iterations  # exact diagonal
    np.testing.assert_allclose(result.x, exact, rtol=1e-5)
