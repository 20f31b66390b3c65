"""What the CG explorer says about a solve, in plain text: why its numbers are not
mathematics (``problems``: f undefined at θ, a non-finite Hessian, an overflow in CG) and
where rounding, not convergence, shapes what is drawn (``notes``: a recursive residual
below what the dtype resolves, a "converged" the answer does not bear out, Ritz values
that rounding copied). Each function reads and fills an
:class:`~trpo_viz.explorer.ExplorerResult`.
"""

from __future__ import annotations

import math

import numpy as np

from trpo_viz import analysis, krylov


def problems(out, used_x0: bool) -> list[str]:
    """Why the solve at θ means nothing (plain text, root causes first); [] when it is sound."""
    problems = []
    dtype, n = out.dtype, out.n
    if not math.isfinite(out.value):
        why = ("f is undefined there (such as log or sqrt of a negative number, or 0/0)"
               if math.isnan(out.value) else
               f"f is infinite there (a pole such as 1/0, or a value beyond {dtype}'s range)")
        problems.append(f"f(θ) is not finite at θ: {why}, so it has no gradient or Hessian "
                        "at θ to solve with.")
    bad = ~np.isfinite(out.gradient)
    if bad.any():
        problems.append(f"The gradient ∇f(θ) has non-finite entries ({int(bad.sum())} of {n}: "
                        f"{_names(np.flatnonzero(bad))}).")
    if out.hessian is not None:
        bad = ~np.isfinite(out.hessian)
        if bad.any():
            problems.append(f"The Hessian H = ∇²f(θ) has non-finite entries ({int(bad.sum())} "
                            f"of {n * n}).")
    cg = out.cg
    if problems or cg.stop_reason != "breakdown":
        return problems  # a CG breakdown after one of these is only its consequence
    largest = f"{float(np.finfo(np.dtype(dtype)).max):.3g}"
    k = cg.iterations
    if k == 0 and not np.isfinite(cg.residual_norms[0]):
        if used_x0:
            problems.append(f"The starting residual overflows {dtype}: CG needs "
                            f"‖g − (H+λI)x0‖², which exceeds {largest}, the largest {dtype} "
                            "number. Scale g and x0 down: the solution scales with them.")
        else:
            problems.append(f"g's norm overflows {dtype}: CG needs gᵀg = ‖g‖², which exceeds "
                            f"{largest}, the largest {dtype} number. Scale g down: the "
                            "solution x scales with g.")
    else:
        curvature_bad = len(cg.curvatures) > k and not np.isfinite(cg.curvatures[k])
        what = f"p_{k}ᵀ(H+λI)p_{k}" if curvature_bad else f"‖r_{k + 1}‖²"
        problems.append(f"CG broke down at iteration k = {k}: {what} is not finite in {dtype} "
                        f"(beyond {largest}, or H·p_{k} is undefined). Scale g down, or pick "
                        "another θ.")
    return problems


def _names(indices: np.ndarray, shown: int = 5) -> str:
    names = ", ".join(f"x{i + 1}" for i in indices[:shown])
    return names + (", …" if len(indices) > shown else "")


def add_ritz_copies_note(out) -> None:
    """Say when T_K's Ritz values include copies that rounding made (ghost eigenvalues)."""
    eps = float(np.finfo(np.dtype(out.dtype)).eps)
    values, copies = krylov.final_ritz_copies(out.cg.alphas, out.cg.betas, eps)
    if not copies.any():
        return
    k = len(values)
    out.notes.append(
        f"{int(copies.sum())} of the {k} Ritz values of T_{k} repeat another converged one "
        "within their residual bounds: copies that rounding adds once CG's residuals have "
        "lost orthogonality, not further eigenvalues of H + λI (drawn as hollow diamonds in "
        "the Krylov view). In exact arithmetic two Ritz values never converge to one "
        "eigenvalue.")


def add_rounding_notes(out) -> None:
    """Set ``residual_floor`` and ``rounding_from``; say where ‖r_k‖ is rounding, and when
    "converged" holds for the recursion but not for the answer."""
    cg = out.cg
    eps = float(np.finfo(np.dtype(out.dtype)).eps)
    with np.errstate(all="ignore"):
        g_norm = float(np.linalg.norm(out.g))
    if out.true_residuals is not None and np.any(np.isfinite(out.true_residuals)):
        best_true = float(np.nanmin(out.true_residuals))
        final_true = float(out.true_residuals[-1])
    else:
        best_true = final_true = cg.true_residual_norm
    out.residual_floor = floor = analysis.rounding_floor(eps, g_norm, best_true)
    below = cg.residual_norms < floor
    if out.true_residuals is not None:  # an iterate that is that accurate is simply exact
        below &= ~(out.true_residuals < floor)
    threshold = max(out.settings.tol * g_norm, out.settings.atol)
    false_claim = (cg.stop_reason == "converged" and final_true is not None
                   and final_true > threshold)
    if below.any():
        out.rounding_from = int(np.flatnonzero(below)[0])
    elif not false_claim:
        return
    k, final = cg.iterations, float(cg.residual_norms[-1])
    parts = []
    if false_claim:
        how = ", recomputed in float64 from H," if out.true_residuals is not None else ""
        parts.append(
            f"'Converged' here only says that the recursive residual fell below tol·‖g‖ = "
            f"{threshold:.1e}; the answer's true residual ‖g − (H+λI)x_{k}‖{how} is "
            f"{final_true:.2e}, above it: {out.dtype} cannot resolve this tolerance for this "
            "problem.")
    if out.rounding_from is not None:
        if best_true is not None and 0.5 * best_true >= eps * g_norm:
            level = (f"{floor:.1e}, half the smallest true residual ‖g − (H+λI)x_j‖ of any "
                     "iterate (no iterate is that accurate)")
        else:
            level = f"ε·‖g‖ = {floor:.1e}, the smallest residual {out.dtype} resolves against g"
        parts.append(
            f"From k = {out.rounding_from} on, the recursive residual ‖r_k‖ is below {level}: "
            f"rounding in {out.dtype} (ε = {eps:.1e}) has parted the recursion from the "
            "iterates, so that part of the curve is rounding, not convergence.")
    if out.true_residuals is None and cg.true_residual_norm is not None:
        parts.append(f"CG's check of its answer: true ‖g − (H+λI)x_{k}‖ = "
                     f"{cg.true_residual_norm:.2e}, recursive ‖r_{k}‖ = {final:.2e}.")
    if false_claim and g_norm > 0 and best_true is not None and best_true > 0:
        reachable = 10 ** math.ceil(math.log10(best_true / g_norm))
        if reachable < 1:
            parts.append(f"A tolerance of {reachable:.0e} or more is within reach.")
    out.notes.append(" ".join(parts))
