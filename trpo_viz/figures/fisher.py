"""Figures of CG against the exact natural gradient: one update, and over the run.

Plain :class:`~trpo_viz.trpo.record.UpdateRecord`\\ s in, Plotly figures out (no
Streamlit). The records' exact-Fisher fields are described in
:mod:`trpo_viz.trpo.fisher`: per CG iterate x_k the relative error ‖x_k − s*‖/‖s*‖, the
same in the (F+λI)-norm, cos(x_k, s*); F's eigenvalues; exact TRPO's gain. The Fisher's
spectrum is drawn by :mod:`trpo_viz.figures.fisher_spectrum`; the helpers here
(:func:`exact_fisher_note`, :func:`condition_numbers`, …) read the records for both.

**What rounding lets these curves mean.** CG runs in the record's ``cg_dtype``; s* is
solved in float64. A solve of A s = g (A = F + λI) in a precision with unit roundoff ε
is accurate to a relative error of about ε·κ(A) (Higham, "Accuracy and Stability of
Numerical Algorithms", §7.1: the forward error of a backward-stable solve), so CG's
error against s* is compared with the level ε·κ(F + λI) (:func:`rounding_level`).
Below it the error is at the scale rounding produces for this system: the figure
shades that band and says that the curve there is rounding noise, not CG's mathematics.
It is an order of magnitude, not a sharp floor. Measured on CartPole-v1 (64×64 policy,
n = 4,610, 1,024 states, 80 CG iterations, first three updates): float32 with
λ = 1e-3 levels off at relative errors 1e-5 to 3.5e-5 where ε·κ ≈ 1.5e-4 to 7e-4 (F has
~4,500 zero eigenvalues, where F + λI = λI is solved almost exactly); with λ = 0.1 at
7e-7 to 1.5e-6 where ε·κ ≈ 1.1e-6 to 1.7e-6; float64 with λ = 1e-3 at 1e-13 where
ε·κ ≈ 1.3e-12. The CG residual chart's orthogonality test
(:func:`~trpo_viz.trpo.numerics.first_rounding_iteration`) says from which k the
iterates are no longer those of exact-arithmetic CG; the figure repeats it.

Build cost: a handful of traces, built unvalidated (:mod:`trpo_viz.figures.plain`): a
few milliseconds a figure for CartPole's 4,610-parameter policy.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go

from trpo_viz.figures import plain
from trpo_viz.trpo.numerics import first_rounding_iteration

ERROR_COLOR = "#d62728"
FNORM_COLOR = "#9467bd"
COSINE_COLOR = "#1f77b4"
EIGEN_COLOR = "#2ca02c"
DAMPED_COLOR = "#17becf"
RITZ_COLOR = "#ff7f0e"
BOUND_COLOR = "#7f7f7f"
COPY_COLOR = "#9e9e9e"  # Ritz values that rounding copied
ROUNDING_FILL = "rgba(127, 127, 127, 0.15)"
LOG_AXIS = {"type": "log", "exponentformat": "power"}

_STATUS_NOTES = {
    "": "The exact Fisher was not computed for this update: the run was started without "
    "“exact Fisher beside CG”.",
    "too_large": "The exact Fisher was not computed for this update: the policy has more "
    "parameters than the run's cap (exact_fisher_max_params), above which F is "
    "not built explicitly.",
    "singular": "F + λI is singular in this update (λ = 0 and F rank-deficient): there is no "
    "exact solution s* to compare CG with.",
    "non_finite": "g or F is not finite in this update: there is no exact solution to "
    "compare CG with.",
}


# ----------------------------------------------------------------------------- helpers


def exact_fisher_note(record) -> str | None:
    """Why ``record`` has no exact-Fisher data (plain text), or None when it has."""
    status = getattr(record, "exact_fisher_status", "")
    if status == "computed" and record.cg_exact_errors:
        return None
    return _STATUS_NOTES.get(status, f"No exact-Fisher data (status {status!r}).")


def has_exact(record) -> bool:
    """Whether ``record`` holds CG's errors against the exact solution."""
    return exact_fisher_note(record) is None


