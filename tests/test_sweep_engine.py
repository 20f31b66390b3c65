"""Sweeps through a real local Ray instance (one for the module): the CLI end to end,
failure isolation (an error, a killed worker), cancellation and restart."""

from __future__ import annotations

import json
import os
import signal
import threading
import time

import pytest

from trpo_viz.runs.store import RunStore
from trpo_viz.sweep import command, engine, storage
from trpo_viz.sweep.grid import Trial, build_spec, parse_grid, parse_overrides
from trpo_viz.sweep.results import load_sweep
from trpo_viz.trpo.config import default_config

TINY = dict(n_steps=128, n_envs=2, hidden_sizes=(16,), value_epochs=1)
TINY_SET = ["--set", "n_steps=128", "--set", "hidden_sizes=16", "--set", "value_epochs=1"]


@pytest.fixture(scope="module")
def ray_local():
    info = engine.connect(None, 2)
    yield info
    engine.shutdown()


def test_a_2x2_sweep_through_local_ray_stores_every_trial_and_summarises(
        ray_local, tmp_path, capsys):
    db = tmp_path / "runs.sqlite3"
    argv = ["--db", str(db), "--steps", "512", "--grid", "max_kl=0.01,0.05", "--seeds", "2",
            *TINY_SET, "--workers", "2", "--json", "--no-progress"]
    assert command.main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["engine"] == {"name": "ray", "address": "local", "nodes": 1, "cpus": 2.0}
    trials = report["trials"]
    assert len(trials) == 4 and {t["status"] for t in trials} == {"finished"}
    assert [(t["setting"], t["seed"]) for t in trials] == [
        ({"max_kl": 0.01}, 0), ({"max_kl": 0.01}, 1), ({"max_kl": 0.05}, 0),
        ({"max_kl": 0.05}, 1)]
    assert all(t["wall_s"] > 0 and t["final_mean_return"] > 0 for t in trials)
    sweep_id = report["sweep_id"]
    with RunStore(db, readonly=True) as store:
        runs = storage.sweep_runs(store)[sweep_id]
        assert sorted(r.id for r in runs) == sorted(t["run_id"] for t in trials)
        for t in trials:
            info = store.run(t["run_id"])
            records = store.records(t["run_id"])
            assert info.status == "finished" and info.source.startswith(f"sweep:{sweep_id}:")
            assert [r.update for r in records] == [0, 1]  # 512 steps in batches of 256
            assert records[-1].total_timesteps == 512
            assert info.config.max_kl == t["setting"]["max_kl"] and info.config.seed == t["seed"]
            assert records[0].max_kl == pytest.approx(t["setting"]["max_kl"])  # it trained so
    summary = {s["label"]: s for s in report["summary"]}
    assert set(summary) == {"max_kl=0.01", "max_kl=0.05"}
    for label, s in summary.items():
        finals = [t["final_mean_return"] for t in trials if f"max_kl={t['setting']['max_kl']:g}"
                  == label]
        assert s["finished"] == s["seeds"] == 2
        # Two seeds: IQM = median = mean = their mean; the interval spans their range.
        assert s["iqm"] == pytest.approx(sum(finals) / 2)
        assert s["median"] == pytest.approx(s["iqm"]) and s["mean"] == pytest.approx(s["iqm"])
        assert s["ci_low"] == pytest.approx(min(finals)) and s["ci_high"] == pytest.approx(
            max(finals))

    # The same sweep id again: every trial finished before, so nothing runs.
    assert command.main([*argv, "--sweep-id", sweep_id]) == 0
    again = json.loads(capsys.readouterr().out)
    assert [t["run_id"] for t in again["trials"]] == [t["run_id"] for t in trials]
    assert all(t["skipped"] and t["status"] == "finished" for t in again["trials"])
    with RunStore(db, readonly=True) as store:
        assert len(storage.sweep_runs(store)[sweep_id]) == 4


def _plan(store, sweep_id: str, configs: list) -> list[storage.PlannedTrial]:
    """Trials with arbitrary configs (also ones the grid would never make)."""
    planned = []
    for i, config in enumerate(configs):
        trial = Trial(i, {"max_kl": config.max_kl}, config.seed, config)
        run_id = store.create_run(config, name=f"trial {i}",
                                  source=storage.source_for(sweep_id, ("max_kl",)),
                                  status="paused", desired="pause")
        store.set_status(run_id, "paused", error=storage.WAITING)
        planned.append(storage.PlannedTrial(trial, run_id, False))
    return planned


