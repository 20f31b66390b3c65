"""The Fisher's spectrum in one update: exact eigenvalues of F and F + λI, CG's Ritz values.

Plain :class:`~trpo_viz.trpo.record.UpdateRecord`\\ s in, Plotly figures out (no
Streamlit). F's n eigenvalues (``fisher_eigenvalues``, with the exact Fisher) are drawn
as their distinct values: a run of equal ones, F's zeros above all, is two points, so
the figure stays small for CartPole's 4,610 parameters. CG's Ritz values
(``cg_ritz_values``, every update with CG) are eigenvalues of its tridiagonal T_k, so
they lie within F + λI's spectrum; θ_max/θ_min is a lower bound on κ(F + λI). Converged Ritz
values that repeat another within their error bounds are drawn hollow and said to be what
they are: copies that rounding adds once CG's residuals lose orthogonality
(:func:`~trpo_viz.trpo.numerics.ritz_copies_in`), not further eigenvalues.
"""

from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go

from trpo_viz.figures import plain
from trpo_viz.figures.fisher import (
    BOUND_COLOR,
    COPY_COLOR,
    DAMPED_COLOR,
    EIGEN_COLOR,
    LOG_AXIS,
    RITZ_COLOR,
    condition_numbers,
    exact_fisher_note,
    ritz_condition,
)
from trpo_viz.trpo.numerics import first_rounding_iteration, ritz_copies_in


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
    stored = getattr(record, "cg_ritz_values", []) or []
    finite = np.array([plain.finite(v) for v in stored], bool)
    ritz = np.asarray([v for v in stored if plain.finite(v)], np.float64)
    copies = ritz_copies_in(record)[finite] if len(stored) else np.zeros(0, bool)
    kappas = condition_numbers(record, damping)
    if kappas is None:
        return _ritz_only_figure(record, damping, ritz, copies, title)
    values = np.sort(np.asarray(record.fisher_eigenvalues, np.float64))[::-1]  # descending
    n = len(values)
    positions = np.arange(1, n + 1, dtype=np.float64)
    nonzero = values > 0
    zeros = int(np.count_nonzero(values == 0))
    keep = _run_ends(values)
    damped = values + damping
    data = [
        plain.scatter(
            x=positions[keep],
            y=plain.log_values(damped[keep]),
            mode="lines",
            name="eigenvalues of F + λI",
            line={"color": DAMPED_COLOR, "width": 3},
        ),
        plain.scatter(
            x=positions[keep & nonzero],
            y=plain.log_values(values[keep & nonzero]),
            mode="lines",
            name="eigenvalues of F (non-zero)",
            line={"color": EIGEN_COLOR},
        ),
        plain.scatter(
            x=[1, n],
            y=[damping, damping],
            mode="lines",
            name=f"λ = {damping:g}",
            line={"color": BOUND_COLOR, "dash": "dash", "width": 1},
        ),
    ]
    if ritz.size:
        positions_of = np.asarray(_spectrum_positions(damped, ritz))
        data.append(
            plain.scatter(
                x=positions_of[~copies],
                y=plain.log_values(ritz[~copies]),
                mode="markers",
                name=f"Ritz values of F + λI (CG, {record.cg_iterations} iterations)",
                marker={"color": RITZ_COLOR, "size": 9, "symbol": "diamond"},
                hovertemplate="θ = %{y:.4g}<extra>Ritz value</extra>",
            )
        )
        if copies.any():
            data.append(_copies_trace(positions_of[copies], ritz[copies]))
    kappa, kappa_damped = kappas
    rank = getattr(record, "fisher_rank", None)
    if math.isinf(kappa):
        before = (
            f"κ(F) = ∞ (F is singular: {zeros:,} of {n:,} eigenvalues are 0"
            + (f", rank {rank:,}" if rank is not None else "")
            + ")"
        )
    else:
        before = f"κ(F) = {plain.number(kappa)}"
    after = (
        f"κ(F + λI) = (λ_max + λ)/(λ_min + λ) = {plain.number(kappa_damped)} with λ = {damping:g}"
    )
    lines = [f"{before} → {after}"]
    if zeros:
        lines.append(
            f"F's {zeros:,} zero eigenvalues (|λ_i| ≤ the float64 floor "
            f"{record.fisher_eigenvalue_floor or 0:.1e}) are not drawn on the log "
            "axis; F + λI lifts them to λ."
        )
    ritz_kappa = ritz_condition(record)
    if ritz_kappa is not None:
        lines.append(f"CG's Ritz values see κ ≥ θ_max/θ_min = {plain.number(ritz_kappa)}.")
    if copies.any():
        lines.append(_copies_text(record, int(copies.sum()), len(ritz)))
    header, top = plain.header(lines)
    figure_layout = plain.layout(
        title,
        380 + top,  # the plot area keeps its height however many lines the header has
        xaxis={"title": {"text": "position i in the spectrum (1 = largest)"}, **LOG_AXIS},
        yaxis={"title": {"text": "eigenvalue"}, **LOG_AXIS},
        annotations=[header],
        margin={"l": 60, "r": 20, "t": top, "b": 50},
        meta={
            "kappa": None if math.isinf(kappa) else kappa,
            "kappa_damped": None if math.isinf(kappa_damped) else kappa_damped,
        },
    )
    return plain.figure(data, figure_layout)


