"""The run registry with real worker processes: commands, the queue, dead workers, adoption."""

from __future__ import annotations

import os
import signal
import time

import pytest

from trpo_viz.runs.registry import Registry
from trpo_viz.runs.store import RunStore, StoreError
from trpo_viz.trpo.config import default_config

TINY = dict(n_steps=128, n_envs=2, hidden_sizes=(16,), value_epochs=1)
WAIT_S = 300.0 * float(os.environ.get("TRPO_VIZ_TIMEOUT_FACTOR", "1"))


def config(updates: int):
    return default_config("CartPole-v1", total_timesteps=updates * 256, **TINY)


def wait_for(predicate, what: str):
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def registry(tmp_path, monkeypatch):
    monkeypatch.setenv("TRPO_VIZ_HOME", str(tmp_path))
    registry = Registry(tmp_path / "runs.sqlite3", max_workers=1, paused_grace=2.0, threads=1)
    yield registry
    registry.shutdown()


def test_start_pause_step_resume_finish(registry):
    store = RunStore(registry.db_path)
    run_id = registry.create(config(updates=6))
    wait_for(lambda: store.run(run_id).updates >= 2, "two updates")
    registry.pause(run_id)
    wait_for(lambda: store.run(run_id).status == "paused", "the worker to pause")
    paused_at = store.run(run_id).updates
    registry.step(run_id)
    wait_for(lambda: store.run(run_id).step_requests == 0, "the single step")
    assert store.run(run_id).updates == paused_at + 1
    wait_for(lambda: store.run(run_id).status == "paused", "paused again after the step")
    assert store.run(run_id).updates == paused_at + 1  # a step is one update, not a resume
    registry.resume(run_id)
    wait_for(lambda: store.run(run_id).status == "finished", "the run to finish")
    assert store.run(run_id).updates == 6
    with pytest.raises(StoreError, match="finished"):
        registry.step(run_id)


def test_runs_beyond_the_slots_wait_in_a_queue_with_a_position(registry):
    store = RunStore(registry.db_path)
    first = registry.create(config(updates=3))
    second = registry.create(config(updates=2))
    third = registry.create(config(updates=2))
    wait_for(lambda: store.run(first).status in ("starting", "running"), "the first to start")
    assert registry.queue_position(second) == 1 and registry.queue_position(third) == 2
    wait_for(lambda: store.run(third).status == "finished", "all three to finish in turn")
    assert [store.run(r).updates for r in (first, second, third)] == [3, 2, 2]


def test_a_paused_worker_frees_its_slot(registry):
    """Slots belong to training workers: a paused run's worker exits after its grace."""
    store = RunStore(registry.db_path)
    first = registry.create(config(updates=50))
    wait_for(lambda: store.run(first).updates >= 1, "the first run's first update")
    registry.pause(first)
    second = registry.create(config(updates=1))
    wait_for(lambda: store.run(second).status == "finished", "the queued run to get the slot")
    assert store.run(first).status == "paused"


def test_a_killed_worker_marks_the_run_interrupted_and_resume_continues(registry):
    store = RunStore(registry.db_path)
    run_id = registry.create(config(updates=40))
    wait_for(lambda: store.run(run_id).updates >= 2, "two updates")
    pid = store.run(run_id).worker_pid
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: store.run(run_id).status == "interrupted", "the run to be interrupted")
    before = store.run(run_id).updates
    assert "Resume continues" in store.run(run_id).error
    registry.resume(run_id)
    wait_for(lambda: store.run(run_id).updates >= before + 2, "two more updates after resuming")
    records = store.records(run_id)
    assert [r.update for r in records] == list(range(len(records)))
    registry.stop(run_id)
    wait_for(lambda: store.run(run_id).status == "stopped", "the run to stop")