def condition_numbers(record, damping: float) -> tuple[float, float] | None:
    """(κ(F), κ(F + λI)) from the record's eigenvalues of F (None without them).

    κ(F) = λ_max/λ_min (inf when F is singular, λ_min = 0); κ(F+λI) = (λ_max + λ)/(λ_min + λ)
    (inf when λ_min + λ ≤ 0).
    """
    values = np.asarray(getattr(record, "fisher_eigenvalues", []), np.float64)
    if values.size == 0 or not np.all(np.isfinite(values)):
        return None
    low, high = float(values.min()), float(values.max())
    kappa = high / low if low > 0 else math.inf
    damped_low = max(low, 0.0) + damping
    kappa_damped = (high + damping) / damped_low if damped_low > 0 else math.inf
    return kappa, kappa_damped


def ritz_condition(record) -> float | None:
    """θ_max/θ_min of CG's Ritz values: a lower bound on κ(F + λI) (None without two)."""
    ritz = [v for v in getattr(record, "cg_ritz_values", []) if plain.finite(v)]
    if len(ritz) < 2 or min(ritz) <= 0:
        return None
    return max(ritz) / min(ritz)


def rounding_level(record) -> float | None:
    """ε·κ(F + λI) in the record's CG dtype: the relative error a solve of this system
    reaches from rounding alone (order of magnitude); None when κ is unknown or infinite."""
    kappa = getattr(record, "fisher_condition_damped", None)
    if not (plain.finite(kappa) and kappa >= 1):
        return None
    dtype = getattr(record, "cg_dtype", "float32") or "float32"
    return float(np.finfo(np.dtype(dtype)).eps) * kappa


def first_below(values: Sequence, level: float) -> int | None:
    """The first index whose value is at or below ``level`` (None if none is)."""
    for k, value in enumerate(values):
        if plain.finite(value) and value <= level:
            return k
    return None


# ----------------------------------------------------------------------------- one update


