"""The TRPO charts, built without plotly's validation, are valid figures with the data.

Each builder's figure is rebuilt with validation on (``go.Figure(fig.to_dict())`` raises
on an unknown property or a bad value), and the hand-laid subplot grid is checked
against ``plotly.subplots.make_subplots``'s.
"""

import math

import plotly.graph_objects as go
import pytest
from plotly.subplots import make_subplots

from trpo_viz.figures import trpo as figures


@pytest.fixture
def run(cartpole_trained_run):
    return cartpole_trained_run  # conftest: three stored CartPole updates, shared by the session


def validated(fig: go.Figure) -> go.Figure:
    return go.Figure(fig.to_dict())  # raises on an unknown property or a bad value


def test_every_figure_is_valid_and_plots_the_records(run):
    records, last = run.records, run.records[-1]
    curve = validated(figures.learning_curve_figure(records))
    returns = [ret for r in records for ret in r.episode_returns]
    assert list(curve.data[0].y) == pytest.approx(returns)
    history = validated(figures.trust_region_history_figure(records))
    kl = next(t for t in history.data if t.name == "KL")
    assert list(kl.x) == [1, 2, 3] and list(kl.y) == pytest.approx([r.kl for r in records])
    backtracks = next(t for t in history.data if t.name == "backtracks")
    assert (backtracks.xaxis, list(backtracks.y)) == ("x3", [r.backtracks for r in records])
    cg = validated(figures.cg_residuals_figure(last))
    recursive = [t for t in cg.data if t.name and t.name.startswith("‖r_k‖")]
    plotted = [y for t in recursive for y in t.y]
    assert set(plotted) <= set(last.cg_residuals) and plotted[0] == last.cg_residuals[0]
    assert cg.layout.yaxis.type == "log"
    search = validated(figures.line_search_figure(last))
    assert list(search.data[0].y) == pytest.approx([c.kl for c in last.candidates])
    assert search.layout.shapes[0].y0 == last.max_kl  # the δ line
    plane = validated(figures.trust_region_slice_figure(run.slices[last.update]))
    assert [t.name for t in plane.data][:2] == ["L(θ) − L(θ_old)", "KL = δ (trust region)"]


def test_missing_values_are_gaps_not_nan(run):
    record = run.records[-1]
    broken = type(record).from_dict({**record.to_dict(), "kl": math.nan})
    history = figures.trust_region_history_figure([*run.records[:-1], broken])
    kl = next(t for t in history.data if t.name == "KL")
    assert kl.y[-1] is None
    assert "NaN" not in history.to_json()


@pytest.mark.parametrize("rows, cols, h, v", [(2, 2, 0.12, 0.18), (1, 2, 0.14, 0.0)])
def test_the_subplot_grid_is_make_subplots_grid(rows, cols, h, v):
    titles = tuple(f"t{i}" for i in range(rows * cols))
    axes, notes = figures._grid(rows, cols, h, v, titles)
    reference = make_subplots(rows=rows, cols=cols, horizontal_spacing=h,
                              vertical_spacing=v or None, subplot_titles=titles).layout
    for name, axis in axes.items():
        assert axis["domain"] == pytest.approx(list(reference[name].domain)), name
        assert axis["anchor"] == reference[name].anchor
    for note, ref in zip(notes, reference.annotations, strict=True):
        assert (note["text"], note["x"], note["y"]) == pytest.approx((ref.text, ref.x, ref.y))


def _with(record, **changes):
    return type(record).from_dict({**record.to_dict(), **changes})


def test_the_backtracks_panel_counts_from_zero_and_says_when_none_happened(run):
    """All-zero bars drew an empty panel around a y axis at −1 … 1; now it starts at 0 and
    says that every full step was accepted, and says nothing once a step backtracked."""
    calm = [_with(r, backtracks=0, accepted=True) for r in run.records]
    history = validated(figures.trust_region_history_figure(calm))
    assert list(history.layout.yaxis3.range) == [0, 1]
    notes = [a.text for a in history.layout.annotations if a.yref == "y3 domain"]
    assert notes == ["0 in every update:<br>each full step was accepted"]
    busy = [*calm[:-1], _with(calm[-1], backtracks=3)]
    history = validated(figures.trust_region_history_figure(busy))
    assert list(history.layout.yaxis3.range) == [0, 3]
    assert not [a for a in history.layout.annotations if a.yref == "y3 domain"]
    refused = [*calm[:-1], _with(calm[-1], accepted=False)]  # no step, and no backtrack
    history = figures.trust_region_history_figure(refused)
    assert not [a for a in history.layout.annotations if a.yref == "y3 domain"]


@pytest.mark.parametrize("fractions, ticks", [
    ([0.8 ** k for k in range(10)], [0.2, 0.5, 1.0]),  # 1 … 0.134
    ([0.5 ** k for k in range(11)], [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0]),
    ([1.0], [1.0]),
])
def test_the_line_search_fractions_get_whole_tick_labels(fractions, ticks):
    spec = figures._log_ticks(fractions)
    assert spec["tickvals"] == pytest.approx(ticks)
    assert spec["ticktext"] == [f"{t:g}" for t in spec["tickvals"]]
