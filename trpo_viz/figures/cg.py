"""Figures of one CG solve (an :class:`~trpo_viz.explorer.ExplorerResult`).

The iterate animations are Plotly frames driven by a Play/Pause menu and a slider
over k (:mod:`trpo_viz.figures.animation`): they run in the browser, with no round trip
to the server per frame.
Every builder takes the result and returns a ``go.Figure``; none draws anything.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from trpo_viz.figures.animation import animation_controls, bare_frame, frame_names

TOP_COMPONENTS = 20
CONTOUR_GRID = 80
COLORS = {
    "cg": "#d62728",
    "direction": "#ff7f0e",
    "sd": "#7f7f7f",
    "exact": "#2ca02c",
    "residual": "#1f77b4",
    "error": "#d62728",
    "bound": "#7f7f7f",
    "true": "#17becf",
}


def iterates_figure(result) -> go.Figure:
    """The animation that fits the dimension: contours (n = 2), 3-D path (n = 3), else bars."""
    if result.n == 2:
        return contour_figure(result)
    if result.n == 3:
        return path3d_figure(result)
    return components_figure(result)


def _segment(start: np.ndarray, end: np.ndarray) -> tuple[list, ...]:
    return tuple([float(a), float(b)] for a, b in zip(start, end, strict=True))


def _direction_end(result, k: int, scale: float) -> np.ndarray | None:
    """Where the arrow for step k ends: x_{k+1}, or along p_k when CG stopped there."""
    cg = result.cg
    if k < cg.iterations:
        return cg.iterates[k + 1]
    if cg.stop_reason == "negative_curvature" and cg.directions is not None:
        p = cg.directions[k]
        norm = np.linalg.norm(p)
        if norm > 0:
            return cg.iterates[k] + scale * p / norm
    return None


def _sd_path(result) -> np.ndarray | None:
    return result.steepest_descent if result.steepest_descent is not None else None


# ----------------------------------------------------------------------------- n = 2


def _quadratic_grid(result, points: np.ndarray):
    """q(x) = ½xᵀ(H+λI)x − gᵀx on a grid framing ``points`` with a margin."""
    lo, hi = points.min(axis=0), points.max(axis=0)
    span = np.maximum(hi - lo, 1e-3 * max(1.0, float(np.abs(points).max())))
    span = np.maximum(span, 0.25 * span.max())  # keep the box from collapsing to a line
    lo, hi = lo - 0.25 * span, hi + 0.25 * span
    xs = np.linspace(lo[0], hi[0], CONTOUR_GRID)
    ys = np.linspace(lo[1], hi[1], CONTOUR_GRID)
    gx, gy = np.meshgrid(xs, ys)
    a = result.hessian + result.settings.damping * np.eye(2)
    q = (0.5 * (a[0, 0] * gx**2 + 2 * a[0, 1] * gx * gy + a[1, 1] * gy**2)
         - result.g[0] * gx - result.g[1] * gy)
    return xs, ys, q, float(np.linalg.norm(hi - lo))


def contour_figure(result) -> go.Figure:
    """n = 2: contours of q with the CG path, its directions, x* and steepest descent."""
    cg = result.cg
    iterates = cg.iterates
    sd = _sd_path(result)
    pieces = [iterates]
    if result.reference is not None:
        pieces.append(result.reference[None, :])
    if sd is not None:
        pieces.append(sd)
    fig = go.Figure()
    if result.hessian is None or not np.all(np.isfinite(result.hessian)):
        return components_figure(result)
    xs, ys, q, diagonal = _quadratic_grid(result, np.vstack(pieces))
    arrow = 0.2 * diagonal

    def cg_traces(k: int) -> list[go.Scatter]:
        path = iterates[: k + 1]
        end = _direction_end(result, k, arrow)
        seg = _segment(iterates[k], end) if end is not None else ([], [])
        sd_k = sd[: k + 1] if sd is not None else np.zeros((0, 2))
        return [
            go.Scatter(x=sd_k[:, 0], y=sd_k[:, 1]),
            go.Scatter(x=path[:, 0], y=path[:, 1]),
            go.Scatter(x=seg[0], y=seg[1]),
        ]

    fig.add_trace(go.Contour(
        x=xs, y=ys, z=q, ncontours=25, colorscale="Blues", reversescale=True, opacity=0.75,
        contours={"coloring": "heatmap", "showlines": True}, showscale=False,
        name="q(x)", hovertemplate="x1=%{x:.4g}<br>x2=%{y:.4g}<br>q=%{z:.4g}<extra></extra>",
    ))
    if result.reference is not None:
        label = "x* = (H+λI)⁻¹g" if result.settings.damping > 0 else "x* = H⁻¹g"
        fig.add_trace(go.Scatter(
            x=[result.reference[0]], y=[result.reference[1]], mode="markers", name=label,
            marker={"symbol": "star", "size": 18, "color": COLORS["exact"],
                    "line": {"color": "white", "width": 1}},
        ))
    last = cg_traces(cg.iterations)
    styles = [
        {"name": "steepest descent", "mode": "lines+markers",
         "line": {"color": COLORS["sd"], "dash": "dot", "width": 2}, "marker": {"size": 6}},
        {"name": "CG iterates x_k", "mode": "lines+markers",
         "line": {"color": COLORS["cg"], "width": 3}, "marker": {"size": 9}},
        {"name": "search direction p_k", "mode": "lines",
         "line": {"color": COLORS["direction"], "width": 3, "dash": "dash"}},
    ]
    first_animated = len(fig.data)
    for trace, style in zip(last, styles, strict=True):
        trace.update(style)
        fig.add_trace(trace)
    animated = list(range(first_animated, first_animated + 3))
    fig.frames = [
        go.Frame(name=name, data=cg_traces(int(name)), traces=animated)
        for name in frame_names(cg.iterations)
    ]
    fig.update_layout(
        title="CG on the quadratic model q(x) = ½xᵀ(H+λI)x − gᵀx",
        xaxis_title="x1", yaxis_title="x2", height=560,
        xaxis={"range": [xs[0], xs[-1]], "constrain": "domain"},
        yaxis={"range": [ys[0], ys[-1]], "scaleanchor": "x", "scaleratio": 1},
        legend={"orientation": "h", "y": 1.02, "yanchor": "bottom", "x": 0},
        margin={"t": 90, "b": 110},
        **animation_controls(cg.iterations, redraw=False),
    )
    return fig


# ----------------------------------------------------------------------------- n = 3


def path3d_figure(result) -> go.Figure:
    """n = 3: the CG path in 3-D with the exact solution and steepest descent."""
    cg = result.cg
    iterates = cg.iterates
    sd = _sd_path(result)

    def traces(k: int) -> list[go.Scatter3d]:
        path = iterates[: k + 1]
        sd_k = sd[: k + 1] if sd is not None else np.zeros((0, 3))
        return [
            go.Scatter3d(x=sd_k[:, 0], y=sd_k[:, 1], z=sd_k[:, 2], mode="lines+markers",
                         name="steepest descent",
                         line={"color": COLORS["sd"], "width": 3},
                         marker={"size": 3}),
            go.Scatter3d(x=path[:, 0], y=path[:, 1], z=path[:, 2], mode="lines+markers",
                         name="CG iterates x_k", line={"color": COLORS["cg"], "width": 7},
                         marker={"size": 5}),
        ]

    fig = go.Figure(data=traces(cg.iterations))
    if result.reference is not None:
        r = result.reference
        fig.add_trace(go.Scatter3d(
            x=[r[0]], y=[r[1]], z=[r[2]], mode="markers", name="exact solution x*",
            marker={"symbol": "diamond", "size": 8, "color": COLORS["exact"]},
        ))
    fig.frames = [go.Frame(name=name, data=traces(int(name)), traces=[0, 1])
                  for name in frame_names(cg.iterations)]
    fig.update_layout(
        title="CG iterates x_0 … x_k in 3-D",
        scene={"xaxis_title": "x1", "yaxis_title": "x2", "zaxis_title": "x3",
               "aspectmode": "cube"},
        height=560, margin={"t": 60, "b": 110},
        legend={"orientation": "h", "y": 1.0, "yanchor": "bottom", "x": 0},
        **animation_controls(cg.iterations, redraw=True),
    )
    return fig


# ----------------------------------------------------------------------------- n > 3


def top_components(result, count: int = TOP_COMPONENTS) -> np.ndarray:
    """Indices of the ``count`` largest |x*| (or |x_k| without a reference), in index order."""
    target = result.reference if result.reference is not None else result.cg.x
    if result.n <= count:
        return np.arange(result.n)
    return np.sort(np.argsort(-np.abs(target), kind="stable")[:count])


def components_figure(result, count: int = TOP_COMPONENTS) -> go.Figure:
    """n > 3: bars of x_k's components against the exact solution (top ``count`` by |x*|)."""
    cg = result.cg
    idx = top_components(result, count)
    labels = [f"x{i + 1}" for i in idx]

    def bars(k: int) -> go.Bar:
        return go.Bar(x=labels, y=cg.iterates[k][idx], name="CG iterate x_k",
                      marker_color=COLORS["cg"])

    fig = go.Figure(data=[bars(cg.iterations)])
    if result.reference is not None:
        fig.add_trace(go.Scatter(
            x=labels, y=result.reference[idx], mode="markers", name="exact solution x*",
            marker={"symbol": "line-ew-open", "size": 22, "color": COLORS["exact"],
                    "line": {"width": 3}},
        ))
    values = [cg.iterates[:, idx]]
    if result.reference is not None:
        values.append(result.reference[idx][None, :])
    lo, hi = float(np.min(np.vstack(values))), float(np.max(np.vstack(values)))
    pad = 0.08 * max(hi - lo, 1e-12)
    fig.frames = [bare_frame(name, [0], [(go.Bar, {"y": cg.iterates[int(name)][idx]})])
                  for name in frame_names(cg.iterations)]
    shown = "all components" if len(idx) == result.n else (
        f"the {len(idx)} largest of {result.n} components by |x*|")
    fig.update_layout(
        title=f"CG iterate x_k against x*: {shown}",
        yaxis={"range": [min(lo, 0.0) - pad, max(hi, 0.0) + pad], "title": "value"},
        height=480, margin={"t": 80, "b": 130},
        legend={"orientation": "h", "y": 1.0, "yanchor": "bottom", "x": 0},
        **animation_controls(cg.iterations, redraw=False),
    )
    return fig


