"""What to say, and what to offer, when CG stops on negative curvature.

CG minimises the quadratic model q(x) = ½xᵀ(H+λI)x − gᵀx. A direction with
p_kᵀ(H+λI)p_k ≤ 0 means q is unbounded below (or flat) along p_k: there is no minimiser,
the step length α_k = r_kᵀr_k / p_kᵀ(H+λI)p_k would be negative or infinite, and CG stops
with the last iterate before it. Two ways on: MINRES, which minimises ‖g − (H+λI)x‖
instead and needs no positive curvature; or a damping λ with H + λI positive definite,
which needs H's smallest eigenvalue — exact for small n, else a Lanczos estimate.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from trpo_viz.krylov import krylov_view
from trpo_viz.serialize import to_jsonable
from trpo_viz.spectrum import LanczosResult, positive_definite_damping


@dataclass
class NegativeCurvatureAdvice:
    """The explanation and the two remedies, as data.

    Attributes
    ----------
    iteration : k, the step CG refused.
    curvature : p_kᵀ(H+λI)p_k ≤ 0.
    rayleigh_quotient : p_kᵀ(H+λI)p_k / ‖p_k‖² when p_k was recorded: an upper bound on
        λ_min(H) + λ, so H + λI has an eigenvalue at or below it.
    smallest_eigenvalue, largest_eigenvalue : of H (undamped): exact, or estimates.
    source : ``"exact"`` (eigvalsh of the explicit H), ``"lanczos"`` (Ritz values: θ_min ≥
        λ_min, so the smallest may be overestimated) or ``"cg"`` (Ritz values of CG's own
        T_{k+1}, an even rougher upper bound).
    residual_bound : the Ritz residual bound of the smallest estimate (0 when exact).
    suggested_damping : the total λ to use instead of the current one
        (:func:`trpo_viz.spectrum.positive_definite_damping`).
    guaranteed : True when the damping comes from the exact spectrum.
    explanation : plain text for the page and the CLI.
    """

    iteration: int
    curvature: float
    rayleigh_quotient: float | None
    smallest_eigenvalue: float
    largest_eigenvalue: float
    source: str
    residual_bound: float
    suggested_damping: float
    guaranteed: bool
    explanation: str

    def to_dict(self) -> dict:
        return to_jsonable(asdict(self))


def negative_curvature_advice(
    cg,
    damping: float = 0.0,
    eigenvalues: np.ndarray | None = None,
    lanczos: LanczosResult | None = None,
) -> NegativeCurvatureAdvice | None:
    """Advice for a CG result that stopped on negative curvature (None for any other stop).

    Parameters
    ----------
    cg : a :class:`trpo_viz.cg.CGResult`.
    damping : the λ CG ran with.
    eigenvalues : the exact spectrum of H (undamped) when known (small n).
    lanczos : a Lanczos run on H (undamped) when the spectrum is not known.
    """
    if cg.stop_reason != "negative_curvature":
        return None
    k = cg.iterations
    curvature = float(cg.curvatures[k])
    rayleigh = None
    if cg.directions is not None and len(cg.directions) > k:
        p = np.asarray(cg.directions[k], np.float64)
        if np.any(p):
            rayleigh = curvature / float(p @ p)
    bound = 0.0
    if eigenvalues is not None:
        eigenvalues = np.sort(np.asarray(eigenvalues, np.float64))
        lo, hi, source = float(eigenvalues[0]), float(eigenvalues[-1]), "exact"
    elif lanczos is not None:
        lo, hi, source = float(lanczos.ritz_values[0]), float(lanczos.ritz_values[-1]), "lanczos"
        bound = float(lanczos.ritz_residual_bounds[0])
    else:
        ritz = krylov_view(cg).rejected_ritz_values
        if ritz is None:  # CG's own Ritz values are not finite: fall back on the curvature
            ritz = np.array([min(rayleigh or 0.0, 0.0)])
        lo, hi, source = float(ritz[0]) - damping, float(ritz[-1]) - damping, "cg"
    suggestion = positive_definite_damping(lo, hi, bound)
    where = {
        "exact": "the exact smallest eigenvalue of H",
        "lanczos": "a Lanczos estimate (Ritz values never undershoot λ_min, so this may "
        "not be enough; CG will say so again)",
        "cg": "CG's own Ritz values (a rough upper bound on λ_min; run Lanczos for a "
        "better estimate)",
    }[source]
    explanation = (
        f"CG stopped before step {k + 1}: the curvature pᵀ(H + λI)p = {curvature:.3g} ≤ 0 "
        f"along its search direction, so H + λI (λ = {damping:g}) is not positive "
        "definite. The quadratic model ½xᵀ(H + λI)x − gᵀx has no minimiser along that "
        "direction; the result is the last iterate before it, not a solution. "
        "MINRES solves (H + λI)x = g for any symmetric matrix by minimising the residual. "
        f"Or damp: λ = {suggestion:.3g} makes H + λI positive definite, from {where} "
        f"(λ_min ≈ {lo:.3g})."
    )
    return NegativeCurvatureAdvice(
        iteration=k,
        curvature=curvature,
        rayleigh_quotient=rayleigh,
        smallest_eigenvalue=lo,
        largest_eigenvalue=hi,
        source=source,
        residual_bound=bound,
        suggested_damping=suggestion,
        guaranteed=source == "exact",
        explanation=explanation,
    )