def _copies_trace(x, values) -> go.Scatter:
    """Ritz values that repeat a better-converged one (rounding): hollow, grey, named so."""
    return plain.scatter(
        x=x,
        y=plain.log_values(values),
        mode="markers",
        name="copies of a converged Ritz value (rounding, not eigenvalues)",
        marker={"color": COPY_COLOR, "size": 9, "symbol": "diamond-open"},
        hovertemplate="θ = %{y:.4g}<extra>copy (rounding)</extra>",
    )


# the header's short form of exact_fisher_note (the TRPO page says the long one beside it)
_NOT_COMPUTED = {
    "": "not computed (“exact Fisher beside CG” is off for this run).",
    "too_large": "not computed (the policy has more parameters than exact_fisher_max_params).",
}


def _copies_text(record, count: int, total: int) -> str:
    lost = first_rounding_iteration(getattr(record, "cg_orthogonality", []))
    since = f" (from iteration {lost})" if lost is not None else ""
    return (
        f"{count} of the {total} Ritz values (hollow) repeat another converged one within "
        "their error bounds: copies that rounding adds once CG's residuals lose "
        f"orthogonality{since}. In exact CG two Ritz values never converge to one eigenvalue."
    )


def _ritz_only_figure(record, damping: float, ritz: np.ndarray, copies: np.ndarray,
                      title: str) -> go.Figure:
    if ritz.size == 0:
        reason = exact_fisher_note(record) or ""
        return plain.message_figure(
            title,
            "No spectrum for this update: CG ran no iteration, so "
            f"there are no Ritz values. {reason}",
        )
    descending = np.argsort(ritz, kind="stable")[::-1]
    order, is_copy = ritz[descending], copies[descending]
    j = np.arange(1, len(order) + 1)
    data = [
        plain.scatter(
            x=j[~is_copy],
            y=plain.log_values(order[~is_copy]),
            mode="markers+lines",
            name=f"Ritz values of F + λI (CG, {record.cg_iterations} iterations)",
            marker={"color": RITZ_COLOR, "size": 9, "symbol": "diamond"},
            line={"color": RITZ_COLOR, "width": 1},
        ),
        plain.scatter(
            x=[1, len(order)],
            y=[damping, damping],
            mode="lines",
            name=f"λ = {damping:g}: every eigenvalue of F + λI is ≥ λ",
            line={"color": BOUND_COLOR, "dash": "dash", "width": 1},
        ),
    ]
    if is_copy.any():
        data.insert(1, _copies_trace(j[is_copy], order[is_copy]))
    lines = []
    ritz_kappa = ritz_condition(record)
    if ritz_kappa is not None:
        lines.append(
            f"κ(F + λI) ≥ θ_max/θ_min = {plain.number(ritz_kappa)} (Ritz values lie "
            "within F + λI's spectrum; κ(F + λI) ≤ 1 + λ_max/λ)."
        )
    if is_copy.any():
        lines.append(_copies_text(record, int(is_copy.sum()), len(order)))
    status = getattr(record, "exact_fisher_status", "")
    lines.append("Exact eigenvalues: " + (_NOT_COMPUTED.get(status) or exact_fisher_note(record)
                                          or "none recorded."))
    header, top = plain.header(lines, width=75)  # a half-width column on the TRPO page
    figure_layout = plain.layout(
        title,
        312 + top,  # the plot area keeps its height however many lines the header has
        legend={"orientation": "h", "y": -0.25, "yanchor": "top", "x": 0},  # under the x title
        xaxis={
            "title": {"text": "j (1 = largest Ritz value)"},
            "dtick": 1 if len(order) <= 20 else None,
        },
        yaxis={"title": {"text": "Ritz value θ_j"}, **LOG_AXIS},
        annotations=[header],
        margin={"l": 60, "r": 20, "t": top, "b": 50},
        meta={"ritz_kappa": ritz_kappa},
    )
    return plain.figure(data, figure_layout)


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
