"""Figures for TRPO training: plain ``UpdateRecord``s and slice dicts in, Plotly figures out.

Built from plain dicts without plotly's validation (:mod:`trpo_viz.figures.plain`): a
view of a training run builds these five for every update, and validation (with
``make_subplots``) cost 60–250 ms a figure on the 2-core VM, a few ms without. The
tests rebuild each figure with validation on.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
from PIL import Image

from trpo_viz.figures import plain
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


def _layout(title: str, height: int = 360, top: int | None = None, **extra) -> dict:
    """The TRPO charts' layout: title on top, a tight margin, ``extra`` on top. The top
    margin is ``top`` px, by default 50, or 80 with subplot titles (``annotations`` from
    :func:`_grid`) so that they get a line of their own under the chart's title."""
    if top is None:
        top = 80 if extra.get("annotations") else 50
    return {"title": {"text": title}, "height": height,
            "margin": {"l": 50, "r": 20, "t": top, "b": 40}, **extra}


def _grid(rows: int, cols: int, h_space: float, v_space: float, titles=()) -> tuple[dict, list]:
    """Axes for a rows × cols grid of subplots, as ``make_subplots`` lays them out.

    Returns the layout's axes (``xaxis``, ``yaxis``, ``xaxis2``, … row by row from the
    top) and the subplot titles as annotations.
    """
    width, height = (1 - h_space * (cols - 1)) / cols, (1 - v_space * (rows - 1)) / rows
    axes, notes = {}, []
    for row in range(rows):
        for col in range(cols):
            n = row * cols + col + 1
            suffix = "" if n == 1 else str(n)
            x0, y1 = col * (width + h_space), 1 - row * (height + v_space)
            axes[f"xaxis{suffix}"] = {"domain": _unit(x0, x0 + width), "anchor": f"y{suffix}"}
            axes[f"yaxis{suffix}"] = {"domain": _unit(y1 - height, y1), "anchor": f"x{suffix}"}
            if n <= len(titles):
                notes.append({"text": titles[n - 1], "x": x0 + width / 2, "y": y1,
                              "xref": "paper", "yref": "paper", "xanchor": "center",
                              "yanchor": "bottom", "showarrow": False, "font": {"size": 16}})
    return axes, notes


def _unit(*bounds: float) -> list[float]:
    """Domain bounds in [0, 1] (1 − 0.41 − 0.18 − 0.41 is −1e-16 in floating point)."""
    return [min(max(round(b, 12), 0.0), 1.0) for b in bounds]


def _hline(y: float, axis: str = "", color: str = BOUND_COLOR, dash: str | None = None) -> dict:
    """A horizontal line across subplot ``axis`` ("" for the first, "2", …) at height y."""
    return {"type": "line", "xref": f"x{axis} domain", "x0": 0, "x1": 1, "yref": f"y{axis}",
            "y0": y, "y1": y, "line": {"color": color, **({"dash": dash} if dash else {})}}


def learning_curve_figure(records: Sequence, window: int = 20) -> go.Figure:
    """Episode returns against timesteps: each finished episode, and a moving average."""
    steps = np.array([r.total_timesteps for r in records for _ in r.episode_returns], float)
    returns = np.array([ret for r in records for ret in r.episode_returns], float)
    recent = slice(-MAX_EPISODE_POINTS, None)
    data = [
        plain.scatter(
            x=steps[recent].tolist(),
            y=plain.gaps(returns[recent]),
            mode="markers",
            name="episode return" + (" (latest)" if len(returns) > MAX_EPISODE_POINTS else ""),
            marker={"size": 4, "opacity": 0.35},
        )
    ]
    if len(returns):
        kernel = np.ones(min(window, len(returns))) / min(window, len(returns))
        smooth = np.convolve(returns, kernel, mode="valid")
        data.append(
            plain.scatter(
                x=steps[len(steps) - len(smooth) :].tolist(),
                y=plain.gaps(smooth),
                mode="lines",
                name=f"mean of last {len(kernel)}",
                line={"width": 3},
            )
        )
    return plain.figure(
        data,
        _layout("Learning curve", xaxis={"title": {"text": "timesteps"}},
                yaxis={"title": {"text": "return"}}),
    )


