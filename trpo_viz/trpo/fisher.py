"""The exact natural gradient beside CG: the Fisher matrix built explicitly, its spectrum,
and how far each CG iterate is from the exact solution.

**The Fisher as JᵀMJ.** The Fisher-vector product is the Hessian of the mean KL at θ_old,

    F = mean_s J_sᵀ M_s J_s,   J_s = ∂d(s; θ)/∂θ,   M_s = ∇²_d KL(π_old(·|s) ‖ π_d)|_{d_old},

with d the distribution parameters (logits; or [μ, log σ]) and M_s the distribution's
metric (categorical: diag(p) − ppᵀ; diagonal Gaussian: diag(σ⁻², 2)). Each distribution
factors its metric, M_s = L_s L_sᵀ (``whiten``), so with u_s = L_sᵀ d(s; θ), L held at π_old,

    F = (1/B) Σ_s (∂u_s/∂θ)ᵀ (∂u_s/∂θ) = UᵀU / B,

U the [c·B, n] matrix of per-sample gradients of the c components of u (c = k − 1 for
k logits, whose metric has rank k − 1; 2A for an A-dimensional Gaussian, whose B identical
log σ rows per chunk collapse to one). The rows come from one backward pass per component
on parameters tiled per sample (sample s reads only its own copy, so the gradient of
Σ_s u_{s,j} with respect to the tiled copies *is* the per-sample gradient), in float64.
Tests check F against the explicit Hessian of the mean KL from the FVP, finite
differences of ∇KL and a numpy JᵀMJ.

**Two forms of F.** With m = rows of U below n, F = CᵀC (C = U/√B) is kept as its factor
and never formed: the solve goes through the m × m system (λI + CCᵀ) (Woodbury), and F's
eigenvalues are those of the Gram matrix CCᵀ plus n − m exact zeros. Otherwise F [n, n]
is accumulated chunk by chunk with a symmetric rank-k update (BLAS ``dsyrk``).

**Exact solution and CG's error.** s* = (F + λI)⁻¹ g (``numpy.linalg.solve``, float64),
and for every CG iterate x_k (k = 0 … K, x_0 = 0): ‖x_k − s*‖/‖s*‖, the same in the
(F+λI)-norm ‖e‖_A = √(eᵀ(F+λI)e), and cos(x_k, s*) (undefined at k = 0). The exact TRPO
step is Δ* = √(2δ / s*ᵀ(F+λI)s*) · s*.

**Spectrum.** The eigenvalues of F (ascending). F is positive semi-definite with rank at
most m: eigenvalues with |λ_i| ≤ n·ε·λ_max (numpy's ``matrix_rank`` tolerance) are
float64 rounding of a zero eigenvalue and are recorded as 0, with the floor beside them.
κ(F) = λ_max/λ_min is infinite (None) when F is singular; damping bounds it:
κ(F+λI) = (λ_max + λ)/(λ_min + λ) ≤ 1 + λ_max/λ. For any size, CG's own α, β give Ritz
values of F+λI (:func:`trpo_viz.krylov.ritz_values`, no product with F).

Cost: min(m, n) · n float64 numbers; O(m n min(m, n)) to build and O(min(m, n)³) to solve
and for the eigenvalues. CartPole's 64×64 policy (n = 4,610) on its 1,024 states: m =
1,024, a 38 MB factor and a 1,024 × 1,024 Gram matrix.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import tensorflow as tf
from scipy.linalg.blas import dsyrk

from trpo_viz.krylov import ritz_values
from trpo_viz.trpo.update import first_acceptable

FISHER_CHUNK = 256  # states per compiled call while building F


def per_sample_whitened_jacobian(policy, params, obs, old_dist):
    """U [c·b, n]: rows ∂u_{s,j}/∂θ for the b states of ``obs`` (component-major: all
    states of component 0, then of component 1, …), so that F = UᵀU / b.

    ``params`` are the policy's parameters as tensors (one float dtype, shared by obs and
    old_dist); ``old_dist`` holds π_old's distribution parameters [b, k]; c is the number
    of components of the distribution's ``whiten`` (k − 1 logits; 2A for a Gaussian).
    """
    b = tf.shape(obs)[0]
    tiled = [tf.tile(p[None], tf.concat([[b], tf.ones_like(tf.shape(p))], 0)) for p in params]
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(tiled)
        # params [b, …] with obs [b, 1, d]: each state is evaluated with its own copy.
        d = policy.distribution_params(tiled, obs[:, None, :])[:, 0, :]
        u = policy.distribution.whiten(tf.stop_gradient(old_dist), d)  # [b, c]
        components = [u[:, j] for j in range(u.shape[-1])]  # sliced on the tape
    rows = []
    for component in components:
        grads = tape.gradient(
            component, tiled, unconnected_gradients=tf.UnconnectedGradients.ZERO
        )
        rows.append(tf.concat([tf.reshape(g, [b, -1]) for g in grads], axis=1))
    del tape
    return tf.concat(rows, axis=0)


def _compress(rows: np.ndarray, components: int) -> np.ndarray:
    """Rows [c·b, n] with each component's block of b identical rows r (a Gaussian's
    state-independent log σ) replaced by the one row √b·r: the same UᵀU, b − 1 rows fewer."""
    blocks = rows.reshape(components, -1, rows.shape[1])
    kept = []
    for block in blocks:
        if len(block) > 1 and np.array_equal(block, np.broadcast_to(block[0], block.shape)):
            kept.append(np.sqrt(len(block)) * block[:1])
        else:
            kept.append(block)
    return np.concatenate(kept)


@dataclass
class FisherMatrix:
    """F (float64, undamped) as a factor, F = CᵀC with C [m, n] when m < n, or explicitly.

    The factor form never holds n × n numbers: products, the damped solve and the
    spectrum then go through the m × m Gram matrix CCᵀ, which has F's non-zero
    eigenvalues (F has at least n − m zero eigenvalues, exactly).
    """

    size: int  # n
    factor: np.ndarray | None = None  # C [m, n]
    matrix: np.ndarray | None = None  # F [n, n]
    _gram: np.ndarray | None = field(default=None, repr=False)

    def gram(self) -> np.ndarray:
        """CCᵀ [m, m] (factor form only; computed once)."""
        if self._gram is None:
            self._gram = self.factor @ self.factor.T
        return self._gram

    def dense(self) -> np.ndarray:
        """F [n, n] explicitly (n² numbers: for tests and small policies)."""
        if self.matrix is not None:
            return self.matrix
        return self.factor.T @ self.factor

    def product(self, vectors: np.ndarray) -> np.ndarray:
        """F v for each row v of ``vectors`` [r, n] (or one vector [n])."""
        vectors = np.asarray(vectors, np.float64)
        if self.matrix is not None:
            return vectors @ self.matrix  # F is symmetric: (F v)ᵀ = vᵀ F
        return (vectors @ self.factor.T) @ self.factor

    def damped_product(self, damping: float, vectors: np.ndarray) -> np.ndarray:
        """(F + λI) v for each row v of ``vectors``."""
        return self.product(vectors) + damping * np.asarray(vectors, np.float64)

    def solve(self, damping: float, g: np.ndarray) -> np.ndarray:
        """s* = (F + λI)⁻¹ g with ``numpy.linalg.solve``, in float64.

        Factor form (Woodbury): (CᵀC + λI)⁻¹ = (I − Cᵀ(λI + CCᵀ)⁻¹C)/λ, an m × m solve.
        Raises ``numpy.linalg.LinAlgError`` when F + λI is singular (λ = 0, rank F < n).
        """
        g = np.asarray(g, np.float64)
        if self.matrix is not None:
            damped = self.matrix.copy()
            damped[np.diag_indices_from(damped)] += damping
            return np.linalg.solve(damped, g)
        if not damping > 0:
            raise np.linalg.LinAlgError(
                f"F has rank at most {len(self.factor)} < n = {self.size} and λ = 0: "
                "F + λI is singular"
            )
        C = self.factor
        gram = self.gram().copy()
        gram[np.diag_indices_from(gram)] += damping
        return (g - C.T @ np.linalg.solve(gram, C @ g)) / damping

    def eigenvalues(self) -> np.ndarray:
        """F's n eigenvalues, ascending (computed, not yet cleaned of rounding)."""
        if self.matrix is not None:
            return np.linalg.eigvalsh(self.matrix)
        nonzero = np.linalg.eigvalsh(self.gram())
        zeros = np.zeros(max(self.size - len(nonzero), 0))
        return np.sort(np.concatenate([zeros, nonzero]))


