"""Reference quantities for judging a CG solve on a small problem (numpy, explicit matrices).

These need the matrix itself, so they are for problems small enough to form it
(see :func:`trpo_viz.hvp.explicit_hessian`); CG never uses them. None of them warns:
an overflow or an undefined value becomes NaN (or None), which callers show as "—".
"""

from __future__ import annotations

import math

import numpy as np

# Above this condition number a matrix is treated as singular: its "exact" solve is noise.
SINGULAR_CONDITION = 1e14


def exact_solution(matrix: np.ndarray, b: np.ndarray, damping: float = 0.0) -> np.ndarray | None:
    """(A + λI)⁻¹ b by ``numpy.linalg.solve``, or None when A + λI is singular (or not finite)."""
    a = np.asarray(matrix, dtype=np.float64) + damping * np.eye(len(b))
    b = np.asarray(b, dtype=np.float64)
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        return None
    with np.errstate(all="ignore"):
        if not np.linalg.cond(a) <= SINGULAR_CONDITION:  # also refuses a NaN condition number
            return None
        try:
            x = np.linalg.solve(a, b)
        except np.linalg.LinAlgError:
            return None
    return x if np.all(np.isfinite(x)) else None


def relative_errors(iterates: np.ndarray, x_star: np.ndarray) -> np.ndarray:
    """‖x_k − x*‖ / ‖x*‖ for each row x_k (absolute error when x* = 0); NaN where it overflows."""
    with np.errstate(all="ignore"):
        scale = np.linalg.norm(x_star) or 1.0
        errors = np.linalg.norm(np.asarray(iterates) - x_star, axis=1) / scale
    return _finite_or_nan(errors)


def a_norm_errors(iterates: np.ndarray, x_star: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """‖x_k − x*‖_A = sqrt((x_k − x*)ᵀ A (x_k − x*)), the error CG minimises over its Krylov space.

    Only meaningful for positive definite A; negative quadratic forms (and overflows) give NaN.
    """
    with np.errstate(all="ignore"):
        e = np.asarray(iterates) - x_star
        quad = np.einsum("ki,ij,kj->k", e, matrix, e)
        errors = np.sqrt(np.where(quad >= 0, quad, np.nan))
    return _finite_or_nan(errors)


def residual_norms(iterates: np.ndarray, matrix: np.ndarray, b: np.ndarray) -> np.ndarray:
    """True residuals ‖b − A x_k‖ of each row x_k, in float64 (NaN where they overflow).

    CG's own ‖r_k‖ is updated recursively (r_{k+1} = r_k − α_k A p_k) and drifts from
    these once rounding dominates; comparing the two shows where that happens.
    """
    x = np.asarray(iterates, dtype=np.float64)
    with np.errstate(all="ignore"):
        residuals = np.asarray(b, dtype=np.float64)[None, :] - x @ np.asarray(matrix).T
        norms = np.linalg.norm(residuals, axis=1)
    return _finite_or_nan(norms)


def spectrum(matrix: np.ndarray) -> tuple[np.ndarray, float]:
    """Eigenvalues of the symmetric matrix (ascending) and its condition number λmax/λmin.

    The condition number is ``inf`` when λmin ≤ 0 (singular or indefinite: CG's
    convergence theory does not apply) and when the ratio overflows.
    """
    eigenvalues = np.linalg.eigvalsh(matrix)
    lo, hi = float(eigenvalues[0]), float(eigenvalues[-1])
    kappa = hi / lo if lo > 0 else math.inf  # Python floats: an overflow gives inf, no warning
    return eigenvalues, kappa


def cg_error_bound(kappa: float, iterations: int, initial_error: float) -> np.ndarray:
    """The classical bound ‖e_k‖_A ≤ 2((√κ−1)/(√κ+1))^k ‖e_0‖_A for k = 0 … iterations."""
    k = np.arange(iterations + 1)
    if not (math.isfinite(kappa) and kappa >= 1 and math.isfinite(initial_error)):
        return np.full(k.shape, np.nan)
    rate = (math.sqrt(kappa) - 1) / (math.sqrt(kappa) + 1)
    with np.errstate(under="ignore"):
        return 2 * rate**k * initial_error


def rounding_floor(eps: float, g_norm: float, best_true_residual: float | None) -> float:
    """The residual norm below which CG's recursive ‖r_k‖ is rounding, not convergence.

    In exact arithmetic the recursively updated r_{k+1} = r_k − α_k A p_k equals the
    true residual g − Ax_k. In floating point it picks up rounding that x_k does not
    share: the true residual stalls near eps·‖A‖·max‖x_j‖ (Greenbaum 1997) while ‖r_k‖
    keeps falling. ``best_true_residual`` is the smallest true residual ‖g − Ax_k‖ of
    any iterate (from the explicit A; without it, that of the last iterate): a
    recursive value below half of it describes no iterate. And no relative residual
    below ``eps`` (the dtype's machine epsilon) is resolved at all: the floor is at
    least eps·‖g‖.
    """
    floor = eps * g_norm
    if best_true_residual is not None and math.isfinite(best_true_residual):
        floor = max(floor, 0.5 * best_true_residual)
    return floor


def steepest_descent_path(
    matrix: np.ndarray, b: np.ndarray, x0: np.ndarray, steps: int
) -> np.ndarray:
    """Steepest descent with exact line search on q(x) = ½xᵀAx − bᵀx, for contrast with CG.

    x_{k+1} = x_k + (r_kᵀr_k / r_kᵀAr_k) r_k with r_k = b − Ax_k. Stops early at
    the solution, where the curvature along r_k is not positive, or where a value
    stops being finite. Rows: x_0 … x_m.
    """
    path = [np.asarray(x0, dtype=np.float64)]
    with np.errstate(all="ignore"):
        for _ in range(steps):
            x = path[-1]
            r = b - matrix @ x
            rr = r @ r
            curvature = r @ matrix @ r
            if not (np.isfinite(rr) and np.isfinite(curvature)):
                break
            if curvature <= 0 or rr <= 1e-30 * max(1.0, b @ b):
                break
            step = x + rr / curvature * r
            if not np.all(np.isfinite(step)):
                break
            path.append(step)
    return np.array(path)


def _finite_or_nan(values: np.ndarray) -> np.ndarray:
    return np.where(np.isfinite(values), values, np.nan)