def trust_region_history_figure(records: Sequence) -> go.Figure:
    """Per update: KL against δ, expected vs actual improvement, backtracks, step norm."""
    updates = [r.update + 1 for r in records]  # shown 1-based, as on the page
    colors = [ACCEPTED_COLOR if r.accepted else REJECTED_COLOR for r in records]
    marked = len(records) <= MAX_MARKED_UPDATES
    mode = "lines+markers" if marked else "lines"
    backtracks = (
        {"type": "bar", "x": updates, "y": [r.backtracks for r in records],
         "marker": {"color": colors}, "name": "backtracks"}
        if marked
        else plain.scatter(x=updates, y=[r.backtracks for r in records], name="backtracks",
                           mode="lines", line={"shape": "hv"})
    )
    rejected = [r for r in records if not r.accepted]
    data = [
        plain.scatter(x=updates, y=plain.gaps(r.kl for r in records),
                      marker={"color": colors}, name="KL", mode=mode),
        plain.scatter(  # marked at any length: usually few, always worth seeing
            x=[r.update + 1 for r in rejected], y=plain.gaps(r.kl for r in rejected),
            mode="markers", marker={"color": REJECTED_COLOR, "symbol": "x", "size": 9},
            name="rejected step",
        ),
        plain.scatter(x=updates, y=[r.max_kl for r in records], mode="lines", name="δ",
                      line={"dash": "dash", "color": BOUND_COLOR}),
        plain.scatter(x=updates, name="expected (gᵀΔθ)", mode=mode, xaxis="x2", yaxis="y2",
                      y=plain.gaps(r.expected_improvement * r.step_fraction for r in records)),
        plain.scatter(x=updates, y=plain.gaps(r.actual_improvement for r in records),
                      name="actual", mode=mode, xaxis="x2", yaxis="y2"),
        {**backtracks, "xaxis": "x3", "yaxis": "y3"},
        plain.scatter(x=updates, y=plain.gaps(r.step_norm * r.step_fraction for r in records),
                      name="step norm", mode=mode, xaxis="x4", yaxis="y4"),
    ]
    axes, titles = _grid(2, 2, 0.12, 0.18,
                         ("KL vs δ", "surrogate improvement", "backtracks", "step norm"))
    for axis in ("xaxis3", "xaxis4"):
        axes[axis]["title"] = {"text": "update"}
    # Counts from 0 up: bars of height 0 would leave an empty panel around a y axis at -1 … 1.
    axes["yaxis3"]["range"] = [0, max([1] + [r.backtracks for r in records])]
    if records and all(r.accepted and r.backtracks == 0 for r in records):
        titles.append({"text": "0 in every update:<br>each full step was accepted",
                       "xref": "x3 domain", "yref": "y3 domain", "x": 0.5, "y": 0.5,
                       "showarrow": False, "font": {"color": BOUND_COLOR}})
    return plain.figure(
        data,
        _layout("Trust region over time (red: step rejected)", 560, **axes,
                annotations=titles, legend={"orientation": "h", "y": -0.2}),
    )


def _log_ticks(values) -> dict:
    """Ticks 1, 2, 5 × 10^k over the values' range for a log axis, labelled in full
    (plotly's own labels every digit of a decade in small type, which crowds a narrow
    subplot and reads "0.2" as "2")."""
    low = min((v for v in values if v > 0), default=1.0)
    ticks = [m * 10.0 ** k for k in range(math.floor(math.log10(low)), 1) for m in (1, 2, 5)]
    ticks = [t for t in ticks if low / 1.2 <= t <= 1.0]  # inside the autorange
    return {"tickvals": ticks, "ticktext": [f"{t:g}" for t in ticks]}


