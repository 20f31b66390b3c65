"""Presets of the CG explorer as plain data, each chosen to teach one thing about CG.

A preset fills the explorer's inputs (the same names as its URL query parameters):
``expr``, ``theta``, ``g``, ``damping``, ``iters`` (None: n, capped), ``tol`` (None: the
dtype's default, see :data:`trpo_viz.explorer.DEFAULT_TOL`), ``dtype``, ``hvp``, ``x0``
(empty: zeros). No Streamlit here: the page applies them.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

SOURCE_EXPR = "x1**3 + 2*x1*x2 + x2**2 - x1 + x3**2"
MIN_KAPPA, MAX_KAPPA, DEFAULT_KAPPA = 1.0, 1000.0, 25.0
QUADRATIC_ANGLE = math.pi / 6  # rotation of the quadratic's eigenvectors against the axes


@dataclass(frozen=True)
class Preset:
    """One worked example: the inputs, and what it is meant to show."""

    key: str
    title: str
    lesson: str
    expr: str
    theta: str
    g: str
    damping: float = 0.0
    iters: int | None = None
    tol: float | None = None
    dtype: str = "float64"
    hvp: str = "reverse"
    x0: str = ""

    def inputs(self) -> dict:
        """The input values keyed by query-parameter name."""
        values = asdict(self)
        for name in ("key", "title", "lesson"):
            values.pop(name)
        return values


def rotated_quadratic(kappa: float, angle: float = QUADRATIC_ANGLE) -> str:
    """Expression text of f(x) = ½ xᵀAx with A = R diag(1, κ) Rᵀ, R a rotation by ``angle``.

    Its Hessian is A everywhere, with eigenvalues 1 and κ: condition number κ.
    """
    if not (math.isfinite(kappa) and MIN_KAPPA <= kappa <= MAX_KAPPA):
        raise ValueError(f"κ must be between {MIN_KAPPA:g} and {MAX_KAPPA:g}")
    c, s = math.cos(angle), math.sin(angle)
    a11 = c * c + kappa * s * s
    a12 = c * s * (1.0 - kappa)
    a22 = s * s + kappa * c * c
    return f"0.5*{a11:.12g}*x1**2 + {a12:.12g}*x1*x2 + 0.5*{a22:.12g}*x2**2"


PRESETS: dict[str, Preset] = {
    p.key: p
    for p in (
        Preset(
            key="source",
            title="Source post: a cubic in 3 variables",
            lesson=(
                "The worked example of the source post: H is 3×3 and positive definite at "
                "θ = (3, 1, 5), so CG reaches the exact H⁻¹g = (−0.5625, 6.5625, 3) in at most "
                "3 HVPs, without ever forming H."
            ),
            expr=SOURCE_EXPR,
            theta="3, 1, 5",
            g="3, 12, 6",
        ),
        Preset(
            key="quadratic",
            title="2-D quadratic with condition number κ",
            lesson=(
                "A rotated quadratic with eigenvalues 1 and κ. CG needs 2 steps whatever κ is; "
                "steepest descent (grey) from the same start zig-zags, more slowly as κ grows."
            ),
            expr=rotated_quadratic(DEFAULT_KAPPA),
            theta="0, 0",
            g="1, 1",
        ),
        Preset(
            key="rosenbrock",
            title="Rosenbrock at (−1.2, 1): a Newton step",
            lesson=(
                "H of the Rosenbrock function at the classic start point, with g = ∇f(θ): "
                "CG computes the Newton step H⁻¹∇f from two HVPs."
            ),
            expr="(1 - x1)**2 + 100*(x2 - x1**2)**2",
            theta="-1.2, 1",
            g="-215.6, -88",
        ),
        Preset(
            key="saddle",
            title="Indefinite saddle: negative curvature",
            lesson=(
                "H = [[2, 1], [1, −2]] has eigenvalues ±√5: CG meets a direction of negative "
                "curvature and stops. Damping λ > √5 ≈ 2.24 makes H + λI positive definite."
            ),
            expr="x1**2 + x1*x2 - x2**2",
            theta="0, 0",
            g="1, 0.2",
        ),
        Preset(
            key="logistic",
            title="High-dimensional loss: logistic regression, n = 1000",
            lesson=(
                "A convex loss in 1000 parameters. Forming H costs n = 1000 HVPs (shown here "
                "for comparison); CG reaches a relative error of 10⁻⁶ in a few dozen."
            ),
            expr="@logistic_regression",
            theta="0",
            g="1",
            tol=1e-6,
        ),
    )
}
DEFAULT_PRESET = "source"
DEFAULT_INPUTS = PRESETS[DEFAULT_PRESET].inputs()


def preset_expression(key: str, kappa: float = DEFAULT_KAPPA) -> str:
    """The expression preset ``key`` loads (the quadratic's follows ``kappa``)."""
    return rotated_quadratic(kappa) if key == "quadratic" else PRESETS[key].expr


def preset_inputs(key: str, kappa: float = DEFAULT_KAPPA) -> dict:
    """The inputs of preset ``key``; the quadratic's expression follows ``kappa``."""
    return PRESETS[key].inputs() | {"expr": preset_expression(key, kappa)}
