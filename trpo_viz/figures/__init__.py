"""Plotly figure builders: plain results in, ``plotly.graph_objects.Figure`` out (no Streamlit)."""

from trpo_viz.figures.cg import (
    components_figure,
    contour_figure,
    convergence_figure,
    iterates_figure,
    path3d_figure,
    spectrum_figure,
    trace_table,
)

__all__ = [
    "components_figure",
    "contour_figure",
    "convergence_figure",
    "iterates_figure",
    "path3d_figure",
    "spectrum_figure",
    "trace_table",
]