def cg_residuals_figure(record) -> go.Figure:
    """‖r_k‖ of this update's CG solve of (F + λI) s = g on a log scale, read honestly.

    The recursive residual is drawn solid while the residuals stay mutually orthogonal
    (exact-arithmetic CG) and grey from the iteration where they stop being so (rounding
    has taken over, :func:`~trpo_viz.trpo.numerics.first_rounding_iteration`); the band
    below the dtype's rounding floor is shaded; the true residual ‖g − (F+λI)s‖ of the
    returned s is a separate diamond. Records saved before these diagnostics existed show
    the plain curve.
    """
    residuals = plain.log_values(record.cg_residuals)
    k = list(range(len(residuals)))
    dtype = getattr(record, "cg_dtype", "float32")
    k_lost = first_rounding_iteration(getattr(record, "cg_orthogonality", []))
    exact = len(residuals) if k_lost is None else k_lost
    data = []
    floor = getattr(record, "cg_rounding_floor", None)
    true = getattr(record, "cg_true_residual", None)
    if plain.finite(floor) and floor > 0:
        shown = [v for v in (*residuals, true) if plain.finite(v) and v > 0]
        bottom = min([floor, *shown]) / 10
        band_x = [-0.5, max(len(residuals) - 0.5, 0.5)]
        data.append(plain.scatter(x=band_x, y=[bottom, bottom], mode="lines",
                                  line={"width": 0}, showlegend=False, hoverinfo="skip"))
        data.append(
            plain.scatter(
                x=band_x,
                y=[floor, floor],
                mode="lines",
                fill="tonexty",
                fillcolor="rgba(214, 39, 40, 0.12)",
                line={"color": REJECTED_COLOR, "dash": "dash", "width": 1},
                name=f"below {dtype}'s reach (rounding floor)",
                hovertemplate=f"rounding floor {floor:.2e}<extra></extra>",
            )
        )
    data.append(plain.scatter(x=k[:exact], y=residuals[:exact], mode="lines+markers",
                              name="‖r_k‖ (recursive)", line={"color": "#1f77b4"}))
    if k_lost is not None:
        lost = slice(max(k_lost - 1, 0), None)  # joined to the last exact point
        data.append(
            plain.scatter(
                x=k[lost],
                y=residuals[lost],
                mode="lines+markers",
                name="‖r_k‖ after orthogonality is lost (rounding)",
                line={"color": BOUND_COLOR, "dash": "dot"},
                marker={"color": BOUND_COLOR},
            )
        )
    if true is not None:
        data.append(
            plain.scatter(
                x=[record.cg_iterations],
                y=plain.log_values([true]),
                mode="markers",
                name="true ‖g − (F+λI)s‖",
                marker={"symbol": "diamond", "size": 12, "color": ACCEPTED_COLOR},
            )
        )
    title = (  # two lines: the chart sits in a half-width column
        f"CG on the Fisher system (update {record.update + 1}, {dtype}):<br>"
        f"{record.cg_iterations} iterations, {record.cg_stop_reason}"
    )
    xaxis = {"title": {"text": "CG iteration k"}}
    if len(residuals) <= 20:
        xaxis["dtick"] = 1
    return plain.figure(
        data,
        _layout(title, 400, xaxis=xaxis, legend={"orientation": "h", "y": -0.25},
                yaxis={"title": {"text": "‖r_k‖"}, "type": "log", "exponentformat": "power"},
                top=80),
    )


def line_search_figure(record) -> go.Figure:
    """Each backtracking candidate: its KL against δ and its surrogate improvement."""
    candidates = record.candidates
    fractions = [c.fraction for c in candidates]
    colors = [
        ACCEPTED_COLOR if i == record.accepted_index else BOUND_COLOR
        for i in range(len(candidates))
    ]
    marker = {"color": colors, "size": 10}
    data = [
        plain.scatter(x=fractions, y=plain.gaps(c.kl for c in candidates),
                      mode="markers+lines", marker=marker, name="KL"),
        plain.scatter(x=fractions, y=plain.gaps(c.improvement for c in candidates),
                      mode="markers+lines", marker=marker, name="actual", xaxis="x2",
                      yaxis="y2"),
        plain.scatter(x=fractions, y=plain.gaps(c.expected_improvement for c in candidates),
                      mode="lines", line={"dash": "dot"}, name="linear model", xaxis="x2",
                      yaxis="y2"),
    ]
    axes, titles = _grid(1, 2, 0.14, 0, ("mean KL(π_old ‖ π)", "surrogate improvement"))
    for axis in ("xaxis", "xaxis2"):
        axes[axis].update(title={"text": "step fraction"}, type="log", **_log_ticks(fractions))
    delta = {"text": "δ", "xref": "x domain", "x": 1, "yref": "y", "y": record.max_kl,
             "xanchor": "right", "yanchor": "bottom", "showarrow": False}
    verdict = (
        f"accepted fraction {fractions[record.accepted_index]:.3g}"
        if record.accepted_index is not None
        else "no candidate accepted: θ restored"
    )
    return plain.figure(
        data,
        _layout(f"Line search (fraction 1 = full natural step):<br>{verdict}", **axes,
                top=120, annotations=[*titles, delta],
                shapes=[_hline(record.max_kl, color=REJECTED_COLOR, dash="dash"),
                        _hline(0, "2")]),
    )


