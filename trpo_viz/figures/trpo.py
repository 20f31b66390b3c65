"""Figures for TRPO training: plain ``UpdateRecord``s and slice dicts in, Plotly figures out."""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
from PIL import Image
from plotly.subplots import make_subplots

ACCEPTED_COLOR = "#2ca02c"
REJECTED_COLOR = "#d62728"
BOUND_COLOR = "#7f7f7f"


def _layout(fig: go.Figure, title: str, height: int = 360) -> go.Figure:
    fig.update_layout(
        title=title, height=height, margin=dict(l=50, r=20, t=50, b=40), template="plotly_white"
    )
    return fig


def learning_curve_figure(records: Sequence, window: int = 20) -> go.Figure:
    """Episode returns against timesteps: each finished episode, and a moving average."""
    steps, returns = [], []
    for record in records:
        for ret in record.episode_returns:
            steps.append(record.total_timesteps)
            returns.append(ret)
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=steps,
            y=returns,
            mode="markers",
            name="episode return",
            marker=dict(size=4, opacity=0.35),
        )
    )
    if returns:
        kernel = np.ones(min(window, len(returns))) / min(window, len(returns))
        smooth = np.convolve(returns, kernel, mode="valid")
        fig.add_trace(
            go.Scatter(
                x=steps[len(steps) - len(smooth) :],
                y=smooth,
                mode="lines",
                name=f"mean of last {len(kernel)}",
                line=dict(width=3),
            )
        )
    fig.update_xaxes(title="timesteps")
    fig.update_yaxes(title="return")
    return _layout(fig, "Learning curve")


def trust_region_history_figure(records: Sequence) -> go.Figure:
    """Per update: KL against δ, expected vs actual improvement, backtracks, step norm."""
    updates = [r.update + 1 for r in records]  # shown 1-based, as on the page
    colors = [ACCEPTED_COLOR if r.accepted else REJECTED_COLOR for r in records]
    fig = make_subplots(
        rows=2,
        cols=2,
        horizontal_spacing=0.12,
        vertical_spacing=0.18,
        subplot_titles=(
            "KL of the step vs δ",
            "surrogate improvement",
            "line-search backtracks",
            "step norm ‖θ_new − θ_old‖",
        ),
    )
    line = dict(mode="lines+markers")
    panels = [  # (row, col, trace)
        (1, 1, go.Scatter(y=[r.kl for r in records], marker=dict(color=colors), name="KL", **line)),
        (
            1,
            1,
            go.Scatter(
                y=[r.max_kl for r in records],
                mode="lines",
                name="δ",
                line=dict(dash="dash", color=BOUND_COLOR),
            ),
        ),
        (
            1,
            2,
            go.Scatter(
                y=[r.expected_improvement * r.step_fraction for r in records],
                name="expected (gᵀΔθ)",
                **line,
            ),
        ),
        (1, 2, go.Scatter(y=[r.actual_improvement for r in records], name="actual", **line)),
        (2, 1, go.Bar(y=[r.backtracks for r in records], marker_color=colors, name="backtracks")),
        (
            2,
            2,
            go.Scatter(
                y=[r.step_norm * r.step_fraction for r in records], name="step norm", **line
            ),
        ),
    ]
    for row, col, trace in panels:
        trace.x = updates
        fig.add_trace(trace, row=row, col=col)
    fig.update_xaxes(title="update", row=2)
    return _layout(fig, "Trust region over time (red: step rejected)", height=520)


def cg_residuals_figure(record) -> go.Figure:
    """‖r_k‖ of this update's CG solve of (F + λI) s = g, on a log scale."""
    residuals = np.asarray(record.cg_residuals, dtype=float)
    fig = go.Figure(
        go.Scatter(x=np.arange(len(residuals)), y=residuals, mode="lines+markers", name="‖r_k‖")
    )
    fig.update_xaxes(title="CG iteration k", dtick=1 if len(residuals) <= 20 else None)
    fig.update_yaxes(title="‖r_k‖", type="log")
    title = (
        f"CG on the Fisher system (update {record.update + 1}): {record.cg_iterations} "
        f"iterations, {record.cg_stop_reason}"
    )
    return _layout(fig, title)


def line_search_figure(record) -> go.Figure:
    """Each backtracking candidate: its KL against δ and its surrogate improvement."""
    candidates = record.candidates
    fractions = [c.fraction for c in candidates]
    colors = [
        ACCEPTED_COLOR if i == record.accepted_index else BOUND_COLOR
        for i in range(len(candidates))
    ]
    fig = make_subplots(
        rows=1,
        cols=2,
        horizontal_spacing=0.14,
        subplot_titles=("mean KL(π_old ‖ π)", "surrogate improvement"),
    )
    fig.add_trace(
        go.Scatter(
            x=fractions,
            y=[c.kl for c in candidates],
            mode="markers+lines",
            marker=dict(color=colors, size=10),
            name="KL",
        ),
        row=1,
        col=1,
    )
    fig.add_hline(
        y=record.max_kl,
        line_dash="dash",
        line_color=REJECTED_COLOR,
        annotation_text="δ",
        row=1,
        col=1,
    )
    fig.add_trace(
        go.Scatter(
            x=fractions,
            y=[c.improvement for c in candidates],
            mode="markers+lines",
            marker=dict(color=colors, size=10),
            name="actual",
        ),
        row=1,
        col=2,
    )
    fig.add_trace(
        go.Scatter(
            x=fractions,
            y=[c.expected_improvement for c in candidates],
            mode="lines",
            line=dict(dash="dot"),
            name="linear model",
        ),
        row=1,
        col=2,
    )
    fig.add_hline(y=0, line_color=BOUND_COLOR, row=1, col=2)
    fig.update_xaxes(title="step fraction (1 = full natural step)", type="log")
    verdict = (
        f"accepted fraction {fractions[record.accepted_index]:.3g}"
        if record.accepted_index is not None
        else "no candidate accepted: θ restored"
    )
    return _layout(fig, f"Backtracking line search: {verdict}")


