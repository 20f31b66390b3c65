"""The Fisher's spectrum in one update: exact eigenvalues of F and F + λI, CG's Ritz values.

Plain :class:`~trpo_viz.trpo.record.UpdateRecord`\\ s in, Plotly figures out (no
Streamlit). F's n eigenvalues (``fisher_eigenvalues``, with the exact Fisher) are drawn
as their distinct values: a run of equal ones, F's zeros above all, is two points, so
the figure stays small for CartPole's 4,610 parameters. CG's Ritz values
(``cg_ritz_values``, every update with CG) are eigenvalues of its tridiagonal T_k, so
they lie within F + λI's spectrum; θ_max/θ_min is a lower bound on κ(F + λI).
"""

from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go

from trpo_viz.figures import plain
from trpo_viz.figures.fisher import (
    BOUND_COLOR,
    DAMPED_COLOR,
    EIGEN_COLOR,
    LOG_AXIS,
    RITZ_COLOR,
    condition_numbers,
    exact_fisher_note,
    ritz_condition,
)


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
    ritz = np.asarray(
        [v for v in getattr(record, "cg_ritz_values", []) if plain.finite(v)], np.float64
    )
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
        data.append(
            plain.scatter(
                x=_spectrum_positions(damped, ritz),
                y=plain.log_values(ritz),
                mode="markers",
                name=f"Ritz values of F + λI (CG, {record.cg_iterations} iterations)",
                marker={"color": RITZ_COLOR, "size": 9, "symbol": "diamond"},
                hovertemplate="θ = %{y:.4g}<extra>Ritz value</extra>",
            )
        )
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
    header, top = plain.header(lines)
    figure_layout = plain.layout(
        title,
        460,
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


def _ritz_only_figure(record, damping: float, ritz: np.ndarray, title: str) -> go.Figure:
    if ritz.size == 0:
        reason = exact_fisher_note(record) or ""
        return plain.message_figure(
            title,
            "No spectrum for this update: CG ran no iteration, so "
            f"there are no Ritz values. {reason}",
        )
    order = np.sort(ritz)[::-1]
    j = np.arange(1, len(order) + 1)
    data = [
        plain.scatter(
            x=j,
            y=plain.log_values(order),
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
    lines = []
    ritz_kappa = ritz_condition(record)
    if ritz_kappa is not None:
        lines.append(
            f"κ(F + λI) ≥ θ_max/θ_min = {plain.number(ritz_kappa)} (Ritz values lie "
            "within F + λI's spectrum; κ(F + λI) ≤ 1 + λ_max/λ)."
        )
    lines.append("Exact eigenvalues: " + (exact_fisher_note(record) or "none recorded."))
    header, top = plain.header(lines, width=75)  # a half-width column on the TRPO page
    figure_layout = plain.layout(
        title,
        420,
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
