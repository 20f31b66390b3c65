"""Reference quantities for judging a CG solve on a small problem (numpy, explicit matrices).

These need the matrix itself, so they are for problems small enough to form it
(see :func:`trpo_viz.hvp.explicit_hessian`); CG never uses them.
"""

from __future__ import annotations

import numpy as np

# Above this condition number a matrix is treated as singular: its "exact" solve is noise.
SINGULAR_CONDITION = 1e14


def exact_solution(matrix: np.ndarray, b: np.ndarray, damping: float = 0.0) -> np.ndarray | None:
    """(A + λI)⁻¹ b by ``numpy.linalg.solve``, or None when A + λI is singular (or not finite)."""
    a = np.asarray(matrix, dtype=np.float64) + damping * np.eye(len(b))
    if not np.all(np.isfinite(a)):
        return None
    if np.linalg.cond(a) > SINGULAR_CONDITION:
        return None
    try:
        return np.linalg.solve(a, np.asarray(b, dtype=np.float64))
    except np.linalg.LinAlgError:
        return None


def relative_errors(iterates: np.ndarray, x_star: np.ndarray) -> np.ndarray:
    """‖x_k − x*‖ / ‖x*‖ for each row x_k (absolute error when x* = 0)."""
    scale = np.linalg.norm(x_star) or 1.0
    return np.linalg.norm(np.asarray(iterates) - x_star, axis=1) / scale


def a_norm_errors(iterates: np.ndarray, x_star: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """‖x_k − x*‖_A = sqrt((x_k − x*)ᵀ A (x_k − x*)), the error CG minimises over its Krylov space.

    Only meaningful for positive definite A; negative quadratic forms give NaN.
    """
    e = np.asarray(iterates) - x_star
    quad = np.einsum("ki,ij,kj->k", e, matrix, e)
    with np.errstate(invalid="ignore"):
        return np.sqrt(np.where(quad >= 0, quad, np.nan))


def spectrum(matrix: np.ndarray) -> tuple[np.ndarray, float]:
    """Eigenvalues of the symmetric matrix (ascending) and its condition number λmax/λmin.

    The condition number is ``inf`` when λmin ≤ 0 (singular or indefinite: CG's
    convergence theory does not apply).
    """
    eigenvalues = np.linalg.eigvalsh(matrix)
    lo, hi = eigenvalues[0], eigenvalues[-1]
    kappa = float(hi / lo) if lo > 0 else float("inf")
    return eigenvalues, kappa


def cg_error_bound(kappa: float, iterations: int, initial_error: float) -> np.ndarray:
    """The classical bound ‖e_k‖_A ≤ 2((√κ−1)/(√κ+1))^k ‖e_0‖_A for k = 0 … iterations."""
    k = np.arange(iterations + 1)
    if not np.isfinite(kappa) or kappa < 1:
        return np.full(k.shape, np.nan)
    rate = (np.sqrt(kappa) - 1) / (np.sqrt(kappa) + 1)
    return 2 * rate**k * initial_error


def steepest_descent_path(
    matrix: np.ndarray, b: np.ndarray, x0: np.ndarray, steps: int
) -> np.ndarray:
    """Steepest descent with exact line search on q(x) = ½xᵀAx − bᵀx, for contrast with CG.

    x_{k+1} = x_k + (r_kᵀr_k / r_kᵀAr_k) r_k with r_k = b − Ax_k. Stops early at
    the solution or where the curvature along r_k is not positive. Rows: x_0 … x_m.
    """
    path = [np.asarray(x0, dtype=np.float64)]
    for _ in range(steps):
        x = path[-1]
        r = b - matrix @ x
        curvature = r @ matrix @ r
        if curvature <= 0 or r @ r <= 1e-30 * max(1.0, b @ b):
            break
        path.append(x + (r @ r) / curvature * r)
    return np.array(path)
