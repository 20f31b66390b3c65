"""What rounding lets a TRPO update's numbers mean: CG's reach, explained variance.

NumPy (and SciPy for the Ritz values). The trainer records these diagnostics; the page and
the figures state them.

Conjugate gradient in floating point (Paige; Greenbaum, "Iterative Methods for Solving
Linear Systems", ch. 4) differs from the CG of the textbook in two ways this module
measures:

* The residuals r_0, r_1, … of exact CG are mutually orthogonal. In floating point they
  lose that orthogonality once a Ritz value converges; from then on the iterates are no
  longer those of exact-arithmetic CG, and the residual curve is shaped by rounding.
  :func:`residual_orthogonality` gives max_{j<k} |cos(r_j, r_k)| per iteration k; past
  :data:`ORTHOGONALITY_LOST` the run has left exact CG. (Measured on CartPole's damped
  Fisher, λ = 1e-3: float32 leaves at k ≈ 4–5, float64 at k ≈ 6–9.)
* The recursively updated residual r_k keeps shrinking after the true residual
  b − A x_k has stalled at about ε(‖b‖ + ‖A‖·max_j ‖x_j‖) (:func:`rounding_floor`):
  values of ‖r_k‖ below that floor describe the recursion, not the iterate.
"""

from __future__ import annotations

import math

import numpy as np

ORTHOGONALITY_LOST = 1e-2  # |cos(r_j, r_k)| above which CG has left exact arithmetic
NEARLY_CONSTANT_RETURNS = 1e-8  # Var(R) / mean(R²) at or below which EV is not shown

EXPLAINED_VARIANCE_HELP = (
    "Explained variance = 1 − Var(R − V) / Var(R) over the batch, before this update's "
    "value fit: R are the value targets (GAE returns), V the value network's predictions. "
    "1 is a perfect prediction, 0 no better than predicting the mean of R, negative worse. "
    f"Shown as n/a when Var(R) ≤ {NEARLY_CONSTANT_RETURNS:g}·mean(R²): the returns are then "
    "nearly constant (every CartPole episode lasting 500 steps gives R ≈ 100 everywhere), "
    "and the ratio measures tiny fluctuations, not how well V predicts."
)


def explained_variance(predictions: np.ndarray, targets: np.ndarray) -> float:
    """1 − Var(R − V) / Var(R) in float64 (NaN when Var(R) = 0)."""
    targets, predictions = np.asarray(targets, np.float64), np.asarray(predictions, np.float64)
    var = np.var(targets)
    return float("nan") if var == 0 else float(1.0 - np.var(targets - predictions) / var)


def relative_variance(x: np.ndarray) -> float:
    """Var(x) / mean(x²) in float64: how far from constant x is (0 for a constant x)."""
    x = np.asarray(x, np.float64)
    mean_square = float(np.mean(x * x))
    return float(np.var(x)) / mean_square if mean_square > 0 else 0.0


def explained_variance_text(value: float, returns_relative_variance: float | None) -> str:
    """The explained variance as the page shows it: a number, or n/a with the reason."""
    if returns_relative_variance is not None and (
        returns_relative_variance <= NEARLY_CONSTANT_RETURNS
    ):
        return "n/a (returns nearly constant)"
    if value is None or not math.isfinite(value):
        return "n/a (returns constant)"
    return f"{value:.2f}"


def damping_share(record, damping: float) -> float | None:
    """λ‖s‖² / sᵀ(F+λI)s: the part of the damped quadratic model that is damping, not KL.

    ‖s‖ = step_norm / β (the record keeps the full step Δ = β·s); None if undefined.
    """
    if not (record.step_scale and record.sFs and math.isfinite(record.step_scale)):
        return None
    share = damping * (record.step_norm / record.step_scale) ** 2 / record.sFs
    return share if math.isfinite(share) else None


# --- conjugate gradient in floating point ------------------------------------------------------


def residual_orthogonality(residuals: np.ndarray) -> list[float]:
    """max_{j<k} |cos(r_j, r_k)| for k = 0 … K (0 for k = 0), from residuals [K+1, n].

    Exact CG gives 0 throughout. A zero residual (an exact solve) counts as orthogonal.
    """
    r = np.asarray(residuals, np.float64)
    norms = np.linalg.norm(r, axis=1)
    unit = np.divide(r, norms[:, None], out=np.zeros_like(r), where=norms[:, None] > 0)
    cosines = np.abs(unit @ unit.T)
    return [0.0] + [float(cosines[k, :k].max()) for k in range(1, len(r))]


def operator_norm_estimate(curvatures, directions) -> float:
    """max_k p_kᵀAp_k / ‖p_k‖²: a lower bound on ‖A‖ that CG's Ritz values approach."""
    d = np.asarray(directions, np.float64)
    quotients = [
        float(c) / float(d[k] @ d[k])
        for k, c in enumerate(curvatures[: len(d)])
        if float(d[k] @ d[k]) > 0 and math.isfinite(float(c))
    ]
    return max(quotients, default=0.0)


