"""Figures of CG against the exact natural gradient, and of the Fisher's spectrum.

Plain :class:`~trpo_viz.trpo.record.UpdateRecord`\\ s in, Plotly figures out (no
Streamlit). The records' exact-Fisher fields are described in
:mod:`trpo_viz.trpo.fisher`: per CG iterate x_k the relative error ‖x_k − s*‖/‖s*‖, the
same in the (F+λI)-norm, cos(x_k, s*); F's eigenvalues; exact TRPO's gain.

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

Build cost: a handful of traces of at most a few hundred points (F's n eigenvalues are
drawn as their distinct values: a run of equal ones, F's zeros above all, is two points),
so a figure builds in milliseconds even for CartPole's 4,610-parameter policy.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio

from trpo_viz.trpo.numerics import first_rounding_iteration

ERROR_COLOR = "#d62728"
FNORM_COLOR = "#9467bd"
COSINE_COLOR = "#1f77b4"
EIGEN_COLOR = "#2ca02c"
DAMPED_COLOR = "#17becf"
RITZ_COLOR = "#ff7f0e"
BOUND_COLOR = "#7f7f7f"
ROUNDING_FILL = "rgba(127, 127, 127, 0.15)"
LOG_AXIS = {"type": "log", "exponentformat": "power"}
_TEMPLATE = "plotly_white"  # resolved once, on first use (see _figure)

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
    ritz = [v for v in getattr(record, "cg_ritz_values", []) if _finite(v)]
    if len(ritz) < 2 or min(ritz) <= 0:
        return None
    return max(ritz) / min(ritz)


def rounding_level(record) -> float | None:
    """ε·κ(F + λI) in the record's CG dtype: the relative error a solve of this system
    reaches from rounding alone (order of magnitude); None when κ is unknown or infinite."""
    kappa = getattr(record, "fisher_condition_damped", None)
    if not (_finite(kappa) and kappa >= 1):
        return None
    dtype = getattr(record, "cg_dtype", "float32") or "float32"
    return float(np.finfo(np.dtype(dtype)).eps) * kappa


def first_below(values: Sequence, level: float) -> int | None:
    """The first index whose value is at or below ``level`` (None if none is)."""
    for k, value in enumerate(values):
        if _finite(value) and value <= level:
            return k
    return None


def _finite(value) -> bool:
    return value is not None and isinstance(value, int | float) and math.isfinite(value)


def _log_values(values) -> list:
    """For a log axis: non-positive, non-finite and missing values become gaps (None)."""
    return [float(v) if _finite(v) and v > 0 else None for v in values]


def _gaps(values) -> list:
    """Missing or non-finite values become gaps (None); the rest stay as they are."""
    return [float(v) if _finite(v) else None for v in values]


def _scatter(**props) -> dict:
    """A scatter trace as a plain dict (validated by the tests, not on every build)."""
    return {"type": "scatter", **props}


def _figure(data: list[dict], layout: dict) -> go.Figure:
    """The figure, built without plotly's per-property validation.

    Validating costs about 15 ms a figure, most of it on the template, and the TRPO page
    rebuilds these while it trains; the properties here are fixed in code, and the tests
    rebuild every figure with validation on (``go.Figure(fig.to_dict())``). Unvalidated,
    a template must be the Template object: plotly.js does not know template names.
    """
    return go.Figure(data=data, layout={**layout, "template": pio.templates[_TEMPLATE]},
                     _validate=False)


def _layout(title: str, height: int, **extra) -> dict:
    layout = {"title": {"text": title, "yref": "container", "y": 1.0, "yanchor": "top",
                        "pad": {"t": 12}},
              "height": height,
              "margin": {"l": 60, "r": 20, "t": 60, "b": 50},
              "legend": {"orientation": "h", "y": -0.18, "yanchor": "top", "x": 0}}
    layout.update(extra)
    return layout


def _note(text: str, y: float = 0.5, **extra) -> dict:
    """A paper-anchored annotation (a sentence across the chart)."""
    return {"text": text, "xref": "paper", "yref": "paper", "x": 0.5, "y": y,
            "showarrow": False, "font": {"size": 12}, "align": "center", **extra}


def _header(sentences: list[str], width: int = 120) -> tuple[dict, int]:
    """Sentences as an annotation above the plot area, and the top margin it needs."""
    lines = "<br>".join(_wrap(sentence, width) for sentence in sentences)
    return (_note(lines, y=1.0, yanchor="bottom", font={"size": 11}),
            48 + 15 * (lines.count("<br>") + 1))


def _message_figure(title: str, text: str, height: int = 360) -> go.Figure:
    """No data to draw: hidden axes and the reason in the middle."""
    return _figure([], _layout(
        title, height, xaxis={"visible": False}, yaxis={"visible": False},
        annotations=[_note(_wrap(text), font={"size": 14})]))


def _wrap(text: str, width: int = 90) -> str:
    """Plotly annotations do not wrap: break long sentences with <br>."""
    lines, line = [], ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    if line:
        lines.append(line)
    return "<br>".join(lines)


def _number(value: float) -> str:
    if value is None or not math.isfinite(value):
        return "∞"
    return f"{value:,.0f}" if value >= 1e4 else f"{value:.4g}"


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
        return _message_figure(title, note)
    errors = list(record.cg_exact_errors)
    fnorm = list(getattr(record, "cg_exact_errors_fnorm", []) or [])
    cosines = list(record.cg_exact_cosines)
    ks = list(range(len(errors)))
    dtype = getattr(record, "cg_dtype", "float32") or "float32"
    level = rounding_level(record)
    data: list = []
    sentences = []
    if level is not None:
        shown = [v for v in (*errors, *fnorm) if _finite(v) and v > 0]
        bottom = min([level, *shown]) / 10
        band_x = [-0.5, len(errors) - 0.5]
        data.append(_scatter(x=band_x, y=[bottom, bottom], mode="lines", line={"width": 0},
                             showlegend=False, hoverinfo="skip"))
        data.append(_scatter(
            x=band_x, y=[level, level], mode="lines", fill="tonexty", fillcolor=ROUNDING_FILL,
            line={"color": BOUND_COLOR, "dash": "dash", "width": 1},
            name=f"ε·κ(F+λI) in {dtype}: below, rounding noise",
            hovertemplate=f"rounding level ε·κ = {level:.2e}<extra></extra>"))
    data.append(_scatter(x=ks, y=_log_values(errors), mode="lines+markers",
                         name="‖x_k − s*‖ / ‖s*‖", line={"color": ERROR_COLOR}))
    if fnorm:
        data.append(_scatter(x=ks, y=_log_values(fnorm), mode="lines+markers",
                             name="‖x_k − s*‖_A / ‖s*‖_A (A = F+λI)",
                             line={"color": FNORM_COLOR}))
    data.append(_scatter(x=ks[1:], y=_gaps(cosines[1:]), mode="lines+markers",
                         name="cos(x_k, s*)", line={"color": COSINE_COLOR}, yaxis="y2"))
    if level is not None:
        reached = first_below(errors, level)
        sentences.append(
            f"Shaded: below ε·κ(F+λI) = {level:.1e}, the error a {dtype} solve of this system "
            "gets from rounding alone; there the curve is rounding noise, not mathematics.")
        if reached is None:
            sentences.append("CG's error stays above it: the whole curve is CG's own.")
        else:
            sentences.append(f"The relative error reaches it at k = {reached}.")
            data.append(_scatter(
                x=[reached], y=[errors[reached]], mode="markers", showlegend=False,
                marker={"size": 16, "symbol": "circle-open", "line": {"width": 2},
                        "color": ERROR_COLOR},
                hovertemplate=f"k = {reached}: the error reaches {dtype}'s rounding "
                              "level<extra></extra>"))
    else:
        sentences.append("κ(F+λI) is not finite: no rounding level can be stated.")
    k_lost = first_rounding_iteration(getattr(record, "cg_orthogonality", []))
    if k_lost is not None and len(errors) > 1:
        sentences.append(f"From k = {k_lost} CG's residuals are no longer orthogonal: the "
                         f"iterates are {dtype}'s, not those of exact-arithmetic CG.")
    if len(errors) == 1:
        cosine = getattr(record, "exact_step_cosine", None)
        sentences.append(f"The {record.variant} variant runs no CG (x_0 = 0 only)"
                         + (f"; its direction g has cos(g, s*) = {cosine:.4f}."
                            if _finite(cosine) else "."))
    finite_cosines = [c for c in cosines[1:] if _finite(c)]
    header, top = _header([" ".join(sentences)])
    layout = _layout(
        title, 540,
        xaxis={"title": {"text": "CG iteration k"}, "anchor": "y2",
               "dtick": 1 if len(errors) <= 20 else None, "range": [-0.5, len(errors) - 0.5]},
        yaxis={"title": {"text": "error against s*"}, "domain": [0.4, 1.0], **LOG_AXIS},
        yaxis2={"title": {"text": "cos(x_k, s*)"}, "domain": [0.0, 0.28], "anchor": "x",
                "range": [min([0.0, *finite_cosines]) - 0.05, 1.05]},
        annotations=[header],
        margin={"l": 60, "r": 20, "t": top, "b": 50},
        legend={"orientation": "h", "y": -0.14, "yanchor": "top", "x": 0},
    )
    return _figure(data, layout)


def fisher_spectrum_figure(record, damping: float) -> go.Figure:
    """F's eigenvalues and those of F + λI (log axis, largest first), CG's Ritz values on top.

    x is the position i in the spectrum (1 = largest, log axis); a Ritz value θ of
    F + λI is drawn at the position where θ falls among F + λI's eigenvalues, so the
    points on the curve are the eigenvalues CG has found. F's zero eigenvalues cannot be
    drawn on a log axis: their count is stated, and F + λI lifts them to λ. The
    annotation gives κ(F) and κ(F + λI) (:func:`condition_numbers`). Without exact
    eigenvalues (any policy size) the Ritz values alone, with the lower bound
    θ_max/θ_min ≤ κ(F + λI).
    """
    title = f"Spectrum of the Fisher (update {record.update + 1})"
    ritz = np.asarray([v for v in getattr(record, "cg_ritz_values", []) if _finite(v)],
                      np.float64)
    kappas = condition_numbers(record, damping)
    if kappas is None:
        return _ritz_only_figure(record, damping, ritz, title)
    values = np.sort(np.asarray(record.fisher_eigenvalues, np.float64))[::-1]  # descending
    n = len(values)
    positions = np.arange(1, n + 1, dtype=np.float64)
    nonzero = values > 0
    zeros = int(np.count_nonzero(values == 0))
    keep = _run_ends(values)
    damped = values + damping
    data = [
        _scatter(x=positions[keep], y=_log_values(damped[keep]), mode="lines",
                   name="eigenvalues of F + λI", line={"color": DAMPED_COLOR, "width": 3}),
        _scatter(x=positions[keep & nonzero], y=_log_values(values[keep & nonzero]),
                   mode="lines", name="eigenvalues of F (non-zero)",
                   line={"color": EIGEN_COLOR}),
        _scatter(x=[1, n], y=[damping, damping], mode="lines", name=f"λ = {damping:g}",
                   line={"color": BOUND_COLOR, "dash": "dash", "width": 1}),
    ]
    if ritz.size:
        data.append(_scatter(
            x=_spectrum_positions(damped, ritz), y=_log_values(ritz), mode="markers",
            name=f"Ritz values of F + λI (CG, {record.cg_iterations} iterations)",
            marker={"color": RITZ_COLOR, "size": 9, "symbol": "diamond"},
            hovertemplate="θ = %{y:.4g}<extra>Ritz value</extra>"))
    kappa, kappa_damped = kappas
    rank = getattr(record, "fisher_rank", None)
    if math.isinf(kappa):
        before = (f"κ(F) = ∞ (F is singular: {zeros:,} of {n:,} eigenvalues are 0"
                  + (f", rank {rank:,}" if rank is not None else "") + ")")
    else:
        before = f"κ(F) = {_number(kappa)}"
    after = f"κ(F + λI) = (λ_max + λ)/(λ_min + λ) = {_number(kappa_damped)} with λ = {damping:g}"
    lines = [f"{before} → {after}"]
    if zeros:
        lines.append(f"F's {zeros:,} zero eigenvalues (|λ_i| ≤ the float64 floor "
                     f"{record.fisher_eigenvalue_floor or 0:.1e}) are not drawn on the log "
                     "axis; F + λI lifts them to λ.")
    ritz_kappa = ritz_condition(record)
    if ritz_kappa is not None:
        lines.append(f"CG's Ritz values see κ ≥ θ_max/θ_min = {_number(ritz_kappa)}.")
    header, top = _header(lines)
    layout = _layout(
        title, 460,
        xaxis={"title": {"text": "position i in the spectrum (1 = largest)"}, **LOG_AXIS},
        yaxis={"title": {"text": "eigenvalue"}, **LOG_AXIS},
        annotations=[header],
        margin={"l": 60, "r": 20, "t": top, "b": 50},
        meta={"kappa": None if math.isinf(kappa) else kappa,
              "kappa_damped": None if math.isinf(kappa_damped) else kappa_damped},
    )
    return _figure(data, layout)


def _ritz_only_figure(record, damping: float, ritz: np.ndarray, title: str) -> go.Figure:
    if ritz.size == 0:
        reason = exact_fisher_note(record) or ""
        return _message_figure(title, "No spectrum for this update: CG ran no iteration, so "
                                      f"there are no Ritz values. {reason}")
    order = np.sort(ritz)[::-1]
    j = np.arange(1, len(order) + 1)
    data = [
        _scatter(x=j, y=_log_values(order), mode="markers+lines",
                   name=f"Ritz values of F + λI (CG, {record.cg_iterations} iterations)",
                   marker={"color": RITZ_COLOR, "size": 9, "symbol": "diamond"},
                   line={"color": RITZ_COLOR, "width": 1}),
        _scatter(x=[1, len(order)], y=[damping, damping], mode="lines",
                   name=f"λ = {damping:g}: every eigenvalue of F + λI is ≥ λ",
                   line={"color": BOUND_COLOR, "dash": "dash", "width": 1}),
    ]
    lines = []
    ritz_kappa = ritz_condition(record)
    if ritz_kappa is not None:
        lines.append(f"κ(F + λI) ≥ θ_max/θ_min = {_number(ritz_kappa)} (Ritz values lie "
                     "within F + λI's spectrum; κ(F + λI) ≤ 1 + λ_max/λ).")
    lines.append("Exact eigenvalues: " + (exact_fisher_note(record) or "none recorded."))
    header, top = _header(lines)
    layout = _layout(
        title, 420,
        xaxis={"title": {"text": "j (1 = largest Ritz value)"},
               "dtick": 1 if len(order) <= 20 else None},
        yaxis={"title": {"text": "Ritz value θ_j"}, **LOG_AXIS},
        annotations=[header],
        margin={"l": 60, "r": 20, "t": top, "b": 50},
        meta={"ritz_kappa": ritz_kappa},
    )
    return _figure(data, layout)


def _run_ends(values: np.ndarray) -> np.ndarray:
    """Mask of the first and last entry of each run of equal values (a line needs no more)."""
    if values.size <= 2:
        return np.ones(values.size, bool)
    change = values[1:] != values[:-1]
    keep = np.zeros(values.size, bool)
    keep[0] = keep[-1] = True
    keep[1:] |= change  # first of a new run
    keep[:-1] |= change  # last of the old one
    return keep


def _spectrum_positions(descending: np.ndarray, theta: np.ndarray) -> list[float]:
    """Where each θ falls on the descending curve i ↦ λ_i (log-linear interpolation)."""
    ascending = descending[::-1]
    positions = np.arange(len(descending), 0, -1, dtype=np.float64)  # of ascending entries
    positive = ascending > 0
    if not positive.any():
        return [1.0] * len(theta)
    logs = np.log(ascending[positive])
    x = np.interp(np.log(np.maximum(theta, 1e-300)), logs, positions[positive])
    return [float(v) for v in x]


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
    data = [
        _scatter(x=updates, y=_log_values(final), name="‖x_K − s*‖/‖s*‖ (after CG)",
                   line={"color": ERROR_COLOR}, **line),
        _scatter(x=updates, y=_log_values(final_fnorm), name="(F+λI)-norm error (after CG)",
                   line={"color": FNORM_COLOR}, **line),
        _scatter(x=updates, y=_log_values(level), name="rounding level ε·κ(F + λI)",
                 mode=marks, line={"color": BOUND_COLOR, "dash": "dash", "width": 1},
                 marker={"size": 4}, connectgaps=False),
        _scatter(x=updates, y=_log_values(kappa), name="κ(F + λI) (exact)", yaxis="y2",
                   line={"color": DAMPED_COLOR}, **line),
        _scatter(x=updates, y=_log_values(ritz_kappa), yaxis="y2",
                   name="θ_max/θ_min ≤ κ(F + λI) (CG's Ritz values)",
                   mode="lines", line={"color": RITZ_COLOR, "dash": "dot"}, connectgaps=False),
        _scatter(x=updates, y=_gaps(gains), name="this run's step: L(θ_new) − L(θ_old)",
                   yaxis="y3", line={"color": COSINE_COLOR}, **line),
        _scatter(x=updates, y=_gaps(exact_gain), name="exact TRPO's step (s*, same line search)",
                   yaxis="y3", line={"color": EIGEN_COLOR, "dash": "dash"}, **line),
    ]
    missing = len(records) - sum(exact)
    annotations = [
        _note("CG's error against s*", y=1.0, yanchor="bottom", x=0.0, xanchor="left"),
        _note("condition number", y=0.64, yanchor="bottom", x=0.0, xanchor="left"),
        _note("surrogate improvement", y=0.29, yanchor="bottom", x=0.0, xanchor="left"),
    ]
    if not records:
        annotations.append(_note("No updates yet."))
    elif missing == len(records):
        annotations.append(_note(_wrap("No update has exact-Fisher data: "
                                       + (exact_fisher_note(records[-1]) or "")), y=0.82))
    elif missing:
        annotations.append(_note(f"{missing} of {len(records)} updates have no exact-Fisher "
                                 "data: gaps, not zeros.", y=1.0, yanchor="bottom",
                                 x=1.0, xanchor="right"))
    layout = _layout(
        "The exact natural gradient over the run", 720,
        xaxis={"title": {"text": "update"}, "anchor": "y3",
               "dtick": 1 if len(records) <= 20 else None},
        yaxis={"domain": [0.72, 1.0], "title": {"text": "error"}, **LOG_AXIS},
        yaxis2={"domain": [0.36, 0.64], "title": {"text": "κ"}, "anchor": "x", **LOG_AXIS},
        yaxis3={"domain": [0.0, 0.29], "title": {"text": "L − L_old"}, "anchor": "x",
                "zeroline": True},
        annotations=annotations,
        legend={"orientation": "h", "y": -0.08, "yanchor": "top", "x": 0},
        margin={"l": 60, "r": 20, "t": 70, "b": 50},
    )
    return _figure(data, layout)