# ----------------------------------------------------------------------------- convergence


def _positive(values) -> list:
    """For log axes: non-positive and non-finite values become gaps."""
    v = np.asarray(values, dtype=np.float64)
    return np.where(np.isfinite(v) & (v > 0), v, np.nan).tolist()


def _drawable(values) -> bool:
    """Whether ``values`` has anything to draw on a log axis."""
    if values is None:
        return False
    v = np.asarray(values, dtype=np.float64)
    return bool(np.any(np.isfinite(v) & (v > 0)))


def rounding_band_level(result) -> float | None:
    """The floor to shade on the residual plot, or None when no ‖r_k‖ is rounding."""
    return None if result.rounding_from is None else result.residual_floor


def convergence_figure(result) -> go.Figure | None:
    """Residuals and relative error (left); A-norm error with the classical CG bound (right).

    Left: the recursive ‖r_k‖, the true residual ‖g − (H+λI)x_k‖ (per iterate in float64
    from the explicit H, else CG's own check of the last iterate) and the relative error,
    over a grey band where ‖r_k‖ fell below the dtype's reach (rounding, not convergence).
    None when nothing is positive and finite (e.g. g = 0): an empty log plot says nothing.
    """
    cg = result.cg
    k = list(range(cg.iterations + 1))
    series = [cg.residual_norms, result.true_residuals, result.relative_errors]
    if not any(_drawable(v) for v in series + [result.a_norm_errors]):
        return None
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.1, subplot_titles=(
        "residual ‖g − (H+λI)x_k‖ and relative error ‖x_k − x*‖/‖x*‖",
        "A-norm error ‖x_k − x*‖_A and bound"))
    hover = "k=%{x}<br>%{y:.3e}"
    band = rounding_band_level(result)
    if band is not None:
        lowest = min(float(np.nanmin(_positive(v))) for v in series if _drawable(v))
        bottom = min(lowest, band) / 10
        right = max(cg.iterations, 1)
        label = f"below {result.dtype}'s reach: rounding, not convergence"
        fig.add_trace(go.Scatter(
            x=[0, right, right, 0, 0], y=[bottom, bottom, band, band, bottom], fill="toself",
            mode="lines", line={"width": 0}, fillcolor="rgba(127, 127, 127, 0.22)",
            name=label, hoveron="fills", hoverinfo="name"), row=1, col=1)
        fig.add_trace(go.Scatter(
            x=[right / 2], y=[float(np.sqrt(bottom * band))], mode="text",
            text=["rounding, not convergence"], textfont={"color": "#555555"},
            showlegend=False, hoverinfo="skip"), row=1, col=1)
    fig.add_trace(go.Scatter(x=k, y=_positive(cg.residual_norms), mode="lines+markers",
                             name="‖r_k‖ (recursive)", line={"color": COLORS["residual"]},
                             hovertemplate=hover + "<extra>‖r_k‖</extra>"), row=1, col=1)
    if _drawable(result.true_residuals):
        fig.add_trace(go.Scatter(x=k, y=_positive(result.true_residuals), mode="lines+markers",
                                 name="true ‖g − (H+λI)x_k‖",
                                 line={"color": COLORS["true"], "dash": "dot"},
                                 marker={"symbol": "circle-open", "size": 9},
                                 hovertemplate=hover + "<extra>true residual</extra>"),
                      row=1, col=1)
    elif _drawable([cg.true_residual_norm]):
        fig.add_trace(go.Scatter(x=[cg.iterations], y=[cg.true_residual_norm], mode="markers",
                                 name="true ‖g − (H+λI)x_k‖ of the result",
                                 marker={"symbol": "circle-open", "size": 11,
                                         "color": COLORS["true"]},
                                 hovertemplate=hover + "<extra>true residual</extra>"),
                      row=1, col=1)
    if _drawable(result.relative_errors):
        fig.add_trace(go.Scatter(x=k, y=_positive(result.relative_errors), mode="lines+markers",
                                 name="relative error", line={"color": COLORS["error"]},
                                 hovertemplate=hover + "<extra>relative error</extra>"),
                      row=1, col=1)
    if _drawable(result.a_norm_errors):
        fig.add_trace(go.Scatter(x=k, y=_positive(result.a_norm_errors), mode="lines+markers",
                                 name="‖e_k‖_A", line={"color": COLORS["cg"]},
                                 hovertemplate=hover + "<extra>‖e_k‖_A</extra>"), row=1, col=2)
        if _drawable(result.error_bound):
            fig.add_trace(go.Scatter(x=k, y=_positive(result.error_bound), mode="lines",
                                     name="bound 2((√κ−1)/(√κ+1))^k ‖e_0‖_A",
                                     line={"color": COLORS["bound"], "dash": "dash"},
                                     hovertemplate=hover + "<extra>bound</extra>"),
                          row=1, col=2)
        fig.update_yaxes(type="log", exponentformat="power", row=1, col=2)
    else:
        why = ("H is not formed (n too large)" if result.hessian is None else
               "there is no exact solution x*" if result.reference is None else
               "H + λI is not positive definite")
        left, right = fig.layout.xaxis2.domain
        fig.add_annotation(text=f"No A-norm error: {why}.", showarrow=False,
                           xref="paper", yref="paper", x=(left + right) / 2, y=0.5)
        fig.update_xaxes(visible=False, row=1, col=2)
        fig.update_yaxes(visible=False, row=1, col=2)
    fig.update_yaxes(type="log", exponentformat="power", row=1, col=1)
    fig.update_xaxes(title_text="iteration k", rangemode="tozero")
    fig.update_layout(height=420, margin={"t": 60},
                      legend={"orientation": "h", "y": -0.2, "yanchor": "top", "x": 0})
    return fig