def rounding_floor(dtype, b_norm: float, operator_norm: float, max_iterate_norm: float) -> float:
    """ε·(‖b‖ + ‖A‖·max_j‖x_j‖): where CG's true residual stalls in this dtype.

    The gap between the recursive and the true residual grows by about ε·‖A‖‖x_j‖ per
    step (Greenbaum 1997, §4.1), so residual norms below this are rounding in ``dtype``.
    """
    eps = float(np.finfo(np.dtype(dtype)).eps)
    return eps * (b_norm + operator_norm * max_iterate_norm)


def first_rounding_iteration(orthogonality) -> int | None:
    """The first k whose residual has lost orthogonality (None if CG stayed exact)."""
    for k, value in enumerate(orthogonality):
        if not (value <= ORTHOGONALITY_LOST):  # NaN counts as lost
            return k
    return None


def ritz_copies_in(record) -> np.ndarray:
    """Which of the record's ``cg_ritz_values`` (ascending) are copies of another one.

    The copies ("ghosts") that rounding puts into CG's tridiagonal T_k once the residuals
    lose orthogonality (:func:`trpo_viz.krylov.ritz_copies`): CartPole's float32 solves
    show F + λI's largest eigenvalue three or four times after 15 iterations. T_k and its
    residual bounds are rebuilt from the record's residual norms and curvatures
    (α_j = ‖r_j‖²/p_jᵀ(F+λI)p_j, β_j = ‖r_{j+1}‖²/‖r_j‖²); where those are missing or not
    positive, only values equal to rounding are marked.
    """
    from trpo_viz.krylov import ritz_copies, ritz_residual_bounds

    values = np.asarray(getattr(record, "cg_ritz_values", []) or [], np.float64)
    dtype = getattr(record, "cg_dtype", "float32") or "float32"
    eps = float(np.finfo(np.dtype(dtype)).eps)
    bounds = np.zeros(len(values))
    residuals = np.asarray(getattr(record, "cg_residuals", []) or [], np.float64)
    curvatures = np.asarray(getattr(record, "cg_curvatures", []) or [], np.float64)
    k = len(values)
    if (k and len(curvatures) >= k and len(residuals) > k
            and np.all(np.isfinite(residuals[: k + 1])) and np.all(residuals[:k] > 0)
            and np.all(np.isfinite(curvatures[:k])) and np.all(curvatures[:k] > 0)):
        alphas = residuals[:k] ** 2 / curvatures[:k]
        betas = residuals[1 : k + 1] ** 2 / residuals[:k] ** 2
        rebuilt = ritz_residual_bounds(alphas, betas, [k])[-1]
        if rebuilt is not None and len(rebuilt) == k and np.all(np.isfinite(rebuilt)):
            bounds = rebuilt  # sorted as T_k's eigenvalues: ascending, like the record's
    return ritz_copies(values, bounds, eps)


def cg_stop_text(record) -> str:
    """CG's stop reason, saying which residual a "converged" is about."""
    reason = record.cg_stop_reason
    true = record.cg_true_residual
    if reason == "converged" and true is not None and record.cg_residuals:
        recursive = record.cg_residuals[-1]
        if true > 2 * recursive:
            return (
                f"converged by the recursive residual ({recursive:.2e}); "
                f"the true residual of s is {true:.2e}"
            )
    return reason


def cg_precision_note(record) -> str:
    """Plain text under the CG residual chart: which part of the curve is rounding."""
    dtype = record.cg_dtype
    parts = []
    k_lost = first_rounding_iteration(record.cg_orthogonality)
    if k_lost is not None:
        worst = max(record.cg_orthogonality[k_lost:])
        parts.append(
            f"From iteration {k_lost} on (grey), the residuals are no longer orthogonal "
            f"(|cos(r_j, r_k)| up to {worst:.2f}; exact CG keeps it 0): that part of the "
            f"curve is {dtype} rounding at work, not the exact-arithmetic CG of the theory."
        )
    floor = record.cg_rounding_floor
    if floor is not None and any(r < floor for r in record.cg_residuals):
        parts.append(
            f"‖r_k‖ below {floor:.1e} (shaded) is beneath {dtype}'s reach for this system, "
            f"ε·(‖g‖ + ‖F+λI‖·‖s‖): the recursion keeps shrinking, the iterate does not."
        )
    if record.cg_true_residual is not None:
        parts.append(
            f"The returned s has true residual ‖g − (F+λI)s‖ = {record.cg_true_residual:.2e} "
            f"(diamond); the recursive ‖r_k‖ ends at {record.cg_residuals[-1]:.2e}."
        )
    if not parts:
        return "Recorded before residual diagnostics existed: no statement about rounding."
    if k_lost is None and len(parts) == 1:
        parts.insert(0, f"The whole curve is within {dtype}'s reach.")
    elif dtype == "float32":
        parts.append("Set the FVP/CG precision to float64 to follow exact CG further.")
    return " ".join(parts)
