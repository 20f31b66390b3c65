"""A sweep's trials as runs in the run store, grouped by sweep id.

Every trial is one stored run, created before the sweep starts (so each has a run id,
and a restarted sweep finds its trials again). Schema version 1 has no sweep columns,
so the grouping lives in the run's ``source``, which users cannot edit (the name can
be renamed): ``sweep:<sweep id>:<grid keys, comma-separated>``. The trial's setting is
read back from its stored config (``batch_size`` as n_envs × n_steps).

Trial status on the store's vocabulary:

=============  ==================================================================
``pending``    ``paused`` with the error :data:`WAITING` (no worker holds it)
``running``    ``starting`` / ``running``, heartbeat kept fresh by the sweep driver
``finished``   ``finished``
``failed``     ``failed`` with the trial's error
``cancelled``  ``stopped`` with an error starting ``cancelled``
=============  ==================================================================

A trial found ``running`` whose driver is gone (no fresh heartbeat) reads as
``interrupted``; a restarted sweep runs it again from the start.
"""

from __future__ import annotations

import re
import secrets
import time
from dataclasses import dataclass

from trpo_viz.sweep.grid import GridError, SweepSpec, Trial, setting_label, trial_key

SOURCE_PREFIX = "sweep:"
SWEEP_ID = re.compile(r"^[a-z0-9]{8}$")
WAITING = "waiting for a Ray worker"
CANCELLED = "cancelled"
STALE_S = 15.0  # a running trial without a heartbeat this recent has lost its driver
TRIAL_STATUSES = ("pending", "running", "finished", "failed", "cancelled", "interrupted")


def new_sweep_id() -> str:
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
    return "".join(secrets.choice(alphabet) for _ in range(8))


def check_sweep_id(sweep_id) -> str:
    if not isinstance(sweep_id, str) or not SWEEP_ID.match(sweep_id):
        shown = str(sweep_id)[:40]
        raise GridError(f"{shown!r} is not a sweep id (sweep ids are 8 lowercase letters/digits)")
    return sweep_id


def source_for(sweep_id: str, keys) -> str:
    return f"{SOURCE_PREFIX}{sweep_id}:{','.join(keys)}"


def parse_source(source: str) -> tuple[str, tuple[str, ...]] | None:
    """(sweep id, grid keys) of a sweep trial's ``source``; None for other runs."""
    if not isinstance(source, str) or not source.startswith(SOURCE_PREFIX):
        return None
    sweep_id, _, keys = source[len(SOURCE_PREFIX):].partition(":")
    if not SWEEP_ID.match(sweep_id):
        return None
    return sweep_id, tuple(k for k in keys.split(",") if k)


def setting_of(config, keys) -> dict:
    """The grid values of a stored trial's config."""
    out = {}
    for key in keys:
        out[key] = config.n_envs * config.n_steps if key == "batch_size" else getattr(
            config, key, None)
    return out


def trial_status(info, now: float | None = None) -> str:
    """The trial's status (see the module docstring) from its stored run row."""
    now = time.time() if now is None else now
    status = info.status
    if status == "finished":
        return "finished"
    if status == "failed":
        return "failed"
    if status == "stopped":
        return "cancelled"
    if status in ("starting", "running"):
        fresh = info.worker_heartbeat is not None and now - info.worker_heartbeat < STALE_S
        return "running" if fresh else "interrupted"
    if status == "paused" and info.error == WAITING:
        return "pending"
    return "interrupted"


def sweep_runs(store, sweep_id: str | None = None) -> dict[str, list]:
    """Stored runs of each sweep (or of one): sweep id -> RunInfo list, oldest first."""
    groups: dict[str, list] = {}
    for info in store.runs():
        parsed = parse_source(info.source)
        if parsed is None or (sweep_id is not None and parsed[0] != sweep_id):
            continue
        groups.setdefault(parsed[0], []).append(info)
    for runs in groups.values():
        runs.sort(key=lambda r: (r.created, r.id))
    return groups


@dataclass
class PlannedTrial:
    trial: Trial
    run_id: str
    completed: bool  # finished in an earlier run of the sweep: skipped


def check_plan(store, sweep_id: str, spec: SweepSpec) -> list[tuple[Trial, object]]:
    """Each trial with its earlier stored run (or None); refuses without writing anything.

    A sweep id whose trials ran with other grid keys, or with other settings for the
    same (setting, seed), is refused: restarting a sweep continues it, it does not
    change it; so is a sweep whose trials are training now.
    """
    check_sweep_id(sweep_id)
    existing = sweep_runs(store, sweep_id).get(sweep_id, [])
    by_key = {}
    for info in existing:
        _, keys = parse_source(info.source)
        if keys != spec.keys:
            raise GridError(f"sweep {sweep_id} varies {', '.join(keys) or 'nothing'}; this "
                            f"grid varies {', '.join(spec.keys) or 'nothing'}")
        if trial_status(info) == "running":
            raise GridError(f"sweep {sweep_id} is running (trial {info.id} is training)")
        config = info.config
        by_key[trial_key(setting_of(config, keys), config.seed)] = info
    plan = []
    for trial in spec.trials():
        info = by_key.get(trial.key)
        if info is not None:
            stored, wanted = info.config.to_dict(), trial.config.to_dict()
            if stored != wanted:
                diff = ", ".join(f"{k} {stored.get(k)} (now {wanted.get(k)})" for k in wanted
                                 if stored.get(k) != wanted.get(k))
                raise GridError(f"sweep {sweep_id} ran {trial.label}, seed {trial.seed} with "
                                f"other settings: {diff}")
        plan.append((trial, info))
    return plan


def prepare_trials(store, sweep_id: str, spec: SweepSpec) -> list[PlannedTrial]:
    """A stored run for every trial: new ones created, earlier ones of this sweep reused.

    A trial that finished before is kept and skipped; any other earlier trial (failed,
    cancelled, interrupted) is emptied and runs again from its start. Everything is
    checked (:func:`check_plan`) before the first write.
    """
    planned = []
    source = source_for(sweep_id, spec.keys)
    for trial, info in check_plan(store, sweep_id, spec):
        if info is None:
            run_id = store.create_run(trial.config, name=trial_name(sweep_id, trial),
                                      source=source, status="paused", desired="pause")
            store.set_status(run_id, "paused", error=WAITING)
            planned.append(PlannedTrial(trial, run_id, False))
        elif info.status == "finished":
            planned.append(PlannedTrial(trial, info.id, True))
        else:
            store.truncate(info.id, 0)
            store.command(info.id, "pause")
            store.set_status(info.id, "paused", error=WAITING, worker_pid=None, wall_s=0.0,
                             total_timesteps=0, best_mean_return=None)
            planned.append(PlannedTrial(trial, info.id, False))
    return planned


def trial_name(sweep_id: str, trial: Trial) -> str:
    label = trial.label
    head, tail = f"sweep {sweep_id} · ", f" · seed {trial.seed}"
    room = 80 - len(head) - len(tail)
    if len(label) > room:
        label = label[:room - 1] + "…"
    return f"{head}{label}{tail}"


def mark_cancelled(store, run_id: str, started: bool) -> None:
    """Store the trial as cancelled (nothing to do if its run was deleted meanwhile)."""
    from trpo_viz.runs.schema import StoreError

    reason = "the sweep was stopped" if started else "the sweep was stopped before it started"
    try:
        store.set_status(run_id, "stopped", error=f"{CANCELLED}: {reason}", worker_pid=None)
    except StoreError:
        pass


def setting_label_of(info) -> str:
    parsed = parse_source(info.source)
    return setting_label(setting_of(info.config, parsed[1] if parsed else ()))