def cg_vs_exact_figure(record) -> go.Figure:
    """CG's iterates x_k against the exact s* = (F+λI)⁻¹g, per iteration k.

    Top (log axis): ‖x_k − s*‖/‖s*‖ and the (F+λI)-norm error ‖x_k − s*‖_A/‖s*‖_A; the
    band below the rounding level ε·κ(F+λI) of the record's dtype (:func:`rounding_level`)
    is shaded, the first k whose relative error reaches it is ringed, and a sentence says
    that below it the curve is rounding noise. Bottom: cos(x_k, s*) (no value at k = 0,
    where x_0 = 0). A record without exact data gives a figure that says why
    (:func:`exact_fisher_note`).
    """
    title = f"CG against the exact natural gradient (update {record.update + 1})"
    note = exact_fisher_note(record)
    if note is not None:
        return plain.message_figure(title, note)
    errors = list(record.cg_exact_errors)
    fnorm = list(getattr(record, "cg_exact_errors_fnorm", []) or [])
    cosines = list(record.cg_exact_cosines)
    ks = list(range(len(errors)))
    dtype = getattr(record, "cg_dtype", "float32") or "float32"
    level = rounding_level(record)
    data: list = []
    sentences = []
    if level is not None:
        shown = [v for v in (*errors, *fnorm) if plain.finite(v) and v > 0]
        bottom = min([level, *shown]) / 10
        band_x = [-0.5, len(errors) - 0.5]
        data.append(
            plain.scatter(
                x=band_x,
                y=[bottom, bottom],
                mode="lines",
                line={"width": 0},
                showlegend=False,
                hoverinfo="skip",
            )
        )
        data.append(
            plain.scatter(
                x=band_x,
                y=[level, level],
                mode="lines",
                fill="tonexty",
                fillcolor=ROUNDING_FILL,
                line={"color": BOUND_COLOR, "dash": "dash", "width": 1},
                name=f"ε·κ(F+λI) in {dtype}: below, rounding noise",
                hovertemplate=f"rounding level ε·κ = {level:.2e}<extra></extra>",
            )
        )
    data.append(
        plain.scatter(
            x=ks,
            y=plain.log_values(errors),
            mode="lines+markers",
            name="‖x_k − s*‖ / ‖s*‖",
            line={"color": ERROR_COLOR},
        )
    )
    if fnorm:
        data.append(
            plain.scatter(
                x=ks,
                y=plain.log_values(fnorm),
                mode="lines+markers",
                name="‖x_k − s*‖_A / ‖s*‖_A (A = F+λI)",
                line={"color": FNORM_COLOR},
            )
        )
    data.append(
        plain.scatter(
            x=ks[1:],
            y=plain.gaps(cosines[1:]),
            mode="lines+markers",
            name="cos(x_k, s*)",
            line={"color": COSINE_COLOR},
            yaxis="y2",
        )
    )
    if level is not None:
        reached = first_below(errors, level)
        sentences.append(
            f"Shaded: below ε·κ(F+λI) = {level:.1e}, the error a {dtype} solve of this system "
            "gets from rounding alone; there the curve is rounding noise, not mathematics."
        )
        if reached is None:
            sentences.append("CG's error stays above it: the whole curve is CG's own.")
        else:
            sentences.append(f"The relative error reaches it at k = {reached}.")
            data.append(
                plain.scatter(
                    x=[reached],
                    y=[errors[reached]],
                    mode="markers",
                    showlegend=False,
                    marker={
                        "size": 16,
                        "symbol": "circle-open",
                        "line": {"width": 2},
                        "color": ERROR_COLOR,
                    },
                    hovertemplate=f"k = {reached}: the error reaches {dtype}'s rounding "
                    "level<extra></extra>",
                )
            )
    else:
        sentences.append("κ(F+λI) is not finite: no rounding level can be stated.")
    k_lost = first_rounding_iteration(getattr(record, "cg_orthogonality", []))
    if k_lost is not None and len(errors) > 1:
        sentences.append(
            f"From k = {k_lost} CG's residuals are no longer orthogonal: the "
            f"iterates are {dtype}'s, not those of exact-arithmetic CG."
        )
    if len(errors) == 1:
        cosine = getattr(record, "exact_step_cosine", None)
        sentences.append(
            f"The {record.variant} variant runs no CG (x_0 = 0 only)"
            + (f"; its direction g has cos(g, s*) = {cosine:.4f}." if plain.finite(cosine) else ".")
        )
    finite_cosines = [c for c in cosines[1:] if plain.finite(c)]
    header, top = plain.header([" ".join(sentences)])
    figure_layout = plain.layout(
        title,
        540,
        xaxis={
            "title": {"text": "CG iteration k"},
            "anchor": "y2",
            "dtick": 1 if len(errors) <= 20 else None,
            "range": [-0.5, len(errors) - 0.5],
        },
        yaxis={"title": {"text": "error against s*"}, "domain": [0.4, 1.0], **LOG_AXIS},
        yaxis2={
            "title": {"text": "cos(x_k, s*)"},
            "domain": [0.0, 0.28],
            "anchor": "x",
            "range": [min([0.0, *finite_cosines]) - 0.05, 1.05],
        },
        annotations=[header],
        margin={"l": 60, "r": 20, "t": top, "b": 50},
        legend={"orientation": "h", "y": -0.14, "yanchor": "top", "x": 0},
    )
    return plain.figure(data, figure_layout)


# ----------------------------------------------------------------------------- over time