def spectrum_figure(result) -> go.Figure | None:
    """Eigenvalues of H + λI in ascending order (log scale when all positive), or None."""
    eig = result.eigenvalues
    if eig is None:
        return None
    positive = bool(np.all(eig > 0))
    colors = [COLORS["residual"] if v > 0 else COLORS["cg"] for v in eig]
    fig = go.Figure(go.Scatter(
        x=list(range(1, len(eig) + 1)), y=eig.tolist(), mode="markers",
        marker={"color": colors, "size": 9 if len(eig) <= 50 else 4},
        name="eigenvalues", hovertemplate="i=%{x}<br>λ_i=%{y:.6g}<extra></extra>",
    ))
    damping = result.settings.damping
    title = "eigenvalues of H + λI" if damping > 0 else "eigenvalues of H"
    fig.update_layout(title=title, xaxis_title="index i (ascending)", yaxis_title="λ_i",
                      height=300 if len(eig) <= 10 else 360, margin={"t": 60}, showlegend=False)
    if len(eig) <= 20:
        fig.update_xaxes(dtick=1)
    if positive:
        fig.update_yaxes(type="log", exponentformat="power")
    else:
        fig.add_hline(y=0, line={"color": "black", "width": 1})
    return fig


# ----------------------------------------------------------------------------- table


def trace_table(result) -> dict[str, list]:
    """Per-iteration columns k, ‖r_k‖, α_k, β_k, p_kᵀ(H+λI)p_k, relative error and, with
    the explicit H, the true residual ‖g − (H+λI)x_k‖ (None: n/a or not finite).

    Row k holds the step from x_k to x_{k+1}; the last row has no step unless CG
    stopped on non-positive curvature, whose p_kᵀAp_k it shows.
    """
    cg = result.cg
    rows = cg.iterations + 1

    def column(values) -> list:
        values = [] if values is None else list(np.asarray(values, dtype=np.float64))
        return [float(values[k]) if k < len(values) and np.isfinite(values[k]) else None
                for k in range(rows)]

    table = {
        "k": list(range(rows)),
        "‖r_k‖": column(cg.residual_norms),
        "α_k": column(cg.alphas),
        "β_k": column(cg.betas),
        "p_kᵀAp_k": column(cg.curvatures),
        "relative error": column(result.relative_errors),
    }
    if result.true_residuals is not None:
        table["true ‖g − (H+λI)x_k‖"] = column(result.true_residuals)
    return table
