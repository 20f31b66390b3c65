"""The run registry with real worker processes: commands, the queue, dead workers, adoption."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from trpo_viz.runs.registry import (
    WORKER_THREADS_ENV,
    Registry,
    _shared,
    shared_registry,
    worker_threads,
)
from trpo_viz.runs.store import RunStore, StoreError
from trpo_viz.trpo.config import default_config

TINY = dict(n_steps=128, n_envs=2, hidden_sizes=(16,), value_epochs=1)
# Long runs: tiny updates take ~50 ms on a fast idle machine, so a run that must still be
# training when a command arrives gets far more updates than any test waits for.
LONG = 2000
WAIT_S = 300.0 * float(os.environ.get("TRPO_VIZ_TIMEOUT_FACTOR", "1"))
SLEEPER = [sys.executable, "-c", "import time; time.sleep(600)"]  # a stand-in worker


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


def test_step_a_paused_run_then_resume_to_the_finish(registry):
    """Made paused, a run takes single steps on request and finishes once resumed."""
    store = RunStore(registry.db_path)
    run_id = registry.create(config(updates=6), start=False)
    assert store.run(run_id).status == "paused" and store.run(run_id).updates == 0
    registry.step(run_id)
    wait_for(lambda: store.run(run_id).step_requests == 0, "the single step")
    wait_for(lambda: store.run(run_id).status == "paused", "paused again after the step")
    assert store.run(run_id).updates == 1  # a step is one update, not a resume
    registry.resume(run_id)
    wait_for(lambda: store.run(run_id).status == "finished", "the run to finish")
    assert store.run(run_id).updates == 6
    with pytest.raises(StoreError, match="finished"):
        registry.step(run_id)


def test_pause_a_training_run(registry):
    """Pause takes effect at the next update boundary; the run is long enough not to finish."""
    store = RunStore(registry.db_path)
    run_id = registry.create(config(updates=LONG))
    wait_for(lambda: store.run(run_id).updates >= 2, "two updates")
    registry.pause(run_id)
    wait_for(lambda: store.run(run_id).status == "paused", "the worker to pause")
    paused_at = store.run(run_id).updates
    assert 2 <= paused_at < LONG
    registry.step(run_id)
    wait_for(lambda: store.run(run_id).step_requests == 0, "the single step")
    wait_for(lambda: store.run(run_id).status == "paused", "paused again after the step")
    assert store.run(run_id).updates == paused_at + 1
    registry.stop(run_id)
    wait_for(lambda: store.run(run_id).status == "stopped", "the run to stop")


def test_runs_beyond_the_slots_wait_in_a_queue_with_a_position(registry):
    store = RunStore(registry.db_path)
    first = registry.create(config(updates=LONG))
    second = registry.create(config(updates=2))
    third = registry.create(config(updates=2))
    wait_for(lambda: store.run(first).status in ("starting", "running"), "the first to start")
    assert registry.queue_position(second) == 1 and registry.queue_position(third) == 2
    registry.stop(first)
    wait_for(lambda: store.run(third).status == "finished", "the other two to finish in turn")
    assert store.run(first).status == "stopped"
    assert [store.run(r).updates for r in (second, third)] == [2, 2]


def test_a_command_that_races_a_scheduler_pass_starts_one_worker(tmp_path, monkeypatch):
    """Step on a paused run while a scheduler pass runs: one worker, never two.

    A pass that lands between the command's look at the run and its "queued" spawned the
    run, and the next pass spawned it again on the late "queued": two workers trained
    update 0 and the second failed the run on the records' unique key (seen once in
    ``bench_runs.py``). Here the pass is made to land in that gap whenever the command
    does not hold the registry's lock (under which the scheduler spawns). The workers are
    stand-ins that sleep: the test is about how many start, not what they do.
    """
    monkeypatch.setenv("TRPO_VIZ_HOME", str(tmp_path))
    registry = Registry(tmp_path / "runs.sqlite3", max_workers=2, threads=1)
    spawned, processes = [], []
    passes, count = threading.Condition(), [0]
    schedule = registry.schedule

    def counted_schedule():
        schedule()
        with passes:
            count[0] += 1
            passes.notify_all()

    def wait_passes(n: int) -> None:
        with passes:
            seen = count[0]
            assert passes.wait_for(lambda: count[0] >= seen + n, timeout=WAIT_S)

    def stand_in_start(run_id: str) -> subprocess.Popen:
        spawned.append(run_id)
        process = subprocess.Popen(SLEEPER)
        processes.append(process)
        return process

    set_status = RunStore.set_status
    command_thread = threading.current_thread()

    def set_status_after_a_pass(self, run_id, status, error=None, **extra):
        if (status == "queued" and threading.current_thread() is command_thread
                and not registry._lock._is_owned()):
            wait_passes(2)  # a whole scheduler pass lands in the gap
        set_status(self, run_id, status, error, **extra)

    monkeypatch.setattr(registry, "schedule", counted_schedule)
    monkeypatch.setattr(registry, "_start_worker", stand_in_start)
    monkeypatch.setattr(RunStore, "set_status", set_status_after_a_pass)
    try:
        run_id = registry.create(config(updates=2), start=False)
        registry.step(run_id)
        wait_passes(3)
        assert spawned == [run_id]
        registry.resume(run_id)  # its worker is starting: Resume starts no other
        wait_passes(3)
        assert spawned == [run_id]
    finally:
        registry.shutdown()
        for process in processes:
            process.kill()
            process.wait()


def test_two_servers_on_one_store_start_one_worker_for_a_queued_run(tmp_path, monkeypatch):
    """Two servers on one data folder: both registries see the queued run, one starts it.

    Server A's pass has read the queue; before it starts the worker, server B's whole
    pass runs and starts one. A's claim in the store then finds the run no longer queued,
    so A starts nothing (it used to start a second worker, and the two trained the same
    updates). Passes run by hand here, and the workers are stand-ins that sleep.
    """
    monkeypatch.setenv("TRPO_VIZ_HOME", str(tmp_path))
    path = tmp_path / "runs.sqlite3"
    a, b = Registry(path, threads=1), Registry(path, threads=1)
    a.close()
    b.close()  # no background passes: the test runs each pass itself
    started, processes = [], []

    def stand_in(server: str):
        def start(run_id: str) -> subprocess.Popen:
            process = subprocess.Popen(SLEEPER)
            started.append((server, run_id))
            processes.append(process)
            return process
        return start

    claim = RunStore.claim

    def b_passes_first(store, run_id, pid):
        if store is a.store and not started:
            b.schedule()  # B's whole pass lands between A's look at the queue and its claim
        return claim(store, run_id, pid)

    monkeypatch.setattr(a, "_start_worker", stand_in("a"))
    monkeypatch.setattr(b, "_start_worker", stand_in("b"))
    monkeypatch.setattr(RunStore, "claim", b_passes_first)
    try:
        run_id = a.create(config(updates=2))
        a.schedule()
        assert started == [("b", run_id)]
        for server in (a, b, a):  # later passes see B's live worker, in either server
            server.schedule()
        assert started == [("b", run_id)]
        info = RunStore(path).run(run_id)
        assert info.status == "starting" and info.worker_pid == processes[0].pid
    finally:
        a.shutdown()
        b.shutdown()
        for process in processes:
            process.kill()
            process.wait()


def test_a_paused_worker_frees_its_slot(registry):
    """Slots belong to training workers: a paused run's worker exits after its grace."""
    store = RunStore(registry.db_path)
    first = registry.create(config(updates=LONG))
    wait_for(lambda: store.run(first).updates >= 1, "the first run's first update")
    registry.pause(first)
    second = registry.create(config(updates=1))
    wait_for(lambda: store.run(second).status == "finished", "the queued run to get the slot")
    assert store.run(first).status == "paused"


