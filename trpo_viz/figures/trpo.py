"""Figures for TRPO training: plain ``UpdateRecord``s and slice dicts in, Plotly figures out."""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
from PIL import Image
from plotly.subplots import make_subplots

from trpo_viz.trpo.numerics import first_rounding_iteration

# Every marker is an SVG element the browser redraws after each update: past these counts
# the live charts draw lines only, or the most recent points, so a long run stays smooth.
MAX_MARKED_UPDATES = 60
MAX_EPISODE_POINTS = 600
ACCEPTED_COLOR = "#2ca02c"
REJECTED_COLOR = "#d62728"
BOUND_COLOR = "#7f7f7f"
DAMPED_ELLIPSE_NAME = "½xᵀ(F+λI)x = δ (quadratic model, damped)"
UNDAMPED_ELLIPSE_NAME = "½xᵀFx = δ (undamped Fisher)"


def _layout(fig: go.Figure, title: str, height: int = 360) -> go.Figure:
    fig.update_layout(
        title=title, height=height, margin=dict(l=50, r=20, t=50, b=40), template="plotly_white"
    )
    return fig


def learning_curve_figure(records: Sequence, window: int = 20) -> go.Figure:
    """Episode returns against timesteps: each finished episode, and a moving average."""
    # numpy arrays: Plotly validates them in bulk, lists element by element (thousands here).
    steps = np.array([r.total_timesteps for r in records for _ in r.episode_returns], float)
    returns = np.array([ret for r in records for ret in r.episode_returns], float)
    recent = slice(-MAX_EPISODE_POINTS, None)
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=steps[recent],
            y=returns[recent],
            mode="markers",
            name="episode return" + (" (latest)" if len(returns) > MAX_EPISODE_POINTS else ""),
            marker=dict(size=4, opacity=0.35),
        )
    )
    if len(returns):
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
        subplot_titles=("KL vs δ", "surrogate improvement", "backtracks", "step norm"),
    )
    line = dict(mode="lines+markers" if len(records) <= MAX_MARKED_UPDATES else "lines")
    backtracks = (
        go.Bar(y=[r.backtracks for r in records], marker_color=colors, name="backtracks")
        if len(records) <= MAX_MARKED_UPDATES
        else go.Scatter(
            y=[r.backtracks for r in records],
            name="backtracks",
            mode="lines",
            line=dict(shape="hv"),
        )
    )
    rejected = [r for r in records if not r.accepted]
    rejected_steps = go.Scatter(  # marked at any length: usually few, always worth seeing
        x=[r.update + 1 for r in rejected],
        y=[r.kl for r in rejected],
        mode="markers",
        marker=dict(color=REJECTED_COLOR, symbol="x", size=9),
        name="rejected step",
    )
    panels = [  # (row, col, trace)
        (1, 1, go.Scatter(y=[r.kl for r in records], marker=dict(color=colors), name="KL", **line)),
        (1, 1, rejected_steps),
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
        (2, 1, backtracks),
        (
            2,
            2,
            go.Scatter(
                y=[r.step_norm * r.step_fraction for r in records], name="step norm", **line
            ),
        ),
    ]
    for row, col, trace in panels:
        if trace.x is None:
            trace.x = updates
        fig.add_trace(trace, row=row, col=col)
    fig.update_xaxes(title="update", row=2)
    fig.update_layout(legend=dict(orientation="h", y=-0.2))
    return _layout(fig, "Trust region over time (red: step rejected)", height=560)