def test_a_failing_trial_a_killed_worker_and_a_deleted_run_do_not_stop_the_sweep(
        ray_local, tmp_path):
    broken = default_config("CartPole-v1", total_timesteps=512, **TINY)
    broken.env_id = "NoSuchTask-v0"  # valid hyperparameters, a task that cannot be made
    doomed = default_config("CartPole-v1", total_timesteps=256 * 200, seed=1, **TINY)
    healthy = default_config("CartPole-v1", total_timesteps=512, seed=2, **TINY)
    deleted = default_config("CartPole-v1", total_timesteps=256 * 200, seed=3, **TINY)
    pids: dict[int, int] = {}
    killed = []

    def on_event(event):
        if event.kind == "started":
            pids[event.index] = event.pid
        if event.kind == "update" and event.index == 1 and not killed:
            killed.append(event.pid)
            os.kill(pids[1], signal.SIGKILL)  # the worker dies mid-trial
        if event.kind == "update" and event.index == 3:
            store.delete(event.run_id)  # e.g. from the run library, while it trains

    with RunStore(tmp_path / "runs.sqlite3") as store:
        planned = _plan(store, "failures", [broken, doomed, healthy, deleted])
        outcomes = engine.drive(store, planned, max_parallel=2, on_event=on_event)
        assert [o.status for o in outcomes] == ["failed", "failed", "finished", "cancelled"]
        assert "NoSuchTask" in outcomes[0].error
        assert killed and ("died" in outcomes[1].error.lower()
                           or "crash" in outcomes[1].error.lower()), outcomes[1].error
        infos = [store.run(p.run_id) for p in planned[:3]]
        assert [i.status for i in infos] == ["failed", "failed", "finished"]
        assert infos[0].error == outcomes[0].error
        assert store.record_count(planned[1].run_id) >= 1  # what it did before it died stays
        assert store.record_count(planned[2].run_id) == 2


def test_cancel_stops_running_trials_marks_the_rest_and_a_restart_runs_them_again(
        ray_local, tmp_path):
    # Long enough that no trial ends on its own while the driver waits for the cancel to
    # be acknowledged (CANCEL_DRAIN_S), however fast the machine.
    spec = build_spec("CartPole-v1", 2_000_000, parse_grid(["max_kl=0.01,0.02"]), 1,
                      overrides=parse_overrides(["n_steps=128", "hidden_sizes=16",
                                                 "value_epochs=1"]))
    cancel = threading.Event()

    def on_event(event):
        if event.kind == "update":
            cancel.set()  # Stop as soon as the first trial has stored an update

    db = tmp_path / "runs.sqlite3"
    with RunStore(db) as store:
        planned = storage.prepare_trials(store, "cancelme", spec)
        outcomes = engine.drive(store, planned, max_parallel=1, cancel=cancel,
                                on_event=on_event)
        assert [o.status for o in outcomes] == ["cancelled", "cancelled"]
        first, second = (store.run(p.run_id) for p in planned)
        assert (first.status, second.status) == ("stopped", "stopped")
        assert first.error == "cancelled: the sweep was stopped"
        assert second.error == "cancelled: the sweep was stopped before it started"
        assert first.updates >= 1 and second.updates == 0
        results = load_sweep(store, "cancelme")
        assert [t.status for t in results.trials] == ["cancelled", "cancelled"]
        assert not results.active

        again = storage.prepare_trials(store, "cancelme", spec)
        assert [p.run_id for p in again] == [p.run_id for p in planned]  # the same runs
        assert not any(p.completed for p in again)
        assert store.run(planned[0].run_id).updates == 0  # emptied: it runs from the start
        assert storage.trial_status(store.run(planned[0].run_id)) == "pending"

    # Ray is free again: a new trial starts and finishes after the cancellation.
    tiny = build_spec("CartPole-v1", 256, parse_grid([]), 1,
                      overrides=parse_overrides(["n_steps=128", "hidden_sizes=16",
                                                 "value_epochs=1"]))
    with RunStore(db) as store:
        outcomes = engine.drive(store, storage.prepare_trials(store, "afterall", tiny), 2)
    assert [o.status for o in outcomes] == ["finished"]


def test_a_trial_runs_at_most_its_backlog_ahead_of_the_driver(ray_local):
    import ray

    config = default_config("CartPole-v1", **TINY, total_timesteps=256 * 5000)
    gen = engine.remote_trial().remote(config.to_dict(), False)
    try:
        assert ray.get(next(gen))["kind"] == "started"
        ready, _ = ray.wait([gen], timeout=120)  # TensorFlow is up, the first update is out
        assert ready
        time.sleep(5)  # unread: unbounded, the trial would run hundreds of updates ahead
        waiting = 0
        while ray.wait([gen], timeout=0)[0] and waiting <= 50:
            item = ray.get(next(gen))
            assert item["kind"] == "update"  # not done: it waited for the driver
            waiting += 1
        assert 1 <= waiting <= 2 * engine.BACKLOG, waiting
    finally:
        ray.cancel(gen)


@pytest.mark.parametrize("cancel_sent, status", [(False, "failed"), (True, "cancelled")])
def test_a_stream_that_ends_without_its_done_item_did_not_finish(tmp_path, cancel_sent, status):
    """A cancelled Ray generator can end with StopIteration, not TaskCancelledError: only a
    trial whose last item ("done") arrived is finished."""
    spec = build_spec("CartPole-v1", 256, parse_grid([]), 1,
                      overrides=parse_overrides(["n_steps=128", "hidden_sizes=16"]))
    with RunStore(tmp_path / "runs.sqlite3") as store:
        planned = storage.prepare_trials(store, "early123", spec)[0]
        state = engine._Running(planned, started=True, cancel_sent=cancel_sent)
        end = engine._advance(store, iter(()), state, lambda event: None)
        assert end.status == status
        assert storage.trial_status(store.run(planned.run_id)) == status
        done = engine._Running(planned, started=True, done=True)
        assert engine._advance(store, iter(()), done, lambda event: None).status == "finished"