class ExactFisher:
    """F = mean_s J_sᵀ M_s J_s at the policy's current parameters, built in float64.

    Build once per policy (the per-chunk function compiles once, and once more for a
    shorter last chunk), then call :meth:`compute` with the states the FVP used.
    """

    def __init__(self, policy, chunk: int = FISHER_CHUNK):
        self.policy = policy
        self.chunk = int(chunk)
        self.size = int(sum(np.prod(v.shape) for v in policy.params))
        self._rows = tf.function(self._rows_graph, reduce_retracing=True)

    def _rows_graph(self, obs):
        params = [tf.cast(v, tf.float64) for v in self.policy.params]
        # π_old recomputed in float64 at the same θ_old (as the float64 FVP does).
        old_dist = tf.stop_gradient(self.policy.distribution_params(params, obs))
        return per_sample_whitened_jacobian(self.policy, params, obs, old_dist)

    def compute(self, obs) -> FisherMatrix:
        """F on the states ``obs`` [B, d]: a factor while it has fewer rows than n."""
        obs = np.asarray(obs, np.float64)
        n, count = self.size, len(obs)
        blocks: list[np.ndarray] = []
        rows_held = 0
        fisher = None
        for start in range(0, count, self.chunk):
            part = obs[start : start + self.chunk]
            rows = self._chunk_rows(part)
            if fisher is None:
                blocks.append(rows)
                rows_held += len(rows)
                if rows_held < n:
                    continue
                fisher = np.zeros((n, n), order="F")
                rows = np.concatenate(blocks)
                blocks = []
            # fisher += rowsᵀ rows (lower triangle); rows.T is Fortran-ordered: no copy.
            fisher = dsyrk(1.0, rows.T, beta=1.0, c=fisher, trans=0, lower=1, overwrite_c=1)
        if fisher is None:
            factor = np.concatenate(blocks) / np.sqrt(count)
            return FisherMatrix(n, factor=factor)
        lower = np.tril(fisher) / count
        return FisherMatrix(n, matrix=lower + np.tril(lower, -1).T)

    def _chunk_rows(self, obs: np.ndarray) -> np.ndarray:
        rows = self._rows(tf.constant(obs)).numpy()
        return _compress(rows, components=len(rows) // len(obs))

    def close(self) -> None:
        self._rows = None


# --- CG against the exact solution ----------------------------------------------------------


def trust_region_scale(fisher: FisherMatrix, damping: float, s: np.ndarray, max_kl: float):
    """β = √(2δ / sᵀ(F+λI)s) (NaN when the quadratic form is not positive)."""
    quadratic = float(s @ fisher.damped_product(damping, s))
    return float(np.sqrt(2.0 * max_kl / quadratic)) if quadratic > 0 else float("nan")


@dataclass
class IterateErrors:
    """CG's iterates x_0 … x_K against s*: each list has K + 1 entries."""

    relative: list[float]  # ‖x_k − s*‖ / ‖s*‖
    relative_fnorm: list[float]  # ‖x_k − s*‖_A / ‖s*‖_A, A = F + λI
    cosines: list[float | None]  # cos(x_k, s*); None where x_k = 0 (always at k = 0)


def iterate_errors(
    fisher: FisherMatrix, damping: float, solution: np.ndarray, iterates: np.ndarray
) -> IterateErrors:
    """How far each CG iterate is from the exact solution s*, in three measures."""
    x = np.atleast_2d(np.asarray(iterates, np.float64))
    errors = x - solution
    s_norm = float(np.linalg.norm(solution))
    s_anorm = float(np.sqrt(solution @ fisher.damped_product(damping, solution)))
    a_norms = np.sqrt(np.maximum(np.sum(errors * fisher.damped_product(damping, errors), 1), 0))
    return IterateErrors(
        relative=[float(v) for v in np.linalg.norm(errors, axis=1) / s_norm],
        relative_fnorm=[float(v) for v in a_norms / s_anorm],
        cosines=[_cosine(xk, solution) for xk in x],
    )


# --- the spectrum ----------------------------------------------------------------------------


@dataclass
class Spectrum:
    """F's eigenvalues (ascending; those at or below ``floor`` in magnitude recorded as 0)."""

    eigenvalues: np.ndarray
    floor: float  # n·ε·λ_max: eigenvalues this small are rounding of a zero eigenvalue
    rank: int  # eigenvalues above the floor
    condition: float  # κ(F) = λ_max/λ_min; inf when F is singular (rank < n)
    condition_damped: float  # κ(F + λI) = (λ_max + λ)/(λ_min + λ)


def fisher_spectrum(fisher: FisherMatrix, damping: float) -> Spectrum:
    """F's eigenvalues and its condition numbers with and without damping.

    F is positive semi-definite: an eigenvalue within n·ε·λ_max of 0 (numpy's
    ``matrix_rank`` tolerance) is float64 rounding of a zero eigenvalue, recorded as 0.
    """
    values = fisher.eigenvalues()
    largest = float(values[-1]) if len(values) else 0.0
    floor = len(values) * float(np.finfo(np.float64).eps) * max(largest, 0.0)
    values = np.where(np.abs(values) <= floor, 0.0, values)
    rank = int(np.count_nonzero(values > floor))
    smallest = float(values[0]) if len(values) else 0.0
    condition = largest / smallest if smallest > 0 else float("inf")
    damped_low = max(smallest, 0.0) + damping
    condition_damped = (largest + damping) / damped_low if damped_low > 0 else float("inf")
    return Spectrum(values, floor, rank, condition, condition_damped)


def final_ritz_values(alphas, betas) -> list[float]:
    """Eigenvalues of T_K from CG's α, β (ascending): Ritz values of F + λI, no FVP needed."""
    if len(alphas) == 0:
        return []
    return [float(v) for v in ritz_values(np.asarray(alphas), np.asarray(betas))[-1]]


# --- one update's comparison, as record fields -------------------------------------------------


def compare_with_exact(
    fisher: FisherMatrix,
    damping: float,
    g: np.ndarray,
    iterates: np.ndarray,
    direction: np.ndarray,
    max_kl: float,
    fractions: np.ndarray,
    evaluate,
) -> dict:
    """The exact-Fisher fields of an :class:`~trpo_viz.trpo.record.UpdateRecord`.

    ``iterates`` [K+1, n] are CG's x_0 … x_K (one row x_0 = 0 when no CG ran),
    ``direction`` the update's step direction (CG's s, or g for the gradient variants),
    ``fractions`` the line search's, and ``evaluate(steps [r, n])`` returns the surrogate
    improvements and mean KLs [r] at θ_old + each step (the line search's own function).
    """
    g = np.asarray(g, np.float64)
    if not (np.all(np.isfinite(g)) and _finite(fisher)):
        return {"exact_fisher_status": "non_finite"}
    try:
        solution = fisher.solve(damping, g)
    except np.linalg.LinAlgError:
        return {"exact_fisher_status": "singular"}
    if not np.all(np.isfinite(solution)):
        return {"exact_fisher_status": "singular"}
    errors = iterate_errors(fisher, damping, solution, iterates)
    spectrum = fisher_spectrum(fisher, damping)
    direction = np.asarray(direction, np.float64)
    step_cosine = _cosine(direction, solution)

    step = trust_region_scale(fisher, damping, solution, max_kl) * solution  # Δ*
    improvements, kls = evaluate(np.asarray(fractions, np.float64)[:, None] * step)
    accepted = first_acceptable(kls, improvements, max_kl)
    return {
        "exact_fisher_status": "computed",
        "cg_exact_errors": errors.relative,
        "cg_exact_errors_fnorm": errors.relative_fnorm,
        "cg_exact_cosines": errors.cosines,
        "exact_step_cosine": step_cosine,
        "exact_expected_improvement": float(g @ step),
        "exact_full_step_improvement": float(improvements[0]),
        "exact_full_step_kl": float(kls[0]),
        "exact_improvement": 0.0 if accepted is None else float(improvements[accepted]),
        "exact_kl": 0.0 if accepted is None else float(kls[accepted]),
        "exact_step_fraction": 0.0 if accepted is None else float(fractions[accepted]),
        "fisher_eigenvalues": [float(v) for v in spectrum.eigenvalues],
        "fisher_eigenvalue_floor": spectrum.floor,
        "fisher_rank": spectrum.rank,
        "fisher_condition": spectrum.condition if np.isfinite(spectrum.condition) else None,
        "fisher_condition_damped": (
            spectrum.condition_damped if np.isfinite(spectrum.condition_damped) else None
        ),
    }


def _finite(fisher: FisherMatrix) -> bool:
    data = fisher.matrix if fisher.matrix is not None else fisher.factor
    return bool(np.all(np.isfinite(data)))


def _cosine(a: np.ndarray, b: np.ndarray) -> float | None:
    norms = float(np.linalg.norm(a)) * float(np.linalg.norm(b))
    value = float(a @ b) / norms if norms > 0 else None
    return value if value is not None and np.isfinite(value) else None