def cg_residuals_figure(record) -> go.Figure:
    """‖r_k‖ of this update's CG solve of (F + λI) s = g on a log scale, read honestly.

    The recursive residual is drawn solid while the residuals stay mutually orthogonal
    (exact-arithmetic CG) and grey from the iteration where they stop being so (rounding
    has taken over, :func:`~trpo_viz.trpo.numerics.first_rounding_iteration`); the band
    below the dtype's rounding floor is shaded; the true residual ‖g − (F+λI)s‖ of the
    returned s is a separate diamond. Records saved before these diagnostics existed show
    the plain curve.
    """
    residuals = np.asarray(record.cg_residuals, dtype=float)
    k = np.arange(len(residuals))
    dtype = getattr(record, "cg_dtype", "float32")
    k_lost = first_rounding_iteration(getattr(record, "cg_orthogonality", []))
    exact = len(residuals) if k_lost is None else k_lost
    fig = go.Figure()
    floor = getattr(record, "cg_rounding_floor", None)
    true = getattr(record, "cg_true_residual", None)
    if floor is not None and floor > 0:
        shown = [v for v in (*residuals, true) if v is not None and v > 0 and np.isfinite(v)]
        bottom = min([floor, *shown]) / 10
        band_x = [-0.5, max(len(residuals) - 0.5, 0.5)]
        fig.add_trace(
            go.Scatter(
                x=band_x, y=[bottom, bottom], mode="lines", line=dict(width=0),
                showlegend=False, hoverinfo="skip",
            )
        )  # fmt: skip
        fig.add_trace(
            go.Scatter(
                x=band_x,
                y=[floor, floor],
                mode="lines",
                fill="tonexty",
                fillcolor="rgba(214, 39, 40, 0.12)",
                line=dict(color=REJECTED_COLOR, dash="dash", width=1),
                name=f"below {dtype}'s reach (rounding floor)",
                hovertemplate=f"rounding floor {floor:.2e}<extra></extra>",
            )
        )
    fig.add_trace(
        go.Scatter(
            x=k[:exact],
            y=residuals[:exact],
            mode="lines+markers",
            name="‖r_k‖ (recursive)",
            line=dict(color="#1f77b4"),
        )
    )
    if k_lost is not None:
        lost = slice(max(k_lost - 1, 0), None)  # joined to the last exact point
        fig.add_trace(
            go.Scatter(
                x=k[lost],
                y=residuals[lost],
                mode="lines+markers",
                name="‖r_k‖ after orthogonality is lost (rounding)",
                line=dict(color=BOUND_COLOR, dash="dot"),
                marker=dict(color=BOUND_COLOR),
            )
        )
    if true is not None:
        fig.add_trace(
            go.Scatter(
                x=[record.cg_iterations],
                y=[true],
                mode="markers",
                name="true ‖g − (F+λI)s‖",
                marker=dict(symbol="diamond", size=12, color=ACCEPTED_COLOR),
            )
        )
    fig.update_xaxes(title="CG iteration k", dtick=1 if len(residuals) <= 20 else None)
    fig.update_yaxes(title="‖r_k‖", type="log", exponentformat="power")
    fig.update_layout(legend=dict(orientation="h", y=-0.25))
    title = (
        f"CG on the Fisher system (update {record.update + 1}, {dtype}): "
        f"{record.cg_iterations} iterations, {record.cg_stop_reason}"
    )
    return _layout(fig, title, height=400)


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
    fig.update_xaxes(title="step fraction", type="log")
    verdict = (
        f"accepted fraction {fractions[record.accepted_index]:.3g}"
        if record.accepted_index is not None
        else "no candidate accepted: θ restored"
    )
    return _layout(fig, f"Line search (fraction 1 = full natural step): {verdict}")


def trust_region_slice_figure(plane: dict) -> go.Figure:
    """The plane θ_old + a·Δ + b·Δ_g: surrogate improvement, KL = δ, the quadratic model.

    ``plane`` is :meth:`TRPOTrainer.trust_region_slice`'s dict: Δ (a axis) is the full
    natural step, Δ_g (b axis) the plain gradient scaled to its own trust-region length.
    The dashed ellipse is the model CG and the step size use, with the damped Fisher
    F + λI; the undamped ½xᵀFx = δ (when the slice has it) is in the legend, hidden until
    clicked.
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
                name=DAMPED_ELLIPSE_NAME,
            )
        )
    if plane.get("quadratic_form_undamped") is not None:
        undamped = _ellipse(np.asarray(plane["quadratic_form_undamped"]), delta, t)
        if undamped is not None:  # F alone may be singular in this plane: no ellipse then
            fig.add_trace(
                go.Scatter(
                    x=undamped[0],
                    y=undamped[1],
                    mode="lines",
                    line=dict(color=BOUND_COLOR, dash="dot", width=2),
                    name=UNDAMPED_ELLIPSE_NAME,
                    visible="legendonly",  # one click on the legend shows it
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


def rollout_gif(frames: Sequence[np.ndarray], fps: int = 15) -> bytes:
    """RGB frames as a looping animated GIF.

    An image the browser animates by itself: redrawing the page after every TRPO update
    costs nothing for it, where a Plotly frame animation is rebuilt and re-decoded.
    """
    images = [Image.fromarray(np.asarray(frame, np.uint8)) for frame in frames]
    buffer = io.BytesIO()
    images[0].save(
        buffer,
        format="GIF",
        save_all=True,
        append_images=images[1:],
        duration=int(1000 / fps),
        loop=0,
    )
    return buffer.getvalue()
