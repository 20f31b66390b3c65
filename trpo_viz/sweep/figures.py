"""Sweep figures and tables: :class:`SweepResults` in, Plotly figures and plain columns out."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.colors import qualitative

from trpo_viz.sweep.results import SweepResults

PALETTE = qualitative.Plotly
MAX_TRIAL_LINES = 200  # individual curves drawn beside the bands (the oldest beyond: none)


def _color(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def _rgba(hex_color: str, alpha: float) -> str:
    h = hex_color.lstrip("#")
    r, g, b = (int(h[i:i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r},{g},{b},{alpha})"


def _layout(fig: go.Figure, title: str, height: int = 420) -> go.Figure:
    fig.update_layout(title=title, height=height, margin=dict(l=50, r=20, t=50, b=40),
                      template="plotly_white", legend=dict(groupclick="togglegroup"))
    return fig


def curves_figure(results: SweepResults, trials: bool = True, bands: bool = True) -> go.Figure:
    """Per setting: the IQM learning curve over finished seeds with its 95 % band, and
    (``trials``) every trial's own curve, thin, as it comes in."""
    fig = go.Figure()
    for i, summary in enumerate(results.summary):
        color = _color(i)
        group = summary.label
        if trials:
            for t in [t for t in results.trials if t.label == summary.label][:MAX_TRIAL_LINES]:
                if not t.curve_x.size:
                    continue
                fig.add_trace(go.Scatter(
                    x=t.curve_x, y=t.curve_y, mode="lines", legendgroup=group,
                    showlegend=False, line=dict(color=_rgba(color, 0.35), width=1),
                    name=f"{group} seed {t.seed}",
                    hovertemplate=f"seed {t.seed} ({t.status})<br>steps %{{x:,}}<br>"
                                  "return %{y:.1f}<extra></extra>"))
        if bands and summary.curve_x.size:
            x = summary.curve_x
            low, high = summary.curve_low, summary.curve_high
            if np.isfinite(low).any():
                fig.add_trace(go.Scatter(
                    x=np.concatenate([x, x[::-1]]), y=np.concatenate([high, low[::-1]]),
                    fill="toself", fillcolor=_rgba(color, 0.18), line=dict(width=0),
                    legendgroup=group, showlegend=False, hoverinfo="skip",
                    name=f"{group} 95% CI"))
            fig.add_trace(go.Scatter(
                x=x, y=summary.curve_iqm, mode="lines", line=dict(color=color, width=2.5),
                legendgroup=group, name=f"{group} (IQM of {summary.finished})",
                hovertemplate=f"{group}<br>steps %{{x:,}}<br>IQM %{{y:.1f}}<extra></extra>"))
        elif trials:  # no finished seed yet: a legend entry for the trial lines
            fig.add_trace(go.Scatter(x=[None], y=[None], mode="lines", legendgroup=group,
                                     line=dict(color=color), name=f"{group} (running)"))
    fig.update_xaxes(title="environment steps")
    fig.update_yaxes(title="mean episode return")
    return _layout(fig, "Learning curves: IQM over seeds with 95% stratified-bootstrap band")


def finals_figure(results: SweepResults) -> go.Figure:
    """Each finished trial's final return per setting, with the IQM and its 95 % interval."""
    fig = go.Figure()
    labels = [s.label for s in results.summary]
    for i, summary in enumerate(results.summary):
        color = _color(i)
        done = [t for t in results.trials if t.label == summary.label
                and t.final_mean_return is not None]
        fig.add_trace(go.Scatter(
            x=[summary.label] * len(done), y=[t.final_mean_return for t in done],
            mode="markers", marker=dict(color=_rgba(color, 0.55), size=9),
            name=f"{summary.label} seeds", showlegend=False,
            text=[f"seed {t.seed}" for t in done],
            hovertemplate="%{text}: %{y:.1f}<extra></extra>"))
        if summary.iqm is not None:
            error = None
            if summary.ci_low is not None:
                error = dict(type="data", symmetric=False,
                             array=[summary.ci_high - summary.iqm],
                             arrayminus=[summary.iqm - summary.ci_low], color=color, width=12)
            fig.add_trace(go.Scatter(
                x=[summary.label], y=[summary.iqm], mode="markers", error_y=error,
                marker=dict(color=color, size=14, symbol="diamond"), showlegend=False,
                name=f"{summary.label} IQM",
                hovertemplate="IQM %{y:.1f}<extra></extra>"))
    fig.update_xaxes(categoryorder="array", categoryarray=labels, title="setting")
    fig.update_yaxes(title="final return")
    return _layout(fig, "Final return per seed; IQM with 95% interval", height=380)


def summary_columns(results: SweepResults) -> dict[str, list]:
    """The final-return table: one row per setting."""
    rows = results.summary
    return {
        "setting": [s.label for s in rows],
        "finished seeds": [f"{s.finished}/{s.seeds}" for s in rows],
        "IQM": [s.iqm for s in rows],
        "CI low": [s.ci_low for s in rows],
        "CI high": [s.ci_high for s in rows],
        "median": [s.median for s in rows],
        "mean": [s.mean for s in rows],
        "wall s / trial": [s.wall_s_mean for s in rows],
    }


def trial_columns(results: SweepResults) -> dict[str, list]:
    """One row per trial."""
    rows = results.trials
    return {
        "setting": [t.label for t in rows],
        "seed": [t.seed for t in rows],
        "status": [t.status for t in rows],
        "progress": [t.progress for t in rows],
        "timesteps": [t.timesteps for t in rows],
        "final return": [t.final_mean_return for t in rows],
        "wall s": [t.wall_s for t in rows],
        "run": [t.run_id for t in rows],
        "error": [t.error if t.status in ("failed", "cancelled", "interrupted") else None
                  for t in rows],
    }