def exact_over_time_figure(records: Sequence) -> go.Figure:
    """Per update: CG's final error against s*, κ(F + λI), and what exact TRPO would gain.

    Top: ‖x_K − s*‖/‖s*‖ and the (F+λI)-norm error after the CG iterations the update
    ran, with the relative error's rounding level. Middle: κ(F + λI), and CG's own lower
    bound θ_max/θ_min (every update with CG, exact data or not). Bottom: the surrogate
    improvement of the step this run took against that of exact TRPO's step (s* scaled to
    δ, the same line search). Updates without exact data are gaps, never zeros.
    """
    updates = [r.update + 1 for r in records]
    exact = [has_exact(r) for r in records]

    def column(get):
        return [get(r) if ok else None for r, ok in zip(records, exact, strict=True)]

    final = column(lambda r: r.cg_exact_errors[-1])
    final_fnorm = column(lambda r: (r.cg_exact_errors_fnorm or [None])[-1])
    level = column(rounding_level)
    kappa = column(lambda r: r.fisher_condition_damped)
    ritz_kappa = [ritz_condition(r) for r in records]
    exact_gain = column(lambda r: r.exact_improvement)
    gains = [r.actual_improvement for r in records]
    marks = "lines+markers" if len(records) <= 200 else "lines"
    line = {"mode": marks, "connectgaps": False}
    scatter = plain.scatter
    data = [
        scatter(
            x=updates,
            y=plain.log_values(final),
            name="‖x_K − s*‖/‖s*‖ (after CG)",
            line={"color": ERROR_COLOR},
            **line,
        ),
        scatter(
            x=updates,
            y=plain.log_values(final_fnorm),
            name="(F+λI)-norm error (after CG)",
            line={"color": FNORM_COLOR},
            **line,
        ),
        scatter(
            x=updates,
            y=plain.log_values(level),
            name="rounding level ε·κ(F + λI)",
            mode=marks,
            line={"color": BOUND_COLOR, "dash": "dash", "width": 1},
            marker={"size": 4},
            connectgaps=False,
        ),
        scatter(
            x=updates,
            y=plain.log_values(kappa),
            name="κ(F + λI) (exact)",
            yaxis="y2",
            line={"color": DAMPED_COLOR},
            **line,
        ),
        scatter(
            x=updates,
            y=plain.log_values(ritz_kappa),
            yaxis="y2",
            name="θ_max/θ_min ≤ κ(F + λI) (CG's Ritz values)",
            mode="lines",
            line={"color": RITZ_COLOR, "dash": "dot"},
            connectgaps=False,
        ),
        scatter(
            x=updates,
            y=plain.gaps(gains),
            name="this run's step: L(θ_new) − L(θ_old)",
            yaxis="y3",
            line={"color": COSINE_COLOR},
            **line,
        ),
        scatter(
            x=updates,
            y=plain.gaps(exact_gain),
            name="exact TRPO's step (s*, same line search)",
            yaxis="y3",
            line={"color": EIGEN_COLOR, "dash": "dash"},
            **line,
        ),
    ]
    missing = len(records) - sum(exact)
    annotations = [
        plain.note("CG's error against s*", y=1.0, yanchor="bottom", x=0.0, xanchor="left"),
        plain.note("condition number", y=0.64, yanchor="bottom", x=0.0, xanchor="left"),
        plain.note("surrogate improvement", y=0.29, yanchor="bottom", x=0.0, xanchor="left"),
    ]
    if not records:
        annotations.append(plain.note("No updates yet."))
    elif missing == len(records):
        annotations.append(
            plain.note(
                plain.wrap(
                    "No update has exact-Fisher data: " + (exact_fisher_note(records[-1]) or "")
                ),
                y=0.82,
            )
        )
    elif missing:
        annotations.append(
            plain.note(
                f"{missing} of {len(records)} updates have no exact-Fisher data: gaps, not zeros.",
                y=1.0,
                yanchor="bottom",
                x=1.0,
                xanchor="right",
            )
        )
    figure_layout = plain.layout(
        "The exact natural gradient over the run",
        720,
        xaxis={
            "title": {"text": "update"},
            "anchor": "y3",
            "dtick": 1 if len(records) <= 20 else None,
        },
        yaxis={"domain": [0.72, 1.0], "title": {"text": "error"}, **LOG_AXIS},
        yaxis2={"domain": [0.36, 0.64], "title": {"text": "κ"}, "anchor": "x", **LOG_AXIS},
        yaxis3={
            "domain": [0.0, 0.29],
            "title": {"text": "L − L_old"},
            "anchor": "x",
            "zeroline": True,
        },
        annotations=annotations,
        legend={"orientation": "h", "y": -0.08, "yanchor": "top", "x": 0},
        margin={"l": 60, "r": 20, "t": 70, "b": 50},
    )
    return plain.figure(data, figure_layout)

