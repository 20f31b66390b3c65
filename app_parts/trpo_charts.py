"""The TRPO views' charts: built once per update, shared by every view of a run.

A view redraws once a second while its run trains, and any number of views (the owner's
tab, followers) may watch one run: each figure is built once per (run, update, record) by
whichever view asks first (``st.cache_resource``), and every other view only sends it.
Records are immutable once stored, except after a resume from a checkpoint, which trains
the last update again: the :func:`fingerprint` (update, timesteps, wall time) tells such a
record apart.
"""

from __future__ import annotations

from typing import NamedTuple

import streamlit as st

from app_parts.live_chart import LiveFigure, live_figure, live_plotly_chart
from trpo_viz.figures import fisher as fisher_figures
from trpo_viz.figures import trpo as figures
from trpo_viz.figures import variants as variant_figures
from trpo_viz.figures.fisher_spectrum import fisher_spectrum_figure
from trpo_viz.runs.store import StoreError
from trpo_viz.runs.validate import slice_from_npz
from trpo_viz.runs.worker import latest_rollout


def fingerprint(record) -> tuple:
    return record.update, record.total_timesteps, record.wall_s


class Chart(NamedTuple):
    """A figure for st.plotly_chart, and the same figure serialised for the live chart."""
    figure: object
    live: LiveFigure


def chart(figure) -> Chart:
    return Chart(figure, live_figure(figure))


def draw(container, shown: Chart, key: str, live: bool) -> None:
    """While the view ticks, a chart redraws in place (Plotly.react), never mounted again:
    st.plotly_chart would mount a new chart for every new figure, which costs the browser
    about three times as much CPU (benchmarks/bench_runs.py)."""
    with container:
        if live:
            live_plotly_chart(shown.live, key=f"{key}_live")
        else:
            st.plotly_chart(shown.figure, key=key)


class Overview(NamedTuple):
    learning: Chart
    history: Chart
    exact: Chart | None  # CG against the exact natural gradient over time, if any update has it


@st.cache_resource(show_spinner=False, max_entries=16)
def overview_figures(run_id: str, count: int, last: tuple, _records) -> Overview:
    """The learning curve and the trust-region history of the run's first ``count`` updates."""
    shown = _records[:count]
    exact = (chart(fisher_figures.exact_over_time_figure(shown))
             if any(fisher_figures.has_exact(r) for r in shown) else None)
    return Overview(chart(figures.learning_curve_figure(shown)),
                    chart(figures.trust_region_history_figure(shown)), exact)


@st.cache_resource(show_spinner=False, max_entries=8)
def beside_figure(run_id: str, last: tuple, other_id: str, other_last: tuple,
                  _runs) -> tuple[Chart, list[str]]:
    """Two runs of one seed overlaid (learning curves, KL per update, rejected steps)."""
    return (chart(variant_figures.variant_overlay_figure(_runs)),
            [variant_figures.run_summary(label, records) for label, records in _runs])


class DetailFigures(NamedTuple):
    cg: Chart
    line_search: Chart
    slice: Chart | None
    slice_error: str | None
    exact: Chart | None  # CG's iterates against s* = (F + λI)⁻¹g
    exact_note: str | None  # why there is no exact comparison
    spectrum: Chart  # F's eigenvalues (exact, when computed) and CG's Ritz values


@st.cache_resource(show_spinner=False, max_entries=32)
def detail_figures(run_id: str, update: int, last: tuple, damping: float, _record,
                   _store) -> DetailFigures:
    """One update's CG residuals, line search and trust-region slice (if one was stored)."""
    data = _store.slice(run_id, update)
    plane, error = None, None
    if data is not None:
        try:
            plane = chart(figures.trust_region_slice_figure(slice_from_npz(data, _record)))
        except StoreError as exc:
            error = str(exc)
    note = fisher_figures.exact_fisher_note(_record)
    return DetailFigures(
        chart(figures.cg_residuals_figure(_record)), chart(figures.line_search_figure(_record)),
        plane, error,
        chart(fisher_figures.cg_vs_exact_figure(_record)) if note is None else None, note,
        chart(fisher_spectrum_figure(_record, damping)))


@st.cache_resource(show_spinner=False, max_entries=8)
def rollout_of(run_id: str, updated, _store):
    """The run's latest rollout: a GIF, or the note saying why it could not be drawn
    (``runs.worker.latest_rollout``); read again when the run changes."""
    return latest_rollout(_store, run_id)
