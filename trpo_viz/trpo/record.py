"""What happened in one TRPO update: a plain dataclass with a JSON round trip."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

from trpo_viz.serialize import to_jsonable

WALL_TIME_FIELDS = (
    "wall_rollout_s",
    "wall_fvp_cg_s",
    "wall_line_search_s",
    "wall_value_fit_s",
    "wall_exact_fisher_s",
    "wall_s",
)
# Lists of numbers where NaN/±Inf are saved as null and read back as NaN.
NUMBER_LISTS = (
    "cg_residuals",
    "cg_curvatures",
    "cg_orthogonality",
    "cg_ritz_values",
    "cg_exact_errors",
    "cg_exact_errors_fnorm",
    "fisher_eigenvalues",
)
EXACT_FISHER_STATUSES = ("", "computed", "too_large", "singular", "non_finite")
# Written to the --metrics line of an update whose exact Fisher was asked for.
EXACT_METRICS = (
    "exact_fisher_status",
    "cg_exact_errors",
    "cg_exact_errors_fnorm",
    "cg_exact_cosines",
    "exact_step_cosine",
    "exact_expected_improvement",
    "exact_full_step_improvement",
    "exact_full_step_kl",
    "exact_improvement",
    "exact_kl",
    "exact_step_fraction",
    "fisher_eigenvalues",
    "fisher_eigenvalue_floor",
    "fisher_rank",
    "fisher_condition",
    "fisher_condition_damped",
)


@dataclass
class LineSearchCandidate:
    """θ_old + fraction · full_step, as evaluated by the line search."""

    fraction: float
    kl: float  # mean KL(π_old ‖ π_candidate) over the batch
    surrogate: float  # L(candidate)
    improvement: float  # L(candidate) − L(θ_old)
    expected_improvement: float  # fraction · gᵀ·full_step (the linear model)


@dataclass
class UpdateRecord:
    """One trust-region step. Vectors are the flat policy parameters θ (n entries).

    The update: g = ∇L(θ_old), s ≈ (F + λI)⁻¹ g by CG, full_step = β·s with
    β = √(2δ / sᵀ(F+λI)s), then backtracking θ_old + fraction·full_step. The ablation
    variants (:mod:`trpo_viz.trpo.variants`) change the direction, its length or the
    acceptance; the fields keep their meaning (a variant without CG records 0 iterations).
    """

    update: int
    total_timesteps: int
    episode_returns: list[float] = field(default_factory=list)
    episode_lengths: list[int] = field(default_factory=list)
    # Trust region and line search.
    max_kl: float = 0.0  # δ
    kl: float = 0.0  # mean KL of the accepted step (0 when rejected)
    surrogate_before: float = 0.0
    surrogate_after: float = 0.0
    expected_improvement: float = 0.0  # gᵀ·full_step
    actual_improvement: float = 0.0  # surrogate_after − surrogate_before
    candidates: list[LineSearchCandidate] = field(default_factory=list)
    accepted_index: int | None = None
    accepted: bool = False
    backtracks: int = 0
    step_fraction: float = 0.0  # fraction of the full step taken
    # Natural-gradient solve.
    gradient_norm: float = 0.0  # ‖g‖
    step_norm: float = 0.0  # ‖full_step‖
    sFs: float = 0.0  # dᵀ(F+λI)d of the step direction d (CG's s; g for the gradient variants)
    step_scale: float = 0.0  # β (pg_lr for vanilla-pg)
    variant: str = "trpo"  # trpo_viz.trpo.variants: which pieces of TRPO the update used
    step_status: str = ""  # what became of the step (variants.STEP_STATUSES; "" before them)
    cg_iterations: int = 0
    cg_stop_reason: str = ""
    cg_residuals: list[float] = field(default_factory=list)  # ‖r_0‖ … ‖r_k‖
    cg_curvatures: list[float] = field(default_factory=list)  # p_iᵀ(F+λI)p_i
    # ‖g − (F+λI)s‖ recomputed from the returned s (None in runs saved before it existed):
    # unlike cg_residuals[-1], the recursively updated residual, it is what s attains.
    cg_true_residual: float | None = None
    cg_dtype: str = "float32"  # dtype of the Fisher-vector products and CG
    # max_{j<k} |cos(r_j, r_k)| per iteration (0 in exact CG; see trpo_viz.trpo.numerics)
    cg_orthogonality: list[float] = field(default_factory=list)
    cg_rounding_floor: float | None = None  # ε(‖g‖ + ‖F+λI‖·max‖x_k‖): below is rounding
    # Eigenvalues of CG's tridiagonal T_k (from its α, β; ascending): Ritz values of F + λI.
    cg_ritz_values: list[float] = field(default_factory=list)
    # The exact natural gradient (config.exact_fisher; trpo_viz.trpo.fisher), F built in
    # float64 on the FVP's states, s* = (F + λI)⁻¹ g. Status "" (not asked for),
    # "computed", "too_large" (more parameters than exact_fisher_max_params), "singular"
    # (F + λI not invertible) or "non_finite" (g or F not finite); lists empty unless computed.
    exact_fisher_status: str = ""
    # Per CG iterate x_k, k = 0 … cg_iterations: ‖x_k − s*‖/‖s*‖, the same in the
    # (F+λI)-norm, and cos(x_k, s*) (None at k = 0, where x_0 = 0).
    cg_exact_errors: list[float] = field(default_factory=list)
    cg_exact_errors_fnorm: list[float] = field(default_factory=list)
    cg_exact_cosines: list[float | None] = field(default_factory=list)
    exact_step_cosine: float | None = None  # cos(step direction, s*)
    # Exact TRPO: Δ* = √(2δ / s*ᵀ(F+λI)s*)·s*, the same line search (KL ≤ δ, improvement > 0).
    exact_expected_improvement: float | None = None  # gᵀΔ*
    exact_full_step_improvement: float | None = None  # L(θ_old + Δ*) − L(θ_old)
    exact_full_step_kl: float | None = None  # mean KL at θ_old + Δ*
    exact_improvement: float | None = None  # of the candidate exact TRPO accepts (0: none)
    exact_kl: float | None = None  # its mean KL (0 when none is accepted)
    exact_step_fraction: float | None = None  # its fraction of Δ* (0 when none is accepted)
    # F's eigenvalues, ascending (undamped; |λ_i| ≤ fisher_eigenvalue_floor recorded as 0:
    # rounding of F's zero eigenvalues), its numerical rank, κ(F) (None when singular)
    # and κ(F + λI).
    fisher_eigenvalues: list[float] = field(default_factory=list)
    fisher_eigenvalue_floor: float | None = None
    fisher_rank: int | None = None
    fisher_condition: float | None = None
    fisher_condition_damped: float | None = None
    # Policy and value function.
    entropy: float = 0.0  # mean entropy of π_old on the batch
    value_loss: float = 0.0  # mean squared error after fitting (last epoch)
    value_loss_before: float = 0.0
    explained_variance: float = 0.0  # of the returns by V before fitting
    returns_relative_variance: float | None = None  # Var(R) / mean(R²) of the value targets
    # Wall time (seconds).
    wall_rollout_s: float = 0.0
    wall_fvp_cg_s: float = 0.0
    wall_line_search_s: float = 0.0
    wall_value_fit_s: float = 0.0
    wall_exact_fisher_s: float = 0.0  # building F, solving, its spectrum (0 if not asked)
    wall_s: float = 0.0

    @property
    def mean_return(self) -> float | None:
        if not self.episode_returns:
            return None
        return sum(self.episode_returns) / len(self.episode_returns)

    def to_dict(self) -> dict:
        """JSON-ready dict; NaN and ±Inf become None."""
        return to_jsonable(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, data: dict) -> UpdateRecord:
        values = {f.name: data[f.name] for f in dataclasses.fields(cls) if f.name in data}
        values["candidates"] = [
            LineSearchCandidate(**{k: _nan_if_none(v) for k, v in c.items()})
            for c in values.get("candidates", [])
        ]
        for f in dataclasses.fields(cls):
            if f.type == "float" and f.name in values:
                values[f.name] = _nan_if_none(values[f.name])
        for name in NUMBER_LISTS:
            if name in values:
                values[name] = [_nan_if_none(v) for v in values[name]]
        return cls(**values)

    def metrics(self) -> dict:
        """The flat per-update summary written to the CLI's --metrics JSONL file."""
        return to_jsonable(
            {
                "update": self.update,
                "timesteps": self.total_timesteps,
                "mean_return": self.mean_return,
                "episodes": len(self.episode_returns),
                "kl": self.kl,
                "max_kl": self.max_kl,
                "surrogate_before": self.surrogate_before,
                "surrogate_after": self.surrogate_after,
                "expected_improvement": self.expected_improvement,
                "actual_improvement": self.actual_improvement,
                "backtracks": self.backtracks,
                "accepted": self.accepted,
                "variant": self.variant,
                "step_status": self.step_status,
                "cg_iterations": self.cg_iterations,
                "cg_stop_reason": self.cg_stop_reason,
                "cg_residuals": self.cg_residuals,
                "cg_true_residual": self.cg_true_residual,
                "cg_dtype": self.cg_dtype,
                "step_norm": self.step_norm,
                "entropy": self.entropy,
                "value_loss": self.value_loss,
                "explained_variance": self.explained_variance,
                "cg_ritz_values": self.cg_ritz_values,
                **{name: getattr(self, name) for name in WALL_TIME_FIELDS},
                **(
                    {name: getattr(self, name) for name in EXACT_METRICS}
                    if self.exact_fisher_status
                    else {}
                ),
            }
        )


def _nan_if_none(value):
    return math.nan if value is None else value
