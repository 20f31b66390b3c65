"""Sweep results from hand-made trials: curves, final returns, summary, CSV and HTML export."""

from __future__ import annotations

import csv
import io
import re
from types import SimpleNamespace

import numpy as np
import pytest

from trpo_viz.sweep import export, storage
from trpo_viz.sweep.results import (
    SweepResults,
    TrialResult,
    final_mean_return,
    learning_curve,
    summarise,
)


def record(steps: int, returns: list[float]):
    mean = sum(returns) / len(returns) if returns else None
    return SimpleNamespace(total_timesteps=steps, episode_returns=returns, mean_return=mean)


def test_learning_curve_carries_the_last_mean_forward():
    x, y = learning_curve([record(100, []), record(200, [10.0, 20.0]), record(300, []),
                           record(400, [40.0])])
    np.testing.assert_array_equal(x, [100, 200, 300, 400])
    assert np.isnan(y[0])
    np.testing.assert_array_equal(y[1:], [15.0, 15.0, 40.0])


def test_final_return_pools_the_last_tenth_of_updates():
    per_update = [[1.0]] * 18 + [[10.0, 20.0], [30.0]]  # 20 updates: the last 2 count
    assert final_mean_return(per_update) == pytest.approx(20.0)
    assert final_mean_return([[5.0], [7.0, 9.0]]) == pytest.approx(8.0)  # ≥ 1 update: last
    assert final_mean_return([[5.0], []]) is None  # nothing ended in the window
    assert final_mean_return([]) is None


def trial(label_value: float, seed: int, final: float | None, status: str = "finished",
          curve=(1.0, 2.0, 3.0)) -> TrialResult:
    y = np.array(curve, dtype=float) + final if final is not None else np.array(curve)
    return TrialResult(f"run{seed:06d}{int(label_value * 100):02d}", {"max_kl": label_value},
                       f"max_kl={label_value:g}", seed, status,
                       None if status == "finished" else "cancelled: the sweep was stopped",
                       3, 300, 300, 12.5 if status == "finished" else None,
                       final if status == "finished" else None,
                       np.array([100.0, 200.0, 300.0]), y)


def results(trials) -> SweepResults:
    return SweepResults("abcd1234", "CartPole-v1", ("max_kl",), trials,
                        summarise(trials, reps=500), 1.7e9)


def test_summary_uses_finished_seeds_only_and_hand_computed_statistics():
    trials = [trial(0.01, s, f) for s, f in enumerate([10.0, 20.0, 30.0, 1000.0])]
    trials += [trial(0.05, 0, 50.0), trial(0.05, 1, None, status="cancelled")]
    a, b = results(trials).summary
    assert (a.label, a.seeds, a.finished) == ("max_kl=0.01", 4, 4)
    assert a.iqm == pytest.approx(25.0)  # n = 4: mean of the middle two (20, 30)
    assert a.median == pytest.approx(25.0) and a.mean == pytest.approx(265.0)
    assert a.ci_low <= a.iqm <= a.ci_high
    assert a.wall_s_mean == pytest.approx(12.5)
    np.testing.assert_allclose(a.curve_x, [100.0, 200.0, 300.0])
    np.testing.assert_allclose(a.curve_iqm, 25.0 + np.array([1.0, 2.0, 3.0]))
    assert (b.seeds, b.finished, b.iqm) == (2, 1, pytest.approx(50.0))
    assert b.ci_low is None and b.ci_high is None  # one seed: no interval
    assert np.isnan(b.curve_low).all()


def test_summary_csv_and_trials_csv():
    r = results([trial(0.01, 0, 10.0), trial(0.01, 1, 20.0), trial(0.05, 0, None, "cancelled")])
    rows = list(csv.DictReader(io.StringIO(export.summary_csv(r))))
    assert [row["setting"] for row in rows] == ["max_kl=0.01", "max_kl=0.05"]
    assert rows[0]["sweep"] == "abcd1234" and rows[0]["task"] == "CartPole-v1"
    assert float(rows[0]["IQM"]) == pytest.approx(15.0) and rows[0]["max_kl"] == "0.01"
    assert rows[1]["IQM"] == "" and rows[1]["finished seeds"] == "0/1"
    trials = list(csv.DictReader(io.StringIO(export.trials_csv(r))))
    assert [t["status"] for t in trials] == ["finished", "finished", "cancelled"]
    assert trials[2]["error"].startswith("cancelled") and trials[2]["final return"] == ""


def test_html_export_is_self_contained_and_escapes_text():
    r = results([trial(0.01, 0, 10.0), trial(0.01, 1, 20.0)])
    r.env_id = "<script>alert(1)</script>"
    page = export.sweep_html(r)
    assert page.startswith("<!DOCTYPE html>") and "Content-Security-Policy" in page
    assert not re.search(r"<script[^>]+src=", page)  # nothing fetched
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;alert(1)" in page
    assert 'id="curves"' in page and 'id="finals"' in page
    assert "IQM" in page and "stratified-bootstrap" in page


@pytest.mark.parametrize(
    "status, error, heartbeat_age, expected",
    [
        ("paused", storage.WAITING, None, "pending"),
        ("running", None, 1.0, "running"),
        ("running", None, 60.0, "interrupted"),  # its driver is gone
        ("finished", None, None, "finished"),
        ("failed", "ValueError: x", None, "failed"),
        ("stopped", "cancelled: the sweep was stopped", None, "cancelled"),
        ("paused", "something else", None, "interrupted"),
    ],
)
def test_trial_status_from_the_store_row(status, error, heartbeat_age, expected):
    now = 1000.0
    info = SimpleNamespace(status=status, error=error,
                           worker_heartbeat=None if heartbeat_age is None else now - heartbeat_age)
    assert storage.trial_status(info, now=now) == expected


def test_sources_round_trip_and_foreign_sources_are_not_sweeps():
    source = storage.source_for("abcd1234", ("max_kl", "cg_damping"))
    assert storage.parse_source(source) == ("abcd1234", ("max_kl", "cg_damping"))
    assert storage.parse_source(storage.source_for("abcd1234", ())) == ("abcd1234", ())
    for other in ("page", "cli", "import", "sweep:../x:max_kl", "sweep:", None):
        assert storage.parse_source(other) is None
