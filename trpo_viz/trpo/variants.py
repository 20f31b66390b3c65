"""Ablations: TRPO with one of its pieces (the Fisher, the line search, the KL check) removed.

Every variant takes the same g = ∇L(θ_old) on the same batch; they differ in the
direction, its length and which candidates they accept:

=============  ======================  ===============================  ======================
variant        direction d             full step Δ                      accepted
=============  ======================  ===============================  ======================
trpo           s ≈ (F+λI)⁻¹g by CG     √(2δ / sᵀ(F+λI)s) · s            first θ_old + shrinkʲΔ
                                                                         with KL ≤ δ, gain > 0
npg            s ≈ (F+λI)⁻¹g by CG     √(2δ / sᵀ(F+λI)s) · s            Δ itself, always
no-kl-check    s ≈ (F+λI)⁻¹g by CG     √(2δ / sᵀ(F+λI)s) · s            first with gain > 0
gradient       g                       √(2δ / gᵀ(F+λI)g) · g            first with KL ≤ δ,
                                                                         gain > 0
vanilla-pg     g                       pg_lr · g                        Δ itself, always
=============  ======================  ===============================  ======================

"gain" is the surrogate improvement L(θ) − L(θ_old) and KL the mean KL(π_old ‖ π_θ) over
the whole batch. ``npg`` and ``vanilla-pg`` still evaluate their one candidate, so the
record says what the step did (its KL may exceed δ; its gain may be negative). A step is
never taken when it or its evaluation is not finite (the parameters would be NaN): that is
a refusal to write NaN weights, not a trust region, and the record says so.

No module here imports TensorFlow (the command line checks ``--variant`` before it loads).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

VARIANTS = ("trpo", "npg", "no-kl-check", "gradient", "vanilla-pg")

# UpdateRecord.step_status: what became of the update's step.
STEP_STATUSES = (
    "",  # recorded before statuses existed
    "accepted",
    "line_search_rejected",  # no candidate met the variant's conditions
    "non_finite_gradient",  # g has NaN/Inf
    "non_finite_curvature",  # dᵀ(F+λI)d is NaN/Inf
    "non_positive_curvature",  # dᵀ(F+λI)d ≤ 0: no trust-region length exists
    "non_finite_step",  # Δ has NaN/Inf
    "non_finite_candidate",  # npg / vanilla-pg: the step's surrogate or KL is NaN/Inf
)


@dataclass(frozen=True)
class Variant:
    """Which pieces of TRPO an update uses."""

    name: str
    natural: bool  # direction by CG on the damped Fisher (else the plain gradient g)
    trust_region: bool  # full step scaled to the quadratic KL δ (else pg_lr · g)
    line_search: bool  # backtracking candidates shrinkʲ (else the full step only)
    kl_check: bool  # a candidate needs KL ≤ δ


VARIANT_PIECES = {
    "trpo": Variant("trpo", natural=True, trust_region=True, line_search=True, kl_check=True),
    "npg": Variant("npg", natural=True, trust_region=True, line_search=False, kl_check=False),
    "no-kl-check": Variant(
        "no-kl-check", natural=True, trust_region=True, line_search=True, kl_check=False
    ),
    "gradient": Variant(
        "gradient", natural=False, trust_region=True, line_search=True, kl_check=True
    ),
    "vanilla-pg": Variant(
        "vanilla-pg", natural=False, trust_region=False, line_search=False, kl_check=False
    ),
}


def variant(name: str) -> Variant:
    """The pieces of the variant ``name`` (``ValueError`` naming the known ones)."""
    try:
        return VARIANT_PIECES[name]
    except (KeyError, TypeError):
        raise ValueError(f"variant must be one of {', '.join(VARIANTS)}, got {name!r}") from None


def accepted_candidate(pieces: Variant, kls, improvements, max_kl: float) -> int | None:
    """Index of the candidate the variant takes, or None.

    With a line search: the first finite candidate with gain > 0 (and KL ≤ δ when the
    variant checks the KL). Without: the one full step, whenever it evaluated finite.
    """
    for j, (kl, gain) in enumerate(zip(kls, improvements, strict=True)):
        if not (math.isfinite(kl) and math.isfinite(gain)):
            continue
        if not pieces.line_search:
            return j
        if gain > 0 and (kl <= max_kl or not pieces.kl_check):
            return j
    return None


def step_status(
    g_finite: bool, curvature: float, step_finite: bool, accepted: bool, pieces: Variant
) -> str:
    """Why the update took its step or not (one of :data:`STEP_STATUSES`).

    ``curvature`` is dᵀ(F+λI)d of the direction (NaN for vanilla-pg when not computed);
    it matters only for the variants that scale by it.
    """
    if not g_finite:
        return "non_finite_gradient"
    if pieces.trust_region and not math.isfinite(curvature):
        return "non_finite_curvature"
    if pieces.trust_region and curvature <= 0:
        return "non_positive_curvature"
    if not step_finite:
        return "non_finite_step"
    if accepted:
        return "accepted"
    return "line_search_rejected" if pieces.line_search else "non_finite_candidate"