def trust_region_slice_figure(plane: dict) -> go.Figure:
    """The plane θ_old + a·Δ + b·Δ_g: surrogate improvement, KL = δ, the quadratic model.

    ``plane`` is :meth:`TRPOTrainer.trust_region_slice`'s dict: Δ (a axis) is the full
    natural step, Δ_g (b axis) the plain gradient scaled to its own trust-region length.
    The dashed ellipse is the model CG and the step size use, with the damped Fisher
    F + λI; the undamped ½xᵀFx = δ (when the slice has it) is in the legend, hidden until
    clicked.
    """
    a, b = np.asarray(plane["alphas"], float), np.asarray(plane["betas"], float)
    delta = plane["max_kl"]
    data = [
        {
            "type": "contour",
            "x": a,
            "y": b,
            "z": np.asarray(plane["improvement"], float),
            "colorscale": "RdBu",
            "zmid": 0,
            "name": "L(θ) − L(θ_old)",
            "colorbar": {"title": {"text": "surrogate<br>improvement"}},
            "contours": {"showlabels": False},
            "hovertemplate": "a=%{x:.2f} b=%{y:.2f}<br>improvement %{z:.3g}<extra></extra>",
        },
        {
            "type": "contour",
            "x": a,
            "y": b,
            "z": np.asarray(plane["kl"], float),
            "contours": {"start": delta, "end": delta, "size": 1, "coloring": "none",
                         "showlabels": True},
            "line": {"color": "black", "width": 3},
            "showscale": False,
            "name": "KL = δ (trust region)",
            "showlegend": True,
            "hoverinfo": "skip",
        },
    ]
    t = np.linspace(0, 2 * np.pi, 200)
    ellipse = _ellipse(np.asarray(plane["quadratic_form"]), delta, t)
    if ellipse is not None:
        data.append(plain.scatter(x=ellipse[0], y=ellipse[1], mode="lines",
                                  line={"color": "black", "dash": "dash", "width": 2},
                                  name=DAMPED_ELLIPSE_NAME))
    if plane.get("quadratic_form_undamped") is not None:
        undamped = _ellipse(np.asarray(plane["quadratic_form_undamped"]), delta, t)
        if undamped is not None:  # F alone may be singular in this plane: no ellipse then
            data.append(
                plain.scatter(
                    x=undamped[0],
                    y=undamped[1],
                    mode="lines",
                    line={"color": BOUND_COLOR, "dash": "dot", "width": 2},
                    name=UNDAMPED_ELLIPSE_NAME,
                    visible="legendonly",  # one click on the legend shows it
                )
            )
    candidates = np.asarray(plane["candidates"], float)
    if len(candidates):
        data.append(plain.scatter(x=candidates[:, 0], y=candidates[:, 1], mode="markers",
                                  marker={"color": "white", "size": 9, "line": {"width": 2}},
                                  name="line-search candidates"))
    if plane.get("accepted") is not None:
        data.append(plain.scatter(x=[float(plane["accepted"][0])],
                                  y=[float(plane["accepted"][1])], mode="markers",
                                  marker={"color": ACCEPTED_COLOR, "size": 16, "symbol": "star"},
                                  name="accepted step"))
    data.append(plain.scatter(x=[0], y=[0], mode="markers", name="θ_old",
                              marker={"color": "black", "size": 10, "symbol": "x"}))
    return plain.figure(
        data,
        _layout("Trust-region slice through parameter space", 560,
                xaxis={"title": {"text": "a: along the natural step Δ = β·F⁻¹g"}},
                yaxis={"title": {"text": "b: along the gradient g (own trust-region length)"}},
                legend={"orientation": "h", "y": -0.22}),
    )


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
