"""Variants overlaid: real runs of one seed, and what the figure must not hide."""

import math

import numpy as np
import plotly.graph_objects as go
import pytest

from trpo_viz.figures import variants as figures
from trpo_viz.trpo.record import UpdateRecord

SMALL = dict(n_envs=2, n_steps=128, value_batch_size=64, value_epochs=1, hidden_sizes=(8,),
             seed=4, max_kl=0.01)
UPDATES = 4


def _run(**overrides):
    from trpo_viz.trpo import TRPOTrainer, default_config

    trainer = TRPOTrainer(default_config("CartPole-v1", **{**SMALL, **overrides}))
    try:
        return [trainer.step() for _ in range(UPDATES)]
    finally:
        trainer.close()


@pytest.fixture(scope="module")
def runs():
    """TRPO; vanilla-pg with a large fixed step (its KL leaves the trust region); TRPO
    without backtracking (its one candidate is often over δ: steps rejected)."""
    return [("trpo", _run()), ("vanilla-pg", _run(variant="vanilla-pg", pg_lr=10.0)),
            ("trpo, no backtracking", _run(max_backtracks=0))]


@pytest.fixture(scope="module")
def figure(runs):
    fig = figures.variant_overlay_figure(runs)
    go.Figure(fig.to_dict())  # built unvalidated: it must pass validation
    return fig


def _trace(fig, name):
    (trace,) = [t for t in fig.data if t.name == name]
    return trace


def _named(fig, start):
    (trace,) = [t for t in fig.data if t.name and t.name.startswith(start)]
    return trace


def _text(fig) -> str:
    return " ".join(a.text for a in fig.layout.annotations).replace("<br>", " ")


def test_learning_curves_are_the_records_mean_returns(runs, figure):
    for label, records in runs:
        curve = _trace(figure, f"{label}: mean return")
        assert list(curve.x) == [r.total_timesteps for r in records]
        assert list(curve.y) == [r.mean_return for r in records]
    # the same seed and settings: every variant collected the same first batch
    firsts = [records[0] for _, records in runs]
    assert len({(r.total_timesteps, tuple(r.episode_returns)) for r in firsts}) == 1


def test_kl_above_delta_is_shown_at_its_value(runs, figure):
    _, records = runs[1]
    above = [r for r in records if r.accepted and r.kl > r.max_kl]
    assert above, "vanilla-pg with pg_lr = 10 leaves the trust region on this seed"
    marks = _named(figure, "vanilla-pg: KL above δ")
    assert list(marks.x) == [r.update + 1 for r in above]
    np.testing.assert_array_equal(marks.y, [r.kl for r in above])
    np.testing.assert_allclose(marks.customdata, [r.kl / r.max_kl for r in above])
    assert marks.name == f"vanilla-pg: KL above δ ({len(above)})"
    kl = _trace(figure, "vanilla-pg: KL of the step")
    assert list(kl.y) == [r.kl for r in records]  # every step was taken
    # the KL axis is logarithmic and scales itself: nothing above δ is cut off
    assert figure.layout.yaxis2.type == "log" and figure.layout.yaxis2.range is None
    assert figure.layout.yaxis.range is None
    delta = _trace(figure, "δ = 0.01")
    assert list(delta.y) == [0.01, 0.01]
    largest = max(r.kl for r in records)
    assert f"largest KL {largest:.3g} = {largest / 0.01:.3g}·δ" in _text(figure)
    # TRPO itself never took a step above δ: its triangle trace is empty
    assert list(_named(figure, "trpo: KL above δ").x) == []
    assert "trpo: 4 updates · 0 steps with KL above δ" in _text(figure)


def test_rejected_steps_are_marked_with_their_reason(runs, figure):
    _, records = runs[2]
    rejected = [r for r in records if not r.accepted]
    assert rejected, "one candidate and no backtracking: some step is over δ and rejected"
    marks = _named(figure, "trpo, no backtracking: step rejected")
    assert list(marks.x) == [r.update + 1 for r in rejected]
    assert list(marks.y) == [r.max_kl for r in rejected]  # on the δ line (KL 0 has no log)
    for text, record in zip(marks.text, rejected, strict=True):
        assert record.step_status in text
        assert f"the full step's KL was {record.candidates[0].kl:.3g}" in text
        assert record.candidates[0].kl > record.max_kl or record.candidates[0].improvement <= 0
    kl = _trace(figure, "trpo, no backtracking: KL of the step")
    assert [v is None for v in kl.y] == [not r.accepted for r in records]  # gaps, not zeros
    assert f"{len(rejected)} rejected · " in _text(figure)


def _record(update, returns, kl=0.005, accepted=True, status="accepted"):
    return UpdateRecord(update=update, total_timesteps=100 * (update + 1),
                        episode_returns=returns, max_kl=0.01, kl=kl, accepted=accepted,
                        step_status=status)


def test_the_largest_fall_of_the_return_is_stated():
    records = [_record(0, [10.0]), _record(1, [50.0, 70.0]), _record(2, []),
               _record(3, [40.0]), _record(4, [5.0], kl=2.0), _record(5, [80.0]),
               _record(6, [60.0])]
    assert figures.largest_fall(records) == (2, 60.0, 5, 5.0)
    assert figures.largest_fall(records[:2]) is None  # it only rose
    line = figures.run_summary("npg", records)
    assert "1 steps with KL above δ" in line and "largest KL 2 = 200·δ" in line
    assert "mean return fell from 60 (update 2) to 5 (update 5)" in line
    nan_kl = _record(0, [1.0], kl=math.nan)
    assert figures.kl_above_delta(nan_kl)  # a NaN KL is never "within δ"
    assert not figures.kl_above_delta(_record(0, [1.0], kl=0.5, accepted=False,
                                              status="line_search_rejected"))


def test_no_runs_no_figure_but_a_message():
    fig = figures.variant_overlay_figure([])
    assert list(fig.data) == [] and "No updates" in _text(fig)
    fig = figures.variant_overlay_figure([("trpo", [])])
    assert "No updates" in _text(fig)
