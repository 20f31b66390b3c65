"""The Krylov view of a CG solve: Ritz values, residual polynomials, error per eigencomponent.

CG is the Lanczos process in disguise, and its α_k, β_k already hold Lanczos's
tridiagonal matrix, so everything here costs no product with A.

**T_k from CG's coefficients.** With r_{j+1} = r_j − α_j A p_j and p_j = r_j + β_{j−1} p_{j−1}
(A is the matrix CG ran on, damping included; β_{−1} = 0):

    A p_j = (r_j − r_{j+1}) / α_j,
    A r_j = A p_j − β_{j−1} A p_{j−1}
          = −(1/α_j) r_{j+1} + (1/α_j + β_{j−1}/α_{j−1}) r_j − (β_{j−1}/α_{j−1}) r_{j−1}.

The residuals are mutually orthogonal, so v_j = (−1)^j r_j/‖r_j‖ are the Lanczos vectors
for the start r_0/‖r_0‖. Dividing by norms, using β_j = ‖r_{j+1}‖²/‖r_j‖² and the signs
(which make every off-diagonal positive), A V_k = V_k T_k + t_{k+1,k} v_{k+1} e_kᵀ with

    (T_k)_{jj}    = 1/α_j + β_{j−1}/α_{j−1}      (j = 0 … k−1, the second term absent for j = 0)
    (T_k)_{j,j+1} = √β_j / α_j                  (j = 0 … k−2), and t_{k+1,k} = √β_{k−1}/α_{k−1}.

Equivalently T_k = L D Lᵀ with D = diag(1/α_j) and L unit lower bidiagonal with
subdiagonal √β_j: the LDLᵀ (Cholesky) factors CG builds implicitly. So T_k is positive definite
whenever every accepted step had p_jᵀAp_j > 0.

**Ritz values** θ_1^{(k)} ≤ … ≤ θ_k^{(k)} are T_k's eigenvalues; the pair (θ_i, V_k y_i) has
residual ‖A V_k y_i − θ_i V_k y_i‖ = t_{k+1,k}·|e_kᵀ y_i| (in exact arithmetic), a bound on
the distance from θ_i to the nearest eigenvalue. They interlace as k grows and converge
from the ends of the spectrum inwards: the extreme eigenvalues are found first.

**Residual polynomial.** r_k = p_k(A) r_0 with p_k of degree k and p_k(0) = 1; from the
recurrences, with R_0 = P_0 = 1,

    R_{j+1}(λ) = R_j(λ) − α_j λ P_j(λ),   P_{j+1}(λ) = R_{j+1}(λ) + β_j P_j(λ),

and p_k = R_k. Its roots are the Ritz values, so p_k(λ) = Π_i (1 − λ/θ_i^{(k)}). The error
obeys the same law, e_k = p_k(A) e_0, so along an eigenvector v_i of A:
v_iᵀ(x_k − x*) = p_k(λ_i) v_iᵀ(x_0 − x*) — CG's error per eigencomponent is the polynomial
evaluated at that eigenvalue.

In floating point the residuals lose orthogonality once a Ritz value converges, and
T_k then acquires copies ("ghosts") of converged eigenvalues; the formulas stay those of
the Lanczos matrix CG actually computed. :func:`ritz_copies` marks those copies.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.linalg import eigh_tridiagonal

from trpo_viz.serialize import to_jsonable

MAX_HEATMAP_N = 200  # error per eigencomponent: an n × (k+1) heatmap, for n up to this
GRID_POINTS = 201
MAX_BOUNDS_ITERATIONS = 150  # residual bounds of every T_k up to this k (one eigh each)
CONVERGED = 1e-3  # a Ritz value whose residual bound is at most this share of it has converged


def lanczos_tridiagonal(
    alphas: np.ndarray, betas: np.ndarray, last_inverse_alpha: float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """T_k's diagonal [k] and off-diagonal [k−1] from CG's α_0 … α_{k−1}, β_0 … β_{k−2}.

    ``last_inverse_alpha`` appends one more row with 1/α_k given directly: for a step CG
    rejected on negative curvature, 1/α_k = p_kᵀAp_k / ‖r_k‖² ≤ 0 (finite even when
    p_kᵀAp_k = 0), and T_{k+1} then shows the curvature CG could not use. Extra β entries
    (CG's β_{k−1}) are ignored unless that row is appended.
    """
    inverse_alphas = 1.0 / np.asarray(alphas, np.float64)
    betas = np.asarray(betas, np.float64)
    if last_inverse_alpha is not None:
        inverse_alphas = np.append(inverse_alphas, float(last_inverse_alpha))
    k = len(inverse_alphas)
    if k == 0:
        return np.zeros(0), np.zeros(0)
    if len(betas) < k - 1:
        raise ValueError(f"T_{k} needs {k - 1} betas, got {len(betas)}")
    b = betas[: k - 1]
    diagonal = inverse_alphas.copy()
    diagonal[1:] += b * inverse_alphas[:-1]
    off_diagonal = np.sqrt(b) * inverse_alphas[:-1]
    return diagonal, off_diagonal


def _eigh_tridiagonal(diagonal, off_diagonal, vectors: bool):
    if len(diagonal) == 1:
        return (diagonal.copy(), np.ones((1, 1))) if vectors else diagonal.copy()
    return eigh_tridiagonal(diagonal, off_diagonal, eigvals_only=not vectors)


def ritz_values(alphas: np.ndarray, betas: np.ndarray) -> list[np.ndarray]:
    """Sorted eigenvalues of T_1, …, T_k (one array per iteration k ≥ 1, the k-th has k)."""
    diagonal, off_diagonal = lanczos_tridiagonal(alphas, betas)
    return [
        np.sort(_eigh_tridiagonal(diagonal[:j], off_diagonal[: j - 1], vectors=False))
        for j in range(1, len(diagonal) + 1)
    ]


def ritz_residual_bounds(
    alphas: np.ndarray, betas: np.ndarray, iterations=None
) -> list[np.ndarray | None]:
    """For each k ≥ 1: t_{k+1,k}·|e_kᵀy_i| for T_k's eigenvectors y_i (sorted as the values).

    t_{k+1,k} = √β_{k−1}/α_{k−1} is known after k steps, so every T_k has its bounds;
    a bound near zero means that Ritz value is (nearly) an eigenvalue of A. Each T_k
    needs its eigenvectors (O(k²) with LAPACK's MRRR), so ``iterations`` (a collection
    of k) limits which are computed; the others are None. Default: all.
    """
    alphas = np.asarray(alphas, np.float64)
    betas = np.asarray(betas, np.float64)
    diagonal, off_diagonal = lanczos_tridiagonal(alphas, betas)
    wanted = range(1, len(diagonal) + 1) if iterations is None else set(iterations)
    bounds = []
    for j in range(1, len(diagonal) + 1):
        if j not in wanted:
            bounds.append(None)
            continue
        _, vectors = _eigh_tridiagonal(diagonal[:j], off_diagonal[: j - 1], vectors=True)
        next_off = np.sqrt(betas[j - 1]) / alphas[j - 1]
        bounds.append(np.abs(next_off * vectors[-1, :]))
    return bounds


def final_ritz_copies(alphas, betas, eps: float) -> tuple[np.ndarray, np.ndarray]:
    """T_K's Ritz values (ascending) and the mask of rounding's copies among them.

    K = len(alphas); :func:`ritz_copies` with T_K's residual bounds. Empty arrays when CG
    took no step or its α, β are not finite and positive (no T_K to speak of).
    """
    alphas = np.asarray(alphas, np.float64)
    betas = np.asarray(betas, np.float64)
    k = len(alphas)
    if (k == 0 or len(betas) < k - 1 or not np.all(np.isfinite(alphas))
            or not np.all(alphas > 0) or not np.all(np.isfinite(betas[:k]))
            or not np.all(betas[:k] >= 0)):
        return np.zeros(0), np.zeros(0, bool)
    diagonal, off_diagonal = lanczos_tridiagonal(alphas, betas)
    values = np.sort(_eigh_tridiagonal(diagonal, off_diagonal, vectors=False))
    # t_{K+1,K} needs β_{K−1}; without it (CG stopped before computing it) the bounds are
    # unknown and only values equal to rounding count as copies
    bounds = ritz_residual_bounds(alphas, betas, {k})[-1] if len(betas) >= k else np.zeros(k)
    return values, ritz_copies(values, bounds, eps)


def ritz_copies(values, bounds, eps: float) -> np.ndarray:
    """Which Ritz values repeat another converged one: the copies ("ghosts") rounding makes.

    In exact arithmetic the Ritz values of T_k are distinct, and two of them cannot both
    converge to one simple eigenvalue. In floating point, once CG's residuals have lost
    orthogonality, T_k acquires further copies of eigenvalues that have already converged
    (Paige; Greenbaum, "Iterative Methods for Solving Linear Systems", ch. 4). A Ritz value
    has converged when its residual bound b (:func:`ritz_residual_bounds`) is small against
    it, b/|θ| ≤ :data:`CONVERGED` (three significant digits, what a log axis shows); of two
    converged values that are the same within their bounds,

        |θ_i − θ_j| ≤ max(b_i + b_j, 100·ε·θ_max),

    the better converged one (smaller b/|θ|) is the Ritz value and the other is marked as
    its copy. Values that have not converged are never marked: a Ritz value on its way to
    becoming a copy is not told apart from one on its way to an eigenvalue not found yet.
    ``bounds`` may be zeros (unknown): then every value counts as converged and only values
    equal to rounding are copies. ``eps``: the unit roundoff of the dtype CG ran in. A real
    cluster of eigenvalues closer than the bounds looks the same from T_k alone; exact
    eigenvalues, where computed, tell the two apart.

    Returns a boolean mask aligned with ``values`` (any order).
    """
    values = np.asarray(values, np.float64)
    bounds = np.asarray(bounds, np.float64)
    copies = np.zeros(len(values), bool)
    if len(values) < 2:
        return copies
    equal = 100.0 * eps * float(np.max(np.abs(values)))
    with np.errstate(divide="ignore", invalid="ignore"):
        relative = np.where(values != 0, bounds / np.abs(values), np.inf)
    found: list[int] = []  # converged Ritz values kept, best converged first
    for j in np.argsort(relative, kind="stable"):
        if not relative[j] <= CONVERGED:  # not converged (or NaN): never a copy
            break
        copies[j] = any(
            abs(values[i] - values[j]) <= max(bounds[i] + bounds[j], equal) for i in found
        )
        if not copies[j]:
            found.append(int(j))
    return copies


def lanczos_ritz_values(alphas: np.ndarray, betas: np.ndarray) -> list[np.ndarray]:
    """Sorted eigenvalues of T_1 … T_k for plain Lanczos coefficients: diagonal α_1 … α_k,
    off-diagonal β_2 … β_k (``betas[:k−1]``), as MINRES and :mod:`trpo_viz.spectrum` give."""
    alphas = np.asarray(alphas, np.float64)
    betas = np.asarray(betas, np.float64)
    return [
        np.sort(_eigh_tridiagonal(alphas[:j], betas[: j - 1], vectors=False))
        for j in range(1, len(alphas) + 1)
    ]


def method_ritz_values(result) -> list[np.ndarray] | None:
    """Per-iteration Ritz values of any line-up solver's result, with no further products.

    CG: of A + λI (:func:`ritz_values`). PCG: of M^{-1/2}(A + λI)M^{-1/2}, the operator
    PCG is CG on. MINRES: of A + λI, from its own Lanczos coefficients. Steepest
    descent builds no tridiagonal matrix: None. One array per accepted iteration.
    """
    from trpo_viz.minres import MinresResult
    from trpo_viz.steepest import SDResult

    if isinstance(result, SDResult):
        return None
    k = result.iterations
    if isinstance(result, MinresResult):
        return lanczos_ritz_values(result.alphas[:k], result.betas[:k])
    return ritz_values(result.alphas[:k], result.betas[:k])


def residual_polynomials(alphas: np.ndarray, betas: np.ndarray, points) -> np.ndarray:
    """p_0 … p_k evaluated at ``points`` by CG's recurrences: a [k+1, len(points)] array."""
    lam = np.asarray(points, np.float64)
    r = np.ones_like(lam)
    p = np.ones_like(lam)
    rows = [r]
    with np.errstate(over="ignore", invalid="ignore"):  # far outside the spectrum: ±inf
        for alpha, beta in zip(alphas, betas, strict=False):
            r = r - alpha * lam * p
            p = r + beta * p
            rows.append(r)
    return np.array(rows)


def polynomial_from_ritz(ritz: np.ndarray, points) -> np.ndarray:
    """p(λ) = Π_i (1 − λ/θ_i): the residual polynomial with the given roots (p(0) = 1)."""
    lam = np.asarray(points, np.float64)
    out = np.ones_like(lam)
    for theta in np.asarray(ritz, np.float64):
        out = out * (1.0 - lam / theta)
    return out


def eigencomponent_errors(
    iterates: np.ndarray, reference: np.ndarray, eigenvectors: np.ndarray
) -> np.ndarray:
    """|v_iᵀ(x_k − x*)| as a [k+1, n] array; columns follow ``eigenvectors``' columns."""
    return np.abs((np.asarray(iterates) - reference) @ eigenvectors)


def polynomial_grid(eigenvalues: np.ndarray | None, ritz: list[np.ndarray], points: int):
    """Points from min(0, λ_min) to λ_max (true spectrum if known, else Ritz values), 5% margins."""
    values = [np.zeros(1)]
    if eigenvalues is not None:
        values.append(np.asarray(eigenvalues, np.float64))
    values.extend(np.asarray(r) for r in ritz)
    values = np.concatenate(values)
    values = values[np.isfinite(values)]
    lo, hi = float(values.min()), float(values.max())
    margin = 0.05 * (hi - lo) if hi > lo else 1.0
    return np.linspace(lo - margin if lo < 0 else 0.0, hi + margin, points)


@dataclass
class KrylovView:
    """Ritz values, residual polynomials and eigencomponent errors of one CG solve.

    Everything concerns the matrix CG ran on, A = H + λI (Ritz values and eigenvalues
    include the damping λ). Arrays are numpy float64.

    Attributes
    ----------
    ritz_values : per iteration k = 1 … K, the sorted eigenvalues of T_k (k values).
    ritz_residual_bounds : per iteration, t_{k+1,k}|e_kᵀy_i| for each Ritz value
        (None for k < K when K > ``max_bounds_iterations``).
    rejected_ritz_values : when CG stopped on negative curvature, the eigenvalues of
        T_{K+1} including the rejected step (its smallest is ≤ 0); else None.
    grid : λ values for drawing the polynomials (covers 0 and the spectrum).
    residual_polynomials : [K+1, len(grid)], p_k(λ) on the grid for k = 0 … K.
    eigenvalues : the exact spectrum of H + λI (ascending) when H was formed, else None.
    polynomial_at_eigenvalues : [K+1, n], p_k(λ_i), when the spectrum is known.
    eigencomponent_errors : [K+1, n], |v_iᵀ(x_k − x*)| with v_i ordered as
        ``eigenvalues``, when H was formed, x* exists and n ≤ MAX_HEATMAP_N; else None.
    ritz_copies : per iteration, a mask over ``ritz_values`` of the converged Ritz values
        that repeat a better-converged one (:func:`ritz_copies`: rounding, not further
        eigenvalues); all False where the bounds were not computed.
    """

    ritz_values: list[np.ndarray]
    ritz_residual_bounds: list[np.ndarray]
    rejected_ritz_values: np.ndarray | None
    grid: np.ndarray
    residual_polynomials: np.ndarray
    eigenvalues: np.ndarray | None = None
    polynomial_at_eigenvalues: np.ndarray | None = None
    eigencomponent_errors: np.ndarray | None = None
    ritz_copies: list[np.ndarray] = field(default_factory=list)

    @property
    def iterations(self) -> int:
        return len(self.ritz_values)

    def to_dict(self) -> dict:
        """JSON-ready dict; ``ritz_values`` is the list the CLI's ``cg --json`` carries."""
        return to_jsonable(
            {
                "ritz_values": self.ritz_values,
                "ritz_residual_bounds": self.ritz_residual_bounds,
                "rejected_ritz_values": self.rejected_ritz_values,
                "polynomial_grid": self.grid,
                "residual_polynomials": self.residual_polynomials,
                "eigenvalues": self.eigenvalues,
                "polynomial_at_eigenvalues": self.polynomial_at_eigenvalues,
                "eigencomponent_errors": self.eigencomponent_errors,
                "ritz_copies": self.ritz_copies,
            }
        )


def krylov_view(
    cg,
    hessian: np.ndarray | None = None,
    reference: np.ndarray | None = None,
    damping: float = 0.0,
    grid_points: int = GRID_POINTS,
    max_heatmap_n: int = MAX_HEATMAP_N,
    max_bounds_iterations: int = MAX_BOUNDS_ITERATIONS,
    eps: float = float(np.finfo(np.float64).eps),
) -> KrylovView:
    """The Krylov view of a CG solve, with no further products.

    Parameters
    ----------
    cg : a :class:`trpo_viz.cg.CGResult` (or anything with ``alphas``, ``betas``,
        ``curvatures``, ``residual_norms``, ``stop_reason``, ``iterates``). A
        :class:`trpo_viz.pcg.PCGResult` works too; its T_k is that of the preconditioned
        operator (pass no ``hessian`` then: eigencomponents of H do not apply).
    hessian : the explicit H when it was formed (small n), for the exact spectrum and the
        eigencomponent errors; None otherwise.
    reference : x* = (H + λI)⁻¹b, needed for the eigencomponent errors.
    damping : the λ CG used (the spectrum drawn is that of H + λI).
    grid_points : number of λ values for the polynomial curves.
    max_heatmap_n : largest n for the eigencomponent heatmap.
    max_bounds_iterations : Ritz residual bounds for every T_k up to this many
        iterations; beyond it, for the final T_K only (the others None).
    eps : the unit roundoff of the dtype CG ran in, for telling rounding's copies of
        converged Ritz values (``ritz_copies``) from distinct ones.

    Returns
    -------
    :class:`KrylovView`.
    """
    alphas = np.asarray(cg.alphas, np.float64)
    betas = np.asarray(cg.betas, np.float64)
    ritz = ritz_values(alphas, betas)
    k = len(alphas)
    bounds = ritz_residual_bounds(
        alphas, betas, None if k <= max_bounds_iterations else {k}
    )
    rejected = None
    if cg.stop_reason == "negative_curvature" and len(cg.curvatures) > k:
        # 1/α_k = p_kᵀAp_k / r_kᵀz_k (z_k = r_k for CG; PCG records √(r_kᵀz_k)).
        norms = getattr(cg, "preconditioned_norms", cg.residual_norms)
        last = float(cg.curvatures[k]) / float(norms[k]) ** 2
        diagonal, off_diagonal = lanczos_tridiagonal(alphas, betas, last_inverse_alpha=last)
        if np.all(np.isfinite(diagonal)) and np.all(np.isfinite(off_diagonal)):
            rejected = np.sort(_eigh_tridiagonal(diagonal, off_diagonal, vectors=False))
    eigenvalues = eigenvectors = None
    if hessian is not None:
        damped = np.asarray(hessian, np.float64) + damping * np.eye(len(hessian))
        if np.all(np.isfinite(damped)):
            eigenvalues, eigenvectors = np.linalg.eigh(damped)
    extra = [] if rejected is None else [rejected]
    grid = polynomial_grid(eigenvalues, ritz + extra, grid_points)
    view = KrylovView(
        ritz_values=ritz,
        ritz_residual_bounds=bounds,
        rejected_ritz_values=rejected,
        grid=grid,
        residual_polynomials=residual_polynomials(alphas, betas, grid),
        ritz_copies=[np.zeros(len(r), bool) if b is None else ritz_copies(r, b, eps)
                     for r, b in zip(ritz, bounds, strict=True)],
    )
    if eigenvalues is not None:
        view.eigenvalues = eigenvalues
        view.polynomial_at_eigenvalues = residual_polynomials(alphas, betas, eigenvalues)
        if reference is not None and cg.iterates is not None and len(eigenvalues) <= max_heatmap_n:
            view.eigencomponent_errors = eigencomponent_errors(
                cg.iterates, reference, eigenvectors
            )
    return view
