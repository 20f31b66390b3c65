"""Plain-language notes on a CG solve (stop reasons, spectrum): text the explorer page shows.

Pure functions of an :class:`~trpo_viz.explorer.ExplorerResult`; no Streamlit here.
"""

from __future__ import annotations

import math

import numpy as np

STOP_REASON_TEXT = {
    "converged": "converged (the recursive residual ‖r_k‖ fell below tol·‖g‖)",
    "max_iter": "reached the iteration limit",
    "negative_curvature": "stopped on non-positive curvature",
    "breakdown": "broke down (NaN or infinity)",
}


def distinct_eigenvalues(eigenvalues: np.ndarray, rtol: float = 1e-6) -> int:
    """How many clusters the sorted eigenvalues form (gaps above rtol·max|λ| separate them)."""
    eig = np.sort(np.asarray(eigenvalues, dtype=np.float64))
    if eig.size == 0:
        return 0
    scale = max(float(np.max(np.abs(eig))), 1e-300)
    return 1 + int(np.sum(np.diff(eig) > rtol * scale))


def bound_iterations(kappa: float, reduction: float) -> int | None:
    """Iterations after which the bound 2((√κ−1)/(√κ+1))^k falls below ``reduction``."""
    if not math.isfinite(kappa) or kappa < 1 or not 0 < reduction < 1:
        return None
    if kappa == 1:
        return 1
    rate = (math.sqrt(kappa) - 1) / (math.sqrt(kappa) + 1)
    return max(0, math.ceil(math.log(reduction / 2) / math.log(rate)))


def curvature_message(result) -> str | None:
    """Why CG stopped on non-positive curvature, and what to try; None if it did not."""
    cg = result.cg
    if cg.stop_reason != "negative_curvature":
        return None
    k = cg.iterations
    lines = [
        f"**Non-positive curvature at iteration k = {k}.** The search direction p_{k} has "
        f"p_{k}ᵀ(H+λI)p_{k} = {cg.curvatures[-1]:.6g} ≤ 0: along p_{k} the quadratic model "
        "q(x) = ½xᵀ(H+λI)x − gᵀx does not curve upwards, so it has no minimum there and the "
        "CG step α_k = r_kᵀr_k / p_kᵀ(H+λI)p_k is meaningless. CG stops and returns "
        f"x_{k}, the last iterate before it.",
    ]
    eig = result.eigenvalues
    if eig is not None and eig[0] <= 0:
        smallest = float(eig[0])  # an eigenvalue of H + λI
        needed = result.settings.damping - smallest
        lines.append(
            f"H + λI is not positive definite here: its smallest eigenvalue is {smallest:.6g}. "
            f"Try damping λ > {needed:.4g} (e.g. λ = {_round_up(needed * 1.1)}), as TRPO and "
            "Hessian-free optimisation do, or pick a point θ where f is convex."
        )
    else:
        lines.append("Try a damping λ > 0 or a point θ where f is convex.")
    return "\n\n".join(lines)


def _round_up(value: float) -> str:
    if value <= 0:
        return "0.1"
    digits = 10 ** math.floor(math.log10(value))
    return f"{math.ceil(value / digits) * digits:.3g}"


def spectrum_note(result) -> str | None:
    """How κ and eigenvalue clustering explain the convergence curve; None without H."""
    eig = result.eigenvalues
    if eig is None:
        return None
    name = "H + λI" if result.settings.damping > 0 else "H"
    n = result.n
    if eig[0] <= 0:
        return (
            f"{name} has {int(np.sum(eig <= 0))} non-positive eigenvalue(s) (smallest "
            f"{eig[0]:.6g}): it is not positive definite, CG's convergence theory does not "
            "apply, and CG may meet a direction of non-positive curvature."
        )
    kappa = result.condition_number
    clusters = distinct_eigenvalues(eig)
    parts = [
        f"κ({name}) = λ_max/λ_min = {eig[-1]:.6g} / {eig[0]:.6g} = {kappa:.6g}.",
        f"In exact arithmetic CG ends in at most as many steps as {name} has distinct "
        f"eigenvalues: here {clusters} of n = {n}.",
    ]
    steps = bound_iterations(kappa, 1e-6)
    if steps is not None:
        used = result.cg.iterations
        text = (f"The bound 2((√κ−1)/(√κ+1))^k guarantees a 10⁻⁶ reduction of the A-norm error "
                f"after {steps} iterations; CG used {used}.")
        if clusters < steps and used <= clusters:
            text += (" The bound sees only κ; CG adapts to the whole spectrum and finishes in at "
                     "most as many steps as there are distinct eigenvalues (or tight clusters).")
        parts.append(text)
    return " ".join(parts)


def hvp_comparison(result) -> str:
    """CG's HVP count against the n HVPs forming H would cost."""
    cg = result.cg
    n = result.n
    text = f"CG used {cg.matvecs} Hessian-vector product(s)"
    if cg.true_residual_norm is not None:
        text += " (and one more to check the true residual of its answer)"
    if n > 3:
        text += f"; forming H explicitly costs n = {n} HVPs"
        if cg.matvecs:
            text += f" ({n / cg.matvecs:.0f}× more)"
        text += " plus an O(n³) solve"
    return text + "."