def trust_region_slice_figure(plane: dict) -> go.Figure:
    """The plane θ_old + a·Δ + b·Δ_g: surrogate improvement, KL = δ, the quadratic model.

    ``plane`` is :meth:`TRPOTrainer.trust_region_slice`'s dict: Δ (a axis) is the full
    natural step, Δ_g (b axis) the plain gradient scaled to its own trust-region length.
    """
    a, b = np.asarray(plane["alphas"]), np.asarray(plane["betas"])
    delta = plane["max_kl"]
    fig = go.Figure()
    fig.add_trace(
        go.Contour(
            x=a,
            y=b,
            z=plane["improvement"],
            colorscale="RdBu",
            zmid=0,
            name="L(θ) − L(θ_old)",
            colorbar=dict(title="surrogate<br>improvement"),
            contours=dict(showlabels=False),
            hovertemplate="a=%{x:.2f} b=%{y:.2f}<br>improvement %{z:.3g}<extra></extra>",
        )
    )
    fig.add_trace(
        go.Contour(
            x=a,
            y=b,
            z=plane["kl"],
            contours=dict(start=delta, end=delta, size=1, coloring="none", showlabels=True),
            line=dict(color="black", width=3),
            showscale=False,
            name="KL = δ (trust region)",
            showlegend=True,
            hoverinfo="skip",
        )
    )
    t = np.linspace(0, 2 * np.pi, 200)
    ellipse = _ellipse(np.asarray(plane["quadratic_form"]), delta, t)
    if ellipse is not None:
        fig.add_trace(
            go.Scatter(
                x=ellipse[0],
                y=ellipse[1],
                mode="lines",
                line=dict(color="black", dash="dash", width=2),
                name="½xᵀFx = δ (quadratic model)",
            )
        )
    candidates = np.asarray(plane["candidates"])
    if len(candidates):
        fig.add_trace(
            go.Scatter(
                x=candidates[:, 0],
                y=candidates[:, 1],
                mode="markers",
                marker=dict(color="white", size=9, line=dict(width=2)),
                name="line-search candidates",
            )
        )
    if plane.get("accepted") is not None:
        fig.add_trace(
            go.Scatter(
                x=[plane["accepted"][0]],
                y=[plane["accepted"][1]],
                mode="markers",
                marker=dict(color=ACCEPTED_COLOR, size=16, symbol="star"),
                name="accepted step",
            )
        )
    fig.add_trace(
        go.Scatter(
            x=[0],
            y=[0],
            mode="markers",
            name="θ_old",
            marker=dict(color="black", size=10, symbol="x"),
        )
    )
    fig.update_xaxes(title="a: along the natural step Δ = β·F⁻¹g")
    fig.update_yaxes(title="b: along the gradient g (own trust-region length)")
    fig.update_layout(legend=dict(orientation="h", y=-0.22))
    return _layout(fig, "Trust-region slice through parameter space", height=560)


def _ellipse(matrix: np.ndarray, level: float, t: np.ndarray) -> np.ndarray | None:
    """Points x with ½xᵀMx = level (None unless M is positive definite)."""
    eigenvalues, vectors = np.linalg.eigh(0.5 * (matrix + matrix.T))
    if eigenvalues[0] <= 0:
        return None
    radii = np.sqrt(2 * level / eigenvalues)
    circle = np.stack([np.cos(t), np.sin(t)])
    return vectors @ (radii[:, None] * circle)


def _png_data_uri(frame: np.ndarray) -> str:
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(frame, np.uint8)).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def policy_rollout_figure(frames: Sequence[np.ndarray], fps: int = 30) -> go.Figure:
    """An RGB frame sequence as a Plotly animation with Play/Pause and a frame slider."""
    # PNG data URIs: a few kB a frame, where raw pixel arrays would be megabytes of JSON.
    sources = [_png_data_uri(frame) for frame in frames]
    fig = go.Figure(go.Image(source=sources[0]) if sources else go.Image())
    fig.frames = [go.Frame(data=[go.Image(source=s)], name=str(i)) for i, s in enumerate(sources)]
    duration = int(1000 / fps)
    fig.update_layout(
        updatemenus=[
            dict(
                type="buttons",
                x=0,
                y=-0.05,
                xanchor="left",
                yanchor="top",
                direction="left",
                buttons=[
                    dict(
                        label="▶ Play",
                        method="animate",
                        args=[
                            None,
                            dict(
                                frame=dict(duration=duration, redraw=True),
                                fromcurrent=True,
                                transition=dict(duration=0),
                            ),
                        ],
                    ),
                    dict(
                        label="❚❚ Pause",
                        method="animate",
                        args=[[None], dict(frame=dict(duration=0, redraw=False), mode="immediate")],
                    ),
                ],
            )
        ],
        sliders=[
            dict(
                x=0.2,
                len=0.8,
                y=-0.02,
                currentvalue=dict(prefix="frame "),
                steps=[
                    dict(
                        method="animate",
                        label=str(i),
                        args=[
                            [str(i)],
                            dict(mode="immediate", frame=dict(duration=0, redraw=True)),
                        ],
                    )
                    for i in range(len(frames))
                ],
            )
        ],
    )
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return _layout(fig, f"Current policy acting ({len(frames)} frames)", height=420)
