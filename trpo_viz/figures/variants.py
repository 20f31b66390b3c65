"""Two (or more) runs of the same seed with different TRPO variants, overlaid.

Plain ``(label, records)`` pairs in, one Plotly figure out (no Streamlit). What the
figure shows comes from the records only (:mod:`trpo_viz.trpo.variants`): the mean
return of each update's finished episodes, the KL of the step each update took
(``kl``; 0 when no step was taken), ``max_kl`` (δ), ``accepted`` and ``step_status``.
Nothing is clipped or smoothed: both axes scale to every value (KL on a log axis, so
that a step of 4 nats and one of 0.007 are both readable), every step above δ and
every rejected step is marked, and a line per run states the counts, the largest KL
and the largest fall of the mean return below its best so far.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import plotly.graph_objects as go

from trpo_viz.figures import plain

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2")
BOUND_COLOR = "#7f7f7f"
MAX_MARKED_UPDATES = 60  # past this many updates, the curves are lines (the marks stay)


def kl_above_delta(record) -> bool:
    """Whether the step this update took left the trust region: KL > δ (NaN counts)."""
    return bool(record.accepted) and not (record.kl <= record.max_kl)


def step_rejected(record) -> bool:
    """Whether this update took no step (line search rejected it, or it was not finite)."""
    return not record.accepted


def largest_fall(records: Sequence) -> tuple[int, float, int, float] | None:
    """The largest fall of the mean return below its best so far:
    ``(update of the best, best, update of the low, low)`` (1-based), None if it never fell."""
    best_update, best, worst = None, -math.inf, None
    for record in records:
        mean = record.mean_return
        if mean is None or not math.isfinite(mean):
            continue
        if mean > best:
            best_update, best = record.update + 1, mean
        elif worst is None or best - mean > worst[1] - worst[3]:
            worst = (best_update, best, record.update + 1, mean)
    return worst


def run_summary(label: str, records: Sequence) -> str:
    """One line of facts about a run: steps above δ, rejections, the largest KL and fall."""
    above = [r for r in records if kl_above_delta(r)]
    rejected = [r for r in records if step_rejected(r)]
    parts = [
        f"{label}: {len(records)} updates",
        f"{len(above)} steps with KL above δ",
        f"{len(rejected)} rejected",
    ]
    kls = [r.kl for r in records if r.accepted]
    if kls:
        largest = max(kls, key=lambda v: v if math.isfinite(v) else math.inf)
        delta = records[0].max_kl
        ratio = f" = {largest / delta:.3g}·δ" if math.isfinite(largest) and delta > 0 else ""
        parts.append(f"largest KL {largest:.3g}{ratio}")
    statuses = sorted({r.step_status for r in rejected if r.step_status})
    if statuses:
        parts.append("rejections: " + ", ".join(statuses))
    fall = largest_fall(records)
    if fall is not None:
        best_update, best, low_update, low = fall
        parts.append(
            f"mean return fell from {best:.4g} (update {best_update}) to {low:.4g} "
            f"(update {low_update})"
        )
    return " · ".join(parts)


def _rejection_text(record) -> str:
    """The status of a step not taken, with the KL its full step would have had."""
    text = record.step_status or "rejected"
    if record.candidates and plain.finite(record.candidates[0].kl):
        text += f"; the full step's KL was {record.candidates[0].kl:.3g}"
    return text


def variant_overlay_figure(runs: Sequence[tuple[str, Sequence]]) -> go.Figure:
    """Learning curves and KL per update of several runs, overlaid.

    Top: the mean return of each update's finished episodes against timesteps (gaps
    where an update finished none). Bottom (log axis): the KL of the step each update
    took, δ dashed, steps above δ as triangles at their KL, rejected steps (no step,
    KL 0) as crosses on the δ line with their status in the hover. One line per run
    above the chart: :func:`run_summary`.
    """
    title = "Variants side by side (same seed)"
    runs = [(str(label), list(records)) for label, records in runs]
    if not any(records for _, records in runs):
        return plain.message_figure(title, "No updates to compare yet.")
    data: list = []
    deltas = sorted({r.max_kl for _, records in runs for r in records})
    last_update = max(len(records) for _, records in runs)
    for delta in deltas:
        data.append(
            plain.scatter(
                x=[1, max(last_update, 1)],
                y=[delta, delta],
                mode="lines",
                name=f"δ = {delta:g}",
                xaxis="x2",
                yaxis="y2",
                line={"color": BOUND_COLOR, "dash": "dash"},
            )
        )
    for i, (label, records) in enumerate(runs):
        color = PALETTE[i % len(PALETTE)]
        mode = "lines+markers" if len(records) <= MAX_MARKED_UPDATES else "lines"
        group = f"run{i}"
        data.append(
            plain.scatter(
                x=[r.total_timesteps for r in records],
                y=[r.mean_return if plain.finite(r.mean_return) else None for r in records],
                mode=mode,
                name=f"{label}: mean return",
                legendgroup=group,
                line={"color": color},
                marker={"size": 5},
                connectgaps=False,
            )
        )
        data.append(
            plain.scatter(
                x=[r.update + 1 for r in records],
                y=[
                    r.kl if r.accepted and plain.finite(r.kl) and r.kl > 0 else None
                    for r in records
                ],
                mode=mode,
                name=f"{label}: KL of the step",
                legendgroup=group,
                xaxis="x2",
                yaxis="y2",
                line={"color": color},
                marker={"size": 5},
                connectgaps=False,
            )
        )
        above = [r for r in records if kl_above_delta(r)]
        data.append(
            plain.scatter(
                x=[r.update + 1 for r in above],
                y=[r.kl if plain.finite(r.kl) else None for r in above],
                mode="markers",
                name=f"{label}: KL above δ ({len(above)})",
                legendgroup=group,
                xaxis="x2",
                yaxis="y2",
                marker={
                    "color": color,
                    "size": 11,
                    "symbol": "triangle-up",
                    "line": {"color": "black", "width": 1},
                },
                customdata=[
                    r.kl / r.max_kl if r.max_kl > 0 and plain.finite(r.kl) else None for r in above
                ],
                hovertemplate="update %{x}: KL %{y:.3g} = %{customdata:.3g}·δ<extra>"
                f"{label}</extra>",
            )
        )
        rejected = [r for r in records if step_rejected(r)]
        data.append(
            plain.scatter(
                x=[r.update + 1 for r in rejected],
                y=[r.max_kl for r in rejected],
                mode="markers",
                name=f"{label}: step rejected ({len(rejected)})",
                legendgroup=group,
                xaxis="x2",
                yaxis="y2",
                marker={
                    "color": color,
                    "size": 12,
                    "symbol": "x",
                    "line": {"color": color, "width": 1},
                },
                text=[_rejection_text(r) for r in rejected],
                hovertemplate="update %{x}: no step taken (%{text}); θ kept, KL 0<extra>"
                f"{label}</extra>",
            )
        )
    header, top = plain.header([run_summary(label, records) for label, records in runs], 150)
    figure_layout = plain.layout(
        title,
        640,
        xaxis={"title": {"text": "timesteps"}, "anchor": "y"},
        yaxis={"title": {"text": "mean return"}, "domain": [0.58, 1.0]},
        xaxis2={
            "title": {"text": "update"},
            "anchor": "y2",
            "dtick": 1 if last_update <= 20 else None,
        },
        yaxis2={
            "title": {"text": "KL(π_old ‖ π_new)"},
            "domain": [0.0, 0.42],
            "type": "log",
            "exponentformat": "power",
        },
        annotations=[header],
        margin={"l": 60, "r": 20, "t": top, "b": 50},
        legend={"orientation": "h", "y": -0.12, "yanchor": "top", "x": 0},
    )
    return plain.figure(data, figure_layout)
