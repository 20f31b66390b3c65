"""Spectra without forming H: Lanczos (full reorthogonalisation) and Lanczos quadrature.

**Lanczos** (k steps on ``matvec``, one product each) builds an orthonormal basis V_k of
K_k(A, v) and the tridiagonal T_k = V_kᵀAV_k. Each new vector is orthogonalised against
all previous ones (twice, "classical Gram–Schmidt with reorthogonalisation"), so T_k
has no ghost copies of converged eigenvalues. Its eigenpairs (θ_i, y_i) give

* Ritz values θ_i, all inside [λ_min, λ_max]: θ_max ≤ λ_max and θ_min ≥ λ_min, the extreme
  ones converging first;
* residual bounds ‖AV_ky_i − θ_iV_ky_i‖ = β_k|e_kᵀy_i|: some eigenvalue of A lies within
  that distance of θ_i;
* a condition estimate θ_max/θ_min, a lower bound on κ(A) = λ_max/λ_min for positive
  definite A (it is ``inf`` when θ_min ≤ 0: A is not positive definite).

**Stochastic Lanczos quadrature** (Golub & Meurant; Ubaru, Chen & Saad 2017) estimates
the spectral density φ(t) = (1/n) Σ_i δ(t − λ_i). For a start v = z/√n with z Rademacher,
vᵀf(A)v = Σ_i (v·u_i)² f(λ_i), and k-step Lanczos from v turns this into the Gauss
quadrature Σ_j τ_j f(θ_j) with nodes θ_j (Ritz values) and weights τ_j = (e_1ᵀy_j)² (they
sum to 1), exact for polynomials f of degree ≤ 2k − 1. Averaging over m starts and
replacing each node by a Gaussian of width σ gives a density that integrates to 1 and
whose mean and second moment are Hutchinson estimates of tr(A)/n and tr(A²)/n (plus σ²
for the second moment).

:class:`Lanczos` compiles the loop once per operator; :func:`estimate_spectrum` returns a
plain dataclass with ``to_dict()``; the density estimate is :func:`trpo_viz.slq.slq_density`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import tensorflow as tf
from scipy.linalg import eigh_tridiagonal

from trpo_viz.cg import Matvec, dot
from trpo_viz.inputs import InputError
from trpo_viz.serialize import to_jsonable

DEFAULT_STEPS = 30
MAX_STEPS = 500  # Lanczos steps one request may ask for
EXACT_COMPARE_N = 2000  # compare with numpy.linalg.eigvalsh of the explicit H up to this n
EXTREMES = 5  # Ritz values reported at each end
MAX_BASIS_BYTES = 1 << 30  # the (k+1) × n Lanczos basis one run may hold


def lanczos_loop(
    matvec: Matvec, start: tf.Tensor, steps: int | tf.Tensor, record_basis: bool = False
) -> dict[str, tf.Tensor]:
    """Traceable Lanczos with full reorthogonalisation, from ``start`` (any non-zero vector).

    Step j (v_0 = start/‖start‖, β_{−1}v_{−1} = 0):
        w = Av_j,  α_j = v_jᵀw,  w ← w − α_jv_j − β_{j−1}v_{j−1},
        w ← w − V_j(V_jᵀw), twice (V_j = [v_0 … v_j]),  β_j = ‖w‖,  v_{j+1} = w/β_j.
    It stops after ``steps`` steps, or early when β_j ≤ 100·eps·max_i(|α_i| + β_i +
    β_{i−1}) (an invariant subspace: the Ritz values are then eigenvalues of A).

    Returns ``alphas`` [steps], ``betas`` [steps] (β_0 … β_{k−1}, padded), ``steps`` (k
    taken), and with ``record_basis`` ``basis`` [steps + 1, n] (rows v_0 … v_k).
    """
    dtype = start.dtype
    eps = tf.constant(np.finfo(dtype.as_numpy_dtype).eps, dtype)
    steps = tf.cast(steps, tf.int32)
    n = tf.shape(start)[0]
    v = start / tf.norm(start)
    basis = tf.tensor_scatter_nd_update(tf.zeros(tf.stack([steps + 1, n]), dtype), [[0]], [v])
    alphas = tf.TensorArray(dtype, size=steps)
    betas = tf.TensorArray(dtype, size=steps)

    def body(j, v, v_prev, beta_prev, scale, basis, alphas, betas, done):
        w = matvec(v)
        alpha = dot(v, w)
        w = w - alpha * v - beta_prev * v_prev
        for _ in range(2):  # rows of `basis` after v_j are still zero
            w = w - tf.linalg.matvec(basis, tf.linalg.matvec(basis, w), transpose_a=True)
        beta = tf.norm(w)
        scale = tf.maximum(scale, tf.abs(alpha) + beta + beta_prev)
        invariant = (beta <= 100 * eps * scale) | ~tf.math.is_finite(beta)
        v_next = tf.where(invariant, tf.zeros_like(w), w / beta)
        basis = tf.tensor_scatter_nd_update(basis, [[j + 1]], [v_next])
        return (
            j + 1,
            v_next,
            v,
            beta,
            scale,
            basis,
            alphas.write(j, alpha),
            betas.write(j, beta),
            invariant,
        )

    zero = tf.constant(0, dtype)
    j, *_, basis, alphas, betas, _ = tf.while_loop(
        lambda j, *state: (j < steps) & ~state[-1],
        body,
        (tf.constant(0), v, tf.zeros_like(v), zero, zero, basis, alphas, betas, tf.constant(False)),
    )
    out = {"alphas": alphas.stack(), "betas": betas.stack(), "steps": j}
    if record_basis:
        out["basis"] = basis
    return out


@dataclass
class LanczosResult:
    """One Lanczos run: T_k, its eigen-decomposition and what it tells about A.

    Attributes
    ----------
    n : size of A.
    steps : k, steps taken (fewer than asked when an invariant subspace was found).
    alphas, betas : T_k's diagonal α_0 … α_{k−1} and β_0 … β_{k−1}; T_k's off-diagonal is
        ``betas[:-1]`` and β_{k−1} multiplies the residual bounds.
    ritz_values : T_k's eigenvalues, ascending.
    ritz_residual_bounds : β_{k−1}|e_kᵀy_i| for each, in the same order.
    quadrature_weights : τ_i = (e_1ᵀy_i)², the Gauss quadrature weights (sum 1).
    hvps : products with A used (= steps).
    invariant : True when the run stopped early on β ≈ 0.
    basis : [k+1, n] Lanczos vectors when recorded (for tests), else None.
    """

    n: int
    steps: int
    alphas: np.ndarray
    betas: np.ndarray
    ritz_values: np.ndarray
    ritz_residual_bounds: np.ndarray
    quadrature_weights: np.ndarray
    hvps: int
    invariant: bool
    basis: np.ndarray | None = field(default=None, repr=False)

    def largest(self, count: int = EXTREMES) -> tuple[np.ndarray, np.ndarray]:
        """The ``count`` largest Ritz values, largest first, with their residual bounds."""
        order = np.argsort(self.ritz_values)[::-1][:count]
        return self.ritz_values[order], self.ritz_residual_bounds[order]

    def smallest(self, count: int = EXTREMES) -> tuple[np.ndarray, np.ndarray]:
        """The ``count`` smallest Ritz values, smallest first, with their residual bounds."""
        order = np.argsort(self.ritz_values)[:count]
        return self.ritz_values[order], self.ritz_residual_bounds[order]

    @property
    def condition_estimate(self) -> float:
        """θ_max/θ_min: a lower bound on κ(A) when A is positive definite; inf if θ_min ≤ 0."""
        lo, hi = float(self.ritz_values[0]), float(self.ritz_values[-1])
        return hi / lo if lo > 0 else float("inf")


class Lanczos:
    """Compiled Lanczos (full reorthogonalisation) over a fixed symmetric ``matvec``.

    Build once per operator; :meth:`run` with another start, seed or k reuses the graph.
    """

    def __init__(self, matvec: Matvec, record_basis: bool = False):
        self.matvec = matvec
        self.record_basis = record_basis
        self._run = tf.function(
            lambda start, steps: lanczos_loop(self.matvec, start, steps, self.record_basis),
            reduce_retracing=True,
            autograph=False,
        )

    def run(
        self,
        n: int,
        k: int = DEFAULT_STEPS,
        start=None,
        seed: int = 0,
        dtype: tf.DType = tf.float64,
    ) -> LanczosResult:
        """k Lanczos steps on A from ``start`` (default: a Rademacher vector from ``seed``).

        Parameters
        ----------
        n : size of A.
        k : steps (products with A), 1 ≤ k ≤ MAX_STEPS; capped at n (K_n is the whole
            space). Full reorthogonalisation keeps all k + 1 vectors: (k+1)·n entries, at
            most MAX_BASIS_BYTES.
        start : starting vector (length n, non-zero); None draws z ∈ {±1}ⁿ.
        seed : seed for the Rademacher start.
        dtype : dtype of the products (the operator's).

        Returns
        -------
        :class:`LanczosResult`; T_k's eigen-decomposition is done in float64.
        """
        k = check_steps(k, n)
        basis_bytes = (k + 1) * n * dtype.size
        if basis_bytes > MAX_BASIS_BYTES:
            raise InputError(
                f"k = {k} Lanczos vectors of n = {n:,} entries take {basis_bytes / 2**20:,.0f} MiB"
                f" (at most {MAX_BASIS_BYTES / 2**20:,.0f} MiB): choose a smaller k"
            )
        if start is None:
            start = rademacher(n, seed)
        start = np.asarray(start, np.float64)
        if start.shape != (n,) or not np.all(np.isfinite(start)) or not np.any(start):
            raise InputError(f"the Lanczos start must be a finite non-zero vector of length {n}")
        out = self._run(tf.constant(start, dtype), tf.constant(k, tf.int32))
        steps = int(out["steps"])
        alphas = out["alphas"].numpy()[:steps].astype(np.float64)
        betas = out["betas"].numpy()[:steps].astype(np.float64)
        values, vectors = tridiagonal_eigh(alphas, betas[:-1])
        return LanczosResult(
            n=n,
            steps=steps,
            alphas=alphas,
            betas=betas,
            ritz_values=values,
            ritz_residual_bounds=np.abs(betas[-1] * vectors[-1, :]),
            quadrature_weights=vectors[0, :] ** 2,
            hvps=steps,
            invariant=steps < k,
            basis=out["basis"].numpy()[: steps + 1] if "basis" in out else None,
        )


def check_steps(k, n: int) -> int:
    if not isinstance(k, int | np.integer) or not 1 <= k <= MAX_STEPS:
        raise InputError(f"Lanczos steps k must be an integer from 1 to {MAX_STEPS}")
    return min(int(k), n)


def rademacher(n: int, seed: int) -> np.ndarray:
    """z ∈ {−1, +1}ⁿ, each sign equally likely (reproducible from ``seed``)."""
    return np.random.default_rng(seed).choice(np.array([-1.0, 1.0]), size=n)


def tridiagonal_eigh(diagonal: np.ndarray, off_diagonal: np.ndarray):
    """Eigenvalues (ascending) and eigenvectors of a symmetric tridiagonal matrix."""
    if len(diagonal) == 1:
        return diagonal.copy(), np.ones((1, 1))
    return eigh_tridiagonal(diagonal, off_diagonal)


@dataclass
class SpectrumEstimate:
    """Extreme eigenvalues from one Lanczos run (what ``python -m trpo_viz spectrum`` prints).

    ``largest`` (largest first) and ``smallest`` (smallest first) are Ritz values with
    their residual bounds; ``condition_estimate`` is θ_max/θ_min (a lower bound on κ,
    None when θ_min ≤ 0); ``exact_largest``/``exact_smallest`` come from
    ``numpy.linalg.eigvalsh`` of the explicit H when it was formed (n ≤ 2,000).
    """

    n: int
    k: int
    hvps: int
    largest: np.ndarray
    largest_residual_bounds: np.ndarray
    smallest: np.ndarray
    smallest_residual_bounds: np.ndarray
    condition_estimate: float
    ritz_values: np.ndarray
    ritz_residual_bounds: np.ndarray
    invariant: bool
    suggested_damping: float
    exact_largest: np.ndarray | None = None
    exact_smallest: np.ndarray | None = None
    exact_condition: float | None = None

    def to_dict(self) -> dict:
        """JSON keys: ``largest``, ``smallest`` (best first), ``condition_estimate``, ``hvps``, …"""
        return to_jsonable(
            {
                "n": self.n,
                "k": self.k,
                "hvps": self.hvps,
                "largest": self.largest,
                "largest_residual_bounds": self.largest_residual_bounds,
                "smallest": self.smallest,
                "smallest_residual_bounds": self.smallest_residual_bounds,
                "condition_estimate": self.condition_estimate,
                "ritz_values": self.ritz_values,
                "ritz_residual_bounds": self.ritz_residual_bounds,
                "invariant_subspace": self.invariant,
                "suggested_damping": self.suggested_damping,
                "exact_largest": self.exact_largest,
                "exact_smallest": self.exact_smallest,
                "exact_condition": self.exact_condition,
            }
        )


def estimate_spectrum(
    lanczos: Lanczos,
    n: int,
    k: int = DEFAULT_STEPS,
    seed: int = 0,
    dtype: tf.DType = tf.float64,
    count: int = EXTREMES,
    hessian: np.ndarray | None = None,
) -> SpectrumEstimate:
    """Extreme eigenvalues of A by k Lanczos steps (k products), compared with the exact
    spectrum when the explicit ``hessian`` is given."""
    result = lanczos.run(n, k, seed=seed, dtype=dtype)
    largest, largest_bounds = result.largest(count)
    smallest, smallest_bounds = result.smallest(count)
    estimate = SpectrumEstimate(
        n=n,
        k=result.steps,
        hvps=result.hvps,
        largest=largest,
        largest_residual_bounds=largest_bounds,
        smallest=smallest,
        smallest_residual_bounds=smallest_bounds,
        condition_estimate=result.condition_estimate,
        ritz_values=result.ritz_values,
        ritz_residual_bounds=result.ritz_residual_bounds,
        invariant=result.invariant,
        suggested_damping=positive_definite_damping(
            float(smallest[0]), float(largest[0]), float(smallest_bounds[0])
        ),
    )
    if hessian is not None:
        eigenvalues = np.linalg.eigvalsh(np.asarray(hessian, np.float64))
        estimate.exact_largest = eigenvalues[::-1][:count]
        estimate.exact_smallest = eigenvalues[:count]
        lo, hi = eigenvalues[0], eigenvalues[-1]
        estimate.exact_condition = float(hi / lo) if lo > 0 else float("inf")
    return estimate


def positive_definite_damping(
    smallest: float, largest: float, residual_bound: float = 0.0, margin: float = 1e-3
) -> float:
    """A damping λ ≥ 0 that puts the smallest eigenvalue of H + λI at margin·|λ_max| or above.

    With the exact λ_min (small n) the result is guaranteed: λ = max(0, margin·s − λ_min),
    s = max(|λ_max|, |λ_min|). With a Lanczos estimate, θ_min − (its residual bound) is
    used instead; since θ_min ≥ λ_min always, an eigenvalue Lanczos has not found yet can
    still lie below it, so the suggestion is an estimate, and CG on H + λI reports
    negative curvature again if it was not enough.
    """
    scale = max(abs(largest), abs(smallest))
    if scale == 0 or not np.isfinite(scale):
        return 0.0 if scale == 0 else float("nan")
    floor = margin * scale
    return max(0.0, floor - (smallest - abs(residual_bound)))


def hessian_spectrum(
    op,
    theta,
    k: int = DEFAULT_STEPS,
    seed: int = 0,
    compare_exact: bool = True,
    count: int = EXTREMES,
) -> SpectrumEstimate:
    """Extreme eigenvalues of H(θ) for an :class:`~trpo_viz.hessian_operator.ObjectiveHessian`.

    k Lanczos products at θ (in the operator's dtype); with ``compare_exact`` and
    n ≤ ``EXACT_COMPARE_N`` also the exact extremes from the explicit H (n more products
    and an O(n³) eigensolve). What ``python -m trpo_viz spectrum`` needs.
    """
    with op.at(theta):
        hessian = op.explicit() if compare_exact and op.n <= EXACT_COMPARE_N else None
        return estimate_spectrum(
            op.lanczos, op.n, k, seed=seed, dtype=op.dtype, count=count, hessian=hessian
        )
