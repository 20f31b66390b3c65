"""Running a sweep on Ray: the trial task and the driver loop.

The connection to Ray (local instance or cluster) is :mod:`trpo_viz.sweep.connection`;
its names are re-exported here (``engine.connect``, ``engine.shutdown``, …).

**Trial** (:func:`trial_task`). A Ray streaming-generator task: it builds a
:class:`TRPOTrainer` from the trial's config, yields one item per update (the
:class:`UpdateRecord` as a dict; the last one with the trainer's checkpoint) and a
final item with its wall time, peak memory and CPU time. ``max_retries=0``: a trial
whose worker dies is reported failed, not silently run twice.

**Driver** (:func:`drive`). Runs in the process that owns the run store, never on a
worker: it submits at most ``max_parallel`` trials at a time, waits on all of them with
``ray.wait``, writes every record into the store as it arrives, keeps the running
trials' heartbeats fresh, and turns each trial's end into ``finished``, ``failed``
(with its error) or ``cancelled``. One trial's failure never stops the others. When
``cancel`` is set (Ctrl-C, the page's Stop, or ``stop`` on a trial) the running trials
are cancelled (``ray.cancel``: KeyboardInterrupt in the task, whose ``finally`` closes
the trainer) and the ones not started are marked cancelled.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from trpo_viz.sweep import storage
from trpo_viz.sweep.connection import (  # noqa: F401 - re-exported: engine.connect, …
    EngineError,
    EngineInfo,
    check_address,
    connect,
    engine_info,
    shutdown,
)

POLL_S = 0.25  # the driver's ray.wait timeout: how soon it notices a cancel
HEARTBEAT_S = 2.0
# A trial pauses once this many of its items wait unread by the driver (Ray's generator
# backpressure): the store shows where a trial is, not where it was, and a cancel stops it
# there; unbounded, a small trial on a busy driver ran to its end before the driver read
# the update that cancelled it.
BACKLOG = 4
CANCEL_DRAIN_S = 10.0  # how long cancelled trials get to acknowledge


# ----------------------------------------------------------------------------- the trial


def trial_task(config_dict: dict, checkpoint: bool = True):
    """Train one trial, yielding its progress (runs in a Ray worker; see the module doc)."""
    import resource
    import socket

    start = time.perf_counter()
    yield {"kind": "started", "pid": os.getpid(), "host": socket.gethostname()}
    from trpo_viz.quiet import import_tensorflow

    import_tensorflow()
    from trpo_viz.runs.checkpoint import checkpoint_bytes
    from trpo_viz.trpo.config import TRPOConfig
    from trpo_viz.trpo.trainer import TRPOTrainer, set_num_threads

    try:
        set_num_threads(1)
    except RuntimeError:  # a reused worker whose TensorFlow runtime is already set up
        pass
    trainer = TRPOTrainer(TRPOConfig.from_dict(config_dict))
    try:
        while not trainer.done:
            record = trainer.step()
            item = {"kind": "update", "record": record.to_dict()}
            if checkpoint and trainer.done:
                item["checkpoint"] = checkpoint_bytes(trainer)
            yield item
    finally:
        trainer.close()
    usage = resource.getrusage(resource.RUSAGE_SELF)  # of the whole worker process so far
    yield {"kind": "done", "wall_s": time.perf_counter() - start,
           "max_rss_mib": usage.ru_maxrss / 1024, "process_cpu_s": usage.ru_utime + usage.ru_stime}


_remote = None


def remote_trial():
    """``trial_task`` as a Ray remote function (one CPU, no retries, at most
    ``BACKLOG`` items ahead of the driver)."""
    global _remote
    if _remote is None:
        import ray

        _remote = ray.remote(num_cpus=1, max_retries=0,
                             _generator_backpressure_num_objects=BACKLOG)(trial_task)
    return _remote


# ----------------------------------------------------------------------------- the driver


@dataclass
class TrialOutcome:
    """What became of one trial in this run of the sweep."""

    index: int
    setting: dict
    seed: int
    run_id: str
    status: str  # finished, failed, cancelled
    error: str | None = None
    wall_s: float | None = None
    max_rss_mib: float | None = None  # peak memory of the worker process
    skipped: bool = False  # finished in an earlier run of the sweep
    host: str | None = None
    pid: int | None = None  # the worker process
    process_cpu_s: float | None = None  # CPU time of the worker process up to the trial's end


@dataclass
class _Running:
    planned: storage.PlannedTrial
    started: bool = False
    updates: int = 0
    wall_s: float | None = None
    max_rss_mib: float | None = None
    process_cpu_s: float | None = None
    host: str | None = None
    pid: int | None = None
    done: bool = False  # its last item ("done") arrived: the trial trained to its end
    cancel_sent: bool = False  # ray.cancel was called on it


@dataclass
class SweepEvent:
    """What the driver reports as it goes (for progress bars and tests)."""

    kind: str  # "started", "update", "end"
    index: int
    run_id: str
    update: int | None = None
    total_timesteps: int | None = None
    status: str | None = None
    pid: int | None = None
    extra: dict = field(default_factory=dict)


def drive(store, planned: list[storage.PlannedTrial], max_parallel: int,
          cancel: threading.Event | None = None,
          on_event: Callable[[SweepEvent], None] | None = None) -> list[TrialOutcome]:
    """Run the planned trials on the connected Ray; the store is written here only.

    Returns one outcome per planned trial, in plan order. A KeyboardInterrupt (Ctrl-C)
    while trials run is taken as ``cancel``: it is set, the remaining trials are
    cancelled and marked, and the outcomes are returned (the caller sees ``cancel``).
    """
    import ray

    from trpo_viz.runs.schema import StoreError

    if max_parallel < 1:
        raise ValueError(f"max_parallel must be at least 1, got {max_parallel}")
    cancel = cancel or threading.Event()
    on_event = on_event or (lambda event: None)
    outcomes: dict[int, TrialOutcome] = {}
    for p in planned:
        if p.completed:
            outcomes[p.trial.index] = _outcome(p, "finished", skipped=True,
                                               wall_s=store.run(p.run_id).wall_s)
    queue = deque(p for p in planned if not p.completed)
    running: dict = {}  # ObjectRefGenerator -> _Running
    remote = remote_trial()
    last_beat = 0.0
    try:
        while queue or running:
            if cancel.is_set():
                break
            while queue and len(running) < max_parallel:
                p = queue.popleft()
                if _stop_requested(store, p.run_id):  # stopped on its own (/trpo), deleted
                    storage.mark_cancelled(store, p.run_id, started=False)
                    outcomes[p.trial.index] = _outcome(p, "cancelled", error=storage.CANCELLED)
                    on_event(SweepEvent("end", p.trial.index, p.run_id, status="cancelled"))
                    continue
                store.set_status(p.run_id, "starting", error=None)
                store.heartbeat(p.run_id, os.getpid())
                running[remote.remote(p.trial.config.to_dict())] = _Running(p)
            ready, _ = ray.wait(list(running), num_returns=len(running), timeout=POLL_S)
            for gen in ready:
                state = running[gen]
                try:
                    end = _advance(store, gen, state, on_event)
                except StoreError:  # its run was deleted while it trained
                    _cancel(gen, state)
                    end = _end(store, state, "cancelled", on_event)
                if end is not None:
                    del running[gen]
                    outcomes[state.planned.trial.index] = end
            if time.monotonic() - last_beat > HEARTBEAT_S:
                last_beat = time.monotonic()
                for gen, state in list(running.items()):
                    if _stop_requested(store, state.planned.run_id):
                        _cancel(gen, state)  # the trial's own Stop (from /trpo), or deleted
                    else:
                        store.heartbeat(state.planned.run_id, os.getpid())
    except KeyboardInterrupt:
        cancel.set()
    finally:
        if running or queue:
            _cancel_all(store, running, queue, outcomes, on_event)
    return [outcomes[p.trial.index] for p in planned]


def _stop_requested(store, run_id: str) -> bool:
    """The trial's run asks to stop (/trpo's Stop) or no longer exists (deleted)."""
    from trpo_viz.runs.schema import StoreError

    try:
        return store.run(run_id).desired == "stop"
    except StoreError:
        return True


def _outcome(p: storage.PlannedTrial, status: str, **extra) -> TrialOutcome:
    return TrialOutcome(p.trial.index, dict(p.trial.setting), p.trial.seed, p.run_id, status,
                        **extra)


def _advance(store, gen, state: _Running, on_event) -> TrialOutcome | None:
    """Take one item from a ready trial; its outcome when the trial has ended."""
    import ray
    from ray.exceptions import RayError, RayTaskError, TaskCancelledError

    from trpo_viz.trpo.record import UpdateRecord

    p = state.planned
    try:
        ref = next(gen)
    except StopIteration:
        if state.done:
            return _end(store, state, "finished", on_event)
        if state.cancel_sent:  # a cancelled generator can end without TaskCancelledError
            return _end(store, state, "cancelled", on_event)
        return _end(store, state, "failed", on_event,
                    error="the trial stopped before it finished (its stream ended early)")
    try:
        item = ray.get(ref)
    except TaskCancelledError:
        return _end(store, state, "cancelled", on_event)
    # A KeyboardInterrupt here is the driver's own Ctrl-C, not the trial's: it goes up to
    # drive(), which cancels the whole sweep (caught here, it ended one trial and the rest
    # ran on to exit 0).
    except RayTaskError as error:
        cause = error.cause if isinstance(error.cause, BaseException) else None
        if isinstance(cause, (TaskCancelledError, KeyboardInterrupt)):
            return _end(store, state, "cancelled", on_event)
        message = (f"{type(cause).__name__}: {cause}" if cause is not None
                   else str(error).strip().splitlines()[-1])
        return _end(store, state, "failed", on_event, error=message)
    except RayError as error:  # the worker died (killed, out of memory), the node was lost
        message = f"{type(error).__name__}: " + " ".join(str(error).split())[:300]
        return _end(store, state, "failed", on_event, error=message)
    kind = item.get("kind")
    if kind == "started":
        state.started, state.host, state.pid = True, item.get("host"), item.get("pid")
        store.set_status(p.run_id, "running", error=None)
        on_event(SweepEvent("started", p.trial.index, p.run_id, pid=state.pid,
                            extra={"host": state.host}))
    elif kind == "update":
        record = UpdateRecord.from_dict(item["record"])
        try:
            store.append_update(p.run_id, record, None, item.get("checkpoint"))
        except sqlite3.IntegrityError:  # the run was deleted while it trained
            _cancel(gen, state)
            return _end(store, state, "cancelled", on_event)
        state.updates += 1
        on_event(SweepEvent("update", p.trial.index, p.run_id, update=record.update,
                            total_timesteps=record.total_timesteps,
                            extra={"mean_return": record.mean_return}))
    elif kind == "done":
        state.done = True
        state.wall_s, state.max_rss_mib = item.get("wall_s"), item.get("max_rss_mib")
        state.process_cpu_s = item.get("process_cpu_s")
    return None


def _end(store, state: _Running, status: str, on_event, error: str | None = None):
    from trpo_viz.runs.schema import StoreError

    p = state.planned
    try:
        if status == "finished":
            extra = {} if state.wall_s is None else {"wall_s": state.wall_s}
            store.set_status(p.run_id, "finished", worker_pid=None, **extra)
        elif status == "failed":
            store.set_status(p.run_id, "failed", error=error, worker_pid=None)
        else:
            storage.mark_cancelled(store, p.run_id, started=True)
    except StoreError:  # the run was deleted meanwhile: nothing left to mark
        pass
    on_event(SweepEvent("end", p.trial.index, p.run_id, status=status, extra={"error": error}))
    return _outcome(p, status, error=error, wall_s=state.wall_s,
                    max_rss_mib=state.max_rss_mib, host=state.host, pid=state.pid,
                    process_cpu_s=state.process_cpu_s)


def _cancel(gen, state: _Running) -> None:
    import ray

    state.cancel_sent = True
    ray.cancel(gen)


def _cancel_all(store, running: dict, queue: deque, outcomes: dict, on_event) -> None:
    """Cancel the running trials, wait briefly for them to stop, mark everything left."""
    import ray

    for gen, state in running.items():
        _cancel(gen, state)
    deadline = time.monotonic() + CANCEL_DRAIN_S
    while running and time.monotonic() < deadline:
        ready, _ = ray.wait(list(running), num_returns=len(running), timeout=POLL_S)
        for gen in ready:
            state = running[gen]
            end = _advance(store, gen, state, lambda event: None)
            if end is not None:
                del running[gen]
                status = "finished" if end.status == "finished" else "cancelled"
                if end.status != status:
                    storage.mark_cancelled(store, state.planned.run_id, started=True)
                outcomes[state.planned.trial.index] = _outcome(
                    state.planned, status, wall_s=end.wall_s, host=end.host,
                    error=None if status == "finished" else storage.CANCELLED)
                on_event(SweepEvent("end", end.index, end.run_id, status=status))
    for gen, state in running.items():  # did not acknowledge in time: its worker is ended
        with contextlib.suppress(Exception):  # (already gone, or the node was lost)
            ray.cancel(gen, force=True)
        storage.mark_cancelled(store, state.planned.run_id, started=True)
        outcomes[state.planned.trial.index] = _outcome(state.planned, "cancelled",
                                                       error=storage.CANCELLED)
        on_event(SweepEvent("end", state.planned.trial.index, state.planned.run_id,
                            status="cancelled"))
    running.clear()
    while queue:
        p = queue.popleft()
        storage.mark_cancelled(store, p.run_id, started=False)
        outcomes[p.trial.index] = _outcome(p, "cancelled", error=storage.CANCELLED)
        on_event(SweepEvent("end", p.trial.index, p.run_id, status="cancelled"))