def test_a_killed_worker_marks_the_run_interrupted_and_resume_continues(registry):
    store = RunStore(registry.db_path)
    run_id = registry.create(config(updates=LONG))
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


def test_delete_a_training_run_stops_its_worker_first(registry):
    store = RunStore(registry.db_path)
    run_id = registry.create(config(updates=LONG))
    wait_for(lambda: store.run(run_id).updates >= 1, "an update")
    worker = registry._workers[run_id]
    registry.delete(run_id)
    with pytest.raises(StoreError):
        store.run(run_id)
    assert store.runs() == []
    assert worker.wait(WAIT_S) == 0  # it stopped on the command, not killed, not crashed


def test_release_ends_a_paused_worker_before_its_grace(tmp_path, monkeypatch):
    """New run leaves a paused run: its worker exits now (not after the grace), still paused."""
    monkeypatch.setenv("TRPO_VIZ_HOME", str(tmp_path))
    registry = Registry(tmp_path / "runs.sqlite3", max_workers=1, paused_grace=3600.0, threads=1)
    try:
        store = RunStore(registry.db_path)
        run_id = registry.create(config(updates=LONG))
        wait_for(lambda: store.run(run_id).updates >= 1, "an update")
        registry.pause(run_id)
        wait_for(lambda: store.run(run_id).status == "paused", "the worker to pause")
        assert store.run(run_id).worker_pid is not None  # the grace keeps the worker
        registry.release(run_id)
        wait_for(lambda: store.run(run_id).worker_pid is None, "the worker to exit")
        info = store.run(run_id)
        assert info.status == "paused" and info.desired == "pause"
        before = info.updates
        registry.resume(run_id)  # a new worker continues from the checkpoint
        wait_for(lambda: store.run(run_id).updates >= before + 1, "an update after resuming")
        registry.stop(run_id)
        wait_for(lambda: store.run(run_id).status == "stopped", "the run to stop")
    finally:
        registry.shutdown()


@pytest.mark.parametrize("text, threads", [("", None), ("1", 1), (" 3 ", 3), ("1024", 1024)])
def test_worker_threads_from_the_environment(monkeypatch, text, threads):
    monkeypatch.setenv(WORKER_THREADS_ENV, text)
    assert worker_threads() == threads


@pytest.mark.parametrize("text", ["0", "-1", "1.5", "two", "²", "1025", "9" * 50])
def test_a_bad_worker_thread_count_is_refused_by_name(monkeypatch, text):
    monkeypatch.setenv(WORKER_THREADS_ENV, text)
    with pytest.raises(ValueError, match=f"{WORKER_THREADS_ENV} must be a whole number from 1"):
        worker_threads()


def test_the_shared_registry_gives_its_workers_the_configured_threads(tmp_path, monkeypatch):
    """The worker is started with ``--threads`` set from the environment."""
    monkeypatch.setenv("TRPO_VIZ_HOME", str(tmp_path))
    monkeypatch.setenv(WORKER_THREADS_ENV, "1")
    registry = shared_registry(tmp_path / "runs.sqlite3")
    try:
        assert registry.threads == 1
        store = RunStore(registry.db_path)
        run_id = registry.create(config(updates=LONG))
        wait_for(lambda: store.run(run_id).updates >= 1, "an update")
        pid = store.run(run_id).worker_pid
        with open(f"/proc/{pid}/cmdline", "rb") as file:
            command = file.read().split(b"\0")
        assert command[command.index(b"--threads") + 1] == b"1"
        registry.stop(run_id)
        wait_for(lambda: store.run(run_id).status == "stopped", "the run to stop")
    finally:
        registry.shutdown()
        _shared.pop(registry.db_path, None)
