"""Figures of the Krylov view of a CG solve, and of the solver line-up.

Every builder takes plain data (a :class:`~trpo_viz.krylov.KrylovView`, a
:class:`~trpo_viz.lineup.Lineup`, a matrix) and returns a ``go.Figure``; none draws
anything and none computes a product with H.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from trpo_viz.figures.animation import animation_controls, bare_frame, frame_names

EIGEN_COLOR = "#2ca02c"
RITZ_COLOR = "#d62728"
COPY_COLOR = "#9e9e9e"  # Ritz values that rounding copied (as in the Fisher's spectrum)
POLY_COLOR = "#1f77b4"
METHOD_COLORS = {"cg": "#d62728", "pcg": "#9467bd", "minres": "#1f77b4", "sd": "#7f7f7f",
                 "exact": "#2ca02c"}
LOG_AXIS = {"type": "log", "exponentformat": "power", "minor": {"showgrid": False}}


def _positive(values) -> list:
    """Values for a log axis: non-positive and non-finite entries become gaps (None)."""
    return [float(v) if v is not None and np.isfinite(v) and v > 0 else None for v in values]


def ritz_figure(view) -> go.Figure:
    """Ritz values of T_k (points, one row per k) over the true spectrum (vertical lines).

    x: λ; y: the iteration k. The extreme Ritz values settle on the extreme eigenvalues
    first and the interior ones later. Animated with the iterates (frames k = 0 …
    iterations, the explorer's Play button and slider): frame k shows the rows of
    T_1 … T_k and rings the Ritz values of T_k; the figure opens at the last k.
    """
    fig = go.Figure()
    if view.eigenvalues is not None:
        xs, ys = [], []
        top = max(view.iterations, 1) + 0.5
        for lam in view.eigenvalues:
            xs += [float(lam), float(lam), None]
            ys += [0.5, top, None]
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", name="eigenvalues of H + λI",
                                 line={"color": EIGEN_COLOR, "width": 1}, opacity=0.5,
                                 hoverinfo="skip"))
    first = len(fig.data)  # the animated traces: every row so far, and row k ringed
    # Every Ritz value, row after row: the rows of T_1 … T_k are a prefix of these arrays,
    # so a frame sends a prefix (numpy arrays travel as binary) and the hover's residual
    # bounds (customdata of the whole trace) stay aligned.
    rows = [np.asarray(r, np.float64) for r in view.ritz_values]
    values = np.concatenate(rows) if rows else np.zeros(0)
    ks = np.concatenate([np.full(len(r), k) for k, r in enumerate(rows, start=1)]) if rows \
        else np.zeros(0, int)
    ends = np.cumsum([0] + [len(r) for r in rows])  # rows ≤ k: values[:ends[k]]
    bounds = np.concatenate([
        np.asarray(b, np.float64) if b is not None else np.full(len(r), np.nan)
        for r, b in zip(rows, view.ritz_residual_bounds, strict=True)]) if rows \
        else np.zeros(0)

    def current_row(k: int) -> go.Scatter:
        ritz = rows[k - 1] if k >= 1 else np.zeros(0)
        return go.Scatter(x=ritz, y=np.full(len(ritz), k), mode="markers", name="this k",
                          marker={"color": RITZ_COLOR, "size": 13, "symbol": "circle-open",
                                  "line": {"width": 2}}, hoverinfo="skip")

    # Copies rounding made of converged Ritz values: hollow grey diamonds, in the same trace
    # (per-point marker arrays stay aligned with the frames' prefixes, like customdata).
    copies = np.concatenate(view.ritz_copies) if rows and view.ritz_copies \
        else np.zeros(len(values), bool)
    fig.add_trace(go.Scatter(
        x=values, y=ks, mode="markers", name="Ritz values of T_k",
        marker={"color": np.where(copies, COPY_COLOR, RITZ_COLOR).tolist(),
                "size": np.where(copies, 12, 7).tolist(),  # a copy rings the value it repeats
                "symbol": np.where(copies, "diamond-open", "circle").tolist()},
        customdata=bounds,
        hovertemplate="k = %{y}<br>θ = %{x:.6g}<br>residual bound %{customdata:.2e}"
                      "<extra></extra>"))
    fig.add_trace(current_row(view.iterations))
    if view.rejected_ritz_values is not None:
        k = view.iterations + 1
        fig.add_trace(go.Scatter(
            x=[float(v) for v in view.rejected_ritz_values],
            y=[k] * len(view.rejected_ritz_values), mode="markers",
            name="T_{k+1} with the rejected step",
            marker={"color": RITZ_COLOR, "size": 9, "symbol": "x-open"}))
    if copies.any():  # a legend entry for the hollow markers (no points of its own)
        fig.add_trace(go.Scatter(
            x=[None], y=[None], mode="markers", hoverinfo="skip",
            name="copies of a converged Ritz value (rounding, not eigenvalues)",
            marker={"color": COPY_COLOR, "size": 12, "symbol": "diamond-open"}))
    layout = {}
    if view.iterations >= 1:
        fig.frames = [
            bare_frame(name, [first, first + 1], [
                (go.Scatter, {"x": values[:ends[k]], "y": ks[:ends[k]]}),
                (go.Scatter, {"x": values[ends[k - 1]:ends[k]] if k else values[:0],
                              "y": ks[ends[k - 1]:ends[k]] if k else ks[:0]})])
            for name in frame_names(view.iterations) for k in (int(name),)]
        layout = animation_controls(view.iterations, redraw=False)
        # Fixed axes: the frames must not rescale the plot as rows appear.
        every = [x for t in fig.data for x in (t.x if t.x is not None else ())
                 if x is not None]
        lo, hi = float(np.min(every)), float(np.max(every))
        pad = 0.05 * max(hi - lo, abs(hi), 1e-12)
        fig.update_xaxes(range=[lo - pad, hi + pad])
        bottom = view.iterations + (1.5 if view.rejected_ritz_values is not None else 0.5)
        fig.update_yaxes(range=[bottom, 0.5])
    else:
        fig.update_yaxes(autorange="reversed")
    fig.update_layout(
        title="Ritz values per iteration over the spectrum",
        xaxis_title="λ", yaxis_title="iteration k", height=440 if layout else 380,
        legend={"orientation": "h", "y": 1.0, "yanchor": "bottom", "x": 0},
        margin={"t": 80, "b": 120 if layout else 40}, **layout,
    )
    fig.update_yaxes(dtick=1 if view.iterations <= 20 else None)
    return fig


def polynomial_figure(view, k: int) -> go.Figure:
    """p_k(λ) on the grid, p_k(λ_i) at the eigenvalues, its roots (the Ritz values of T_k)
    and p_k(0) = 1."""
    if not 0 <= k <= view.iterations:
        raise ValueError(f"k must be from 0 to {view.iterations}")
    fig = go.Figure()
    curve = np.asarray(view.residual_polynomials[k], np.float64)
    fig.add_trace(go.Scatter(x=view.grid, y=curve, mode="lines", name=f"p_{k}(λ)",
                             line={"color": POLY_COLOR}))
    if view.eigenvalues is not None:
        fig.add_trace(go.Scatter(
            x=view.eigenvalues, y=view.polynomial_at_eigenvalues[k], mode="markers",
            name="p_k(λ_i) at the eigenvalues", marker={"color": EIGEN_COLOR, "size": 8}))
    if k >= 1:
        roots = view.ritz_values[k - 1]
        fig.add_trace(go.Scatter(x=roots, y=np.zeros(len(roots)), mode="markers",
                                 name="roots = Ritz values",
                                 marker={"color": RITZ_COLOR, "symbol": "x", "size": 9}))
    fig.add_trace(go.Scatter(x=[0.0], y=[1.0], mode="markers", name="p_k(0) = 1",
                             marker={"color": "black", "size": 9, "symbol": "diamond"}))
    # Clip the view to where the spectrum is: outside it p_k grows like λ^k.
    finite = curve[np.isfinite(curve)]
    limit = 1.5 if finite.size == 0 else min(max(1.5, float(np.max(np.abs(finite)))), 3.0)
    fig.add_hline(y=0.0, line={"color": "#bbbbbb", "width": 1})
    fig.update_layout(title=f"Residual polynomial p_{k}(λ): r_k = p_k(H + λI) r_0",
                      xaxis_title="λ", yaxis_title="p_k(λ)", height=380,
                      yaxis_range=[-limit, limit], legend={"orientation": "h", "y": -0.25},
                      margin={"t": 50})
    return fig


def eigencomponent_figure(view) -> go.Figure | None:
    """Heatmap of |v_iᵀ(x_k − x*)|: eigenvalue index (ascending λ_i) against k, log colour."""
    errors = view.eigencomponent_errors
    if errors is None:
        return None
    with np.errstate(divide="ignore"):
        z = np.log10(np.where(errors > 0, errors, np.nan)).T  # [n, k+1]
    finite = z[np.isfinite(z)]
    if finite.size == 0:
        return None
    low, high = float(np.floor(finite.min())), float(np.ceil(finite.max()))
    high = max(high, low + 1)
    step = max(1, int(np.ceil((high - low) / 8)))
    ticks = np.arange(low, high + 1, step)
    labels = [f"1e{int(t)}" for t in ticks]
    y_labels = [f"λ{i + 1} = {lam:.3g}" for i, lam in enumerate(view.eigenvalues)]
    fig = go.Figure(go.Heatmap(
        z=z, x=list(range(errors.shape[0])), y=y_labels, colorscale="Viridis",
        zmin=low, zmax=high,
        colorbar={"title": "|vᵢᵀ(x_k − x*)|", "tickvals": ticks, "ticktext": labels},
        customdata=errors.T,
        hovertemplate="k = %{x}<br>%{y}<br>error %{customdata:.2e}<extra></extra>"))
    fig.update_layout(title="Error per eigencomponent |vᵢᵀ(x_k − x*)|",
                      xaxis_title="iteration k", yaxis_title="eigenvector vᵢ (ascending λᵢ)",
                      height=max(300, min(700, 120 + 12 * errors.shape[1])), margin={"t": 50})
    if errors.shape[0] <= 21:
        fig.update_xaxes(dtick=1)
    if errors.shape[1] > 30:
        fig.update_yaxes(showticklabels=False)
    return fig


def matrix_figure(matrix: np.ndarray, title: str) -> go.Figure:
    """A symmetric matrix as a heatmap on a diverging scale centred on 0 (row 1 on top)."""
    matrix = np.asarray(matrix, np.float64)
    n = matrix.shape[0]
    names = [f"x{i + 1}" for i in range(n)]
    finite = matrix[np.isfinite(matrix)]
    scale = float(np.max(np.abs(finite))) if finite.size else 1.0
    fig = go.Figure(go.Heatmap(z=matrix, x=names, y=names, colorscale="RdBu_r",
                               zmid=0.0, zmin=-scale, zmax=scale,
                               hovertemplate="%{y}, %{x}: %{z:.4g}<extra></extra>"))
    fig.update_layout(title=title, height=360, margin={"t": 50})
    fig.update_yaxes(autorange="reversed", scaleanchor="x")
    return fig


LINEUP_PANELS = (("residual_norms", "residual ‖b − (H+λI)x_k‖"),
                 ("relative_errors", "relative error ‖x_k − x*‖/‖x*‖"),
                 ("a_norm_errors", "A-norm error ‖x_k − x*‖_{H+λI}"))


def lineup_figure(lineup) -> go.Figure:
    """Each method's residual, relative error and A-norm error against the HVPs used.

    The residual is the true residual from the explicit H when it is known, else what
    the method tracked. A panel with no data for a method (x* unknown, or H + λI not
    positive definite for the A-norm) leaves that method out.
    """
    fig = make_subplots(rows=1, cols=3, subplot_titles=[title for _, title in LINEUP_PANELS],
                        horizontal_spacing=0.07)
    for key, trace in lineup.traces.items():
        color = METHOD_COLORS.get(key, "#000000")
        for col, (name, _) in enumerate(LINEUP_PANELS, start=1):
            values = getattr(trace, name)
            if name == "residual_norms" and trace.true_residual_norms is not None:
                values = trace.true_residual_norms
            if values is None:
                continue
            mode = "markers" if key == "exact" else "lines+markers"
            fig.add_trace(go.Scatter(
                x=trace.hvps, y=_positive(values), mode=mode, name=trace.label,
                legendgroup=key, showlegend=col == 1,
                line={"color": color}, marker={"color": color, "size": 5,
                                               "symbol": "star" if key == "exact" else "circle"},
                hovertemplate=f"{trace.label}<br>HVPs %{{x}}<br>%{{y:.2e}}<extra></extra>"),
                row=1, col=col)
    if lineup.positive_definite is False:
        fig.add_annotation(text="undefined:<br>H + λI is not<br>positive definite",
                           xref="x3 domain", yref="y3 domain", x=0.5, y=0.5,
                           showarrow=False)
    fig.update_xaxes(title_text="HVPs used")
    fig.update_yaxes(**LOG_AXIS)
    fig.update_layout(height=420, legend={"orientation": "h", "y": -0.2}, margin={"t": 60})
    return fig


def spectrum_estimate_figure(estimate, density=None, eigenvalues=None) -> go.Figure:
    """Lanczos Ritz values (with residual bounds as error bars) over the exact spectrum,
    and the SLQ density estimate (with the exact spectrum broadened alike) when given."""
    rows = 2 if density is not None else 1
    fig = make_subplots(rows=rows, cols=1, shared_xaxes=True, vertical_spacing=0.12,
                        subplot_titles=["Lanczos Ritz values (k products)"]
                        + (["spectral density (SLQ)"] if density is not None else []))
    if eigenvalues is not None:
        fig.add_trace(go.Scatter(x=eigenvalues, y=np.zeros(len(eigenvalues)), mode="markers",
                                 name="exact eigenvalues",
                                 marker={"symbol": "line-ns-open", "size": 14,
                                         "color": EIGEN_COLOR}), row=1, col=1)
    ritz = np.asarray(estimate.ritz_values, np.float64)
    bounds = np.asarray(estimate.ritz_residual_bounds, np.float64)
    fig.add_trace(go.Scatter(x=ritz, y=np.ones(len(ritz)), mode="markers",
                             name="Ritz values ± residual bound",
                             error_x={"type": "data", "array": bounds, "visible": True},
                             marker={"color": RITZ_COLOR, "size": 8}), row=1, col=1)
    fig.update_yaxes(tickvals=[0, 1], ticktext=["exact", "Lanczos"], range=[-0.5, 1.5],
                     row=1, col=1)
    if density is not None:
        fig.add_trace(go.Scatter(x=density.grid, y=density.density, mode="lines",
                                 name="SLQ estimate", line={"color": RITZ_COLOR}), row=2, col=1)
        if density.exact_density is not None:
            fig.add_trace(go.Scatter(x=density.grid, y=density.exact_density, mode="lines",
                                     name="exact (same broadening)",
                                     line={"color": EIGEN_COLOR, "dash": "dot"}), row=2, col=1)
        fig.update_xaxes(title_text="λ", row=2, col=1)
    else:
        fig.update_xaxes(title_text="λ", row=1, col=1)
    fig.update_layout(height=300 * rows, legend={"orientation": "h", "y": -0.15},
                      margin={"t": 50})
    return fig


def _fit_line(fit, lo: float, hi: float, points: int = 40):
    ns = np.geomspace(lo, hi, points)
    return ns, fit(ns)


def cost_figure(rows, fits, extend_to: float | None = None) -> go.Figure:
    """Log-log time and memory of both routes, with the fitted power laws.

    The explicit route's fit is solid over the N it was measured at and dashed, labelled
    "extrapolated", beyond (up to ``extend_to``, default the largest N); the fitted
    crossover, when there is one, is a vertical line.
    """
    fig = make_subplots(rows=1, cols=2, subplot_titles=["time (s)", "memory (bytes)"],
                        horizontal_spacing=0.1)
    ns = [r.n for r in rows]
    top = max(ns + [extend_to or 0])
    colors = {"explicit": "#2ca02c", "cg": "#d62728"}
    series = (
        ("explicit", "explicit: form H, solve", [r.explicit_seconds for r in rows],
         [r.explicit_bytes if r.explicit_bytes_measured else None for r in rows],
         fits.explicit_time, fits.explicit_memory),
        ("cg", "Hessian-free: k CG iterations", [r.hvp_cg_seconds for r in rows],
         [r.hvp_cg_bytes for r in rows], fits.hvp_cg_time, fits.hvp_cg_memory),
    )
    for key, label, seconds, memory, time_fit, memory_fit in series:
        for col, values, fit in ((1, seconds, time_fit), (2, memory, memory_fit)):
            fig.add_trace(go.Scatter(
                x=ns, y=_positive(values), mode="markers", name=label, legendgroup=key,
                showlegend=col == 1, marker={"color": colors[key], "size": 8}),
                row=1, col=col)
            if fit is None:
                continue
            lo, hi = fit.n_range
            x, y = _fit_line(fit, lo, hi)
            what = "time" if col == 1 else "memory"
            fig.add_trace(go.Scatter(
                x=x, y=y, mode="lines", name=f"{label}: {what} ∝ N^{fit.slope:.2f}",
                legendgroup=key, showlegend=True, line={"color": colors[key]}),
                row=1, col=col)
            if top > hi:
                x, y = _fit_line(fit, hi, top)
                fig.add_trace(go.Scatter(
                    x=x, y=y, mode="lines", name=f"{label}: extrapolated",
                    legendgroup=key, showlegend=col == 1,
                    line={"color": colors[key], "dash": "dash"}), row=1, col=col)
                fig.add_annotation(x=np.log10(x[-1]), y=np.log10(y[-1]), text="extrapolated",
                                   showarrow=False, yshift=10, xanchor="right",
                                   font={"color": colors[key]}, row=1, col=col)
    if fits.crossover_n is not None:
        what = "crossover (extrapolated)" if fits.crossover_extrapolated else "crossover"
        # A shape's x is in data units; an annotation's, on a log axis, in log10 units.
        fig.add_vline(x=fits.crossover_n, line={"color": "#555555", "dash": "dot"}, row=1,
                      col=1)
        fig.add_annotation(x=np.log10(fits.crossover_n), y=1, yref="y domain",
                           text=f"{what} N ≈ {fits.crossover_n:.3g}", showarrow=False,
                           xanchor="left", yanchor="bottom", row=1, col=1)
    fig.update_xaxes(title_text="N (parameters)", **LOG_AXIS)
    fig.update_yaxes(**LOG_AXIS)
    fig.update_layout(height=460, legend={"orientation": "h", "y": -0.25}, margin={"t": 50})
    return fig
