"""One sweep from plan to stored results: check, connect, create the trials, drive them.

The order matters for refusals: the plan is checked against the store (a restarted
sweep must match what it ran before) before Ray is started, and trial rows are written
only once Ray is up, so a refused or unreachable sweep leaves nothing behind.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from trpo_viz.sweep import engine, storage
from trpo_viz.sweep.grid import SweepSpec


@dataclass
class SweepRun:
    sweep_id: str
    engine: engine.EngineInfo
    outcomes: list[engine.TrialOutcome]
    cancelled: bool  # stopped (Stop, Ctrl-C) before every trial ended


def default_parallel(address: str | None, workers: int | None, info: engine.EngineInfo) -> int:
    """Trials at once: ``workers`` if given, else every CPU Ray has (local or cluster)."""
    if workers:
        return workers
    return max(1, int(info.cpus))


def check(spec: SweepSpec, db_path, sweep_id: str) -> None:
    """Refuse (GridError) a sweep id that cannot continue with ``spec``; writes nothing."""
    from trpo_viz.runs.store import RunStore

    if not Path(db_path).exists():
        return
    with RunStore(db_path) as store:
        storage.check_plan(store, sweep_id, spec)


def execute(spec: SweepSpec, db_path, *, sweep_id: str | None = None,
            address: str | None = None, workers: int | None = None,
            cancel: threading.Event | None = None, on_event: Callable | None = None,
            parallel: int | None = None,
            on_ready: Callable[[str, engine.EngineInfo, list], None] | None = None) -> SweepRun:
    """Run ``spec`` (or continue sweep ``sweep_id``) and store every trial.

    ``workers``: the local Ray instance's CPUs (default: the CPU count; ignored with an
    address). ``parallel``: trials at once (default: ``workers``, else all CPUs Ray has).

    ``on_ready(sweep_id, engine_info, planned)`` is called once the trials are stored
    and about to start. Raises GridError / ValueError / EngineError before anything is
    stored for a plan or an address that cannot run.
    """
    from trpo_viz.runs.store import RunStore

    address = engine.check_address(address)
    for name, value in (("workers", workers), ("parallel", parallel)):
        if value is not None and value < 1:
            raise ValueError(f"{name} must be at least 1, got {value}")
    sweep_id = storage.check_sweep_id(sweep_id) if sweep_id else storage.new_sweep_id()
    check(spec, db_path, sweep_id)
    info = engine.connect(address, workers)
    cancel = cancel or threading.Event()
    with RunStore(db_path) as store:
        planned = storage.prepare_trials(store, sweep_id, spec)
        if on_ready is not None:
            on_ready(sweep_id, info, planned)
        outcomes = engine.drive(store, planned,
                                parallel or default_parallel(address, workers, info),
                                cancel, on_event)
    return SweepRun(sweep_id, info, outcomes, cancel.is_set())
