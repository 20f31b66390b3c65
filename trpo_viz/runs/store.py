"""The run store: every TRPO run, its updates, slices and latest checkpoint in one SQLite file.

The database lives in the data folder, ``$TRPO_VIZ_HOME`` or ``~/.trpo-viz/``
(:func:`data_home`), as ``runs.sqlite3``. It is opened in WAL mode, so any number of
readers (pages, followers, the CLI) read while one worker writes. Each stored update
(record, slice and checkpoint together) is one transaction: a crash or ``kill -9`` at
any moment leaves every committed update readable and the run resumable from the last
one.

A :class:`RunStore` is cheap; open one per thread (SQLite connections are not shared
across threads here).
"""

from __future__ import annotations

import json
import math
import os
import re
import secrets
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from trpo_viz.runs.schema import StoreError, prepare
from trpo_viz.trpo.config import TRPOConfig
from trpo_viz.trpo.record import UpdateRecord

DB_NAME = "runs.sqlite3"
RUN_ID = re.compile(r"^[a-z0-9]{10}$")
MAX_NAME = 80
STATUSES = ("queued", "starting", "running", "paused", "finished", "stopped", "failed",
            "interrupted", "imported")
ACTIVE = ("queued", "starting", "running")  # a worker holds, or waits for, a slot


def data_home() -> Path:
    """``$TRPO_VIZ_HOME`` if set, else ``~/.trpo-viz`` (created on first use)."""
    home = os.environ.get("TRPO_VIZ_HOME")
    return Path(home).expanduser() if home else Path.home() / ".trpo-viz"


def default_db_path() -> Path:
    return data_home() / DB_NAME


def new_run_id() -> str:
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
    return "".join(secrets.choice(alphabet) for _ in range(10))


def check_run_id(run_id) -> str:
    """A well-formed run id, or a :class:`StoreError` that says what a run id looks like."""
    if not isinstance(run_id, str) or not RUN_ID.match(run_id):
        shown = str(run_id)[:40]
        raise StoreError(f"{shown!r} is not a run id (run ids are 10 lowercase letters/digits)")
    return run_id


def clean_name(name: str) -> str:
    name = " ".join(str(name).split())
    if not name:
        raise StoreError("a run name cannot be empty")
    if len(name) > MAX_NAME:
        raise StoreError(f"a run name has at most {MAX_NAME} characters")
    return name


@dataclass(frozen=True)
class RunInfo:
    """One row of the run library (no records)."""

    id: str
    name: str
    env_id: str
    source: str  # "page", "cli", "import"
    status: str
    desired: str
    step_requests: int
    error: str | None
    created: float
    updated: float
    queued_at: float | None
    last_viewed: float | None
    worker_pid: int | None
    worker_heartbeat: float | None
    updates: int
    total_timesteps: int
    best_mean_return: float | None
    wall_s: float
    config_json: str

    @property
    def training(self) -> bool:
        """Training or about to: a worker holds or waits for a slot, or a Resume has been
        sent to a paused worker that has not read it yet (its status still says paused)."""
        return self.status in ACTIVE or (self.desired == "run" and self.status == "paused")

    @property
    def config(self) -> TRPOConfig:
        return TRPOConfig.from_dict(json.loads(self.config_json))

    def to_dict(self) -> dict:
        from trpo_viz.serialize import to_jsonable

        out = {name: getattr(self, name) for name in self.__dataclass_fields__}
        del out["config_json"]
        out["config"] = json.loads(self.config_json)
        return to_jsonable(out)


class RunStore:
    """One connection to the run store (create it in the thread that uses it)."""

    def __init__(self, path: str | os.PathLike | None = None, readonly: bool = False):
        self.path = Path(path) if path is not None else default_db_path()
        if not readonly:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        elif not self.path.exists():
            raise StoreError(f"no run store at {self.path}")
        if self.path.exists() and self.path.is_dir():
            raise StoreError(f"{self.path} is a folder, not a run store")
        try:
            self.db = sqlite3.connect(self.path, timeout=30, isolation_level=None,
                                      check_same_thread=False)
            self.db.execute("PRAGMA busy_timeout = 30000")
            self.db.execute("PRAGMA foreign_keys = ON")
            self.version = prepare(self.db, readonly=readonly)
            if not readonly:
                self.db.execute("PRAGMA journal_mode = WAL")
                self.db.execute("PRAGMA synchronous = NORMAL")
        except sqlite3.DatabaseError as error:
            raise StoreError(f"{self.path} is not a readable run store ({error})") from None

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> RunStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- runs ---

    def create_run(self, config: TRPOConfig, name: str | None = None, source: str = "page",
                   status: str = "paused", desired: str = "pause") -> str:
        now = time.time()
        run_id = new_run_id()
        name = clean_name(name or f"{config.env_id} seed {config.seed}")
        self.db.execute(
            "INSERT INTO runs (id, name, env_id, config, source, status, desired, created, "
            "updated, queued_at, last_viewed) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (run_id, name, config.env_id, json.dumps(config.to_dict()), source, status, desired,
             now, now, now if status == "queued" else None, now),
        )
        return run_id

    def run(self, run_id: str) -> RunInfo:
        """The run's row; :class:`StoreError` for a malformed or unknown id."""
        row = self.db.execute(f"SELECT {_COLUMNS} FROM runs WHERE id = ?",
                              (check_run_id(run_id),)).fetchone()
        if row is None:
            raise StoreError(f"there is no run {run_id!r} in the run store")
        return _info(row)

    def runs(self) -> list[RunInfo]:
        rows = self.db.execute(f"SELECT {_COLUMNS} FROM runs ORDER BY created DESC").fetchall()
        return [_info(row) for row in rows]

    def rename(self, run_id: str, name: str) -> None:
        self._update(run_id, name=clean_name(name))

    def delete(self, run_id: str) -> None:
        self.run(run_id)
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            for table in ("records", "slices", "checkpoints", "media"):
                self.db.execute(f"DELETE FROM {table} WHERE run_id = ?", (run_id,))  # noqa: S608
            self.db.execute("DELETE FROM runs WHERE id = ?", (run_id,))

    def set_status(self, run_id: str, status: str, error: str | None = None, **extra) -> None:
        if status not in STATUSES:
            raise ValueError(f"unknown status {status!r}")
        self._update(run_id, status=status, error=error, **extra)

    def command(self, run_id: str, desired: str | None = None, step: bool = False) -> None:
        """Record what the views want (``run``, ``pause``, ``stop``, or one more step)."""
        if desired is not None and desired not in ("run", "pause", "stop"):
            raise ValueError(f"unknown command {desired!r}")
        sets, values = ["updated = ?"], [time.time()]
        if desired is not None:
            sets.append("desired = ?")
            values.append(desired)
        if step:
            sets.append("step_requests = step_requests + 1")
        self.db.execute(f"UPDATE runs SET {', '.join(sets)} WHERE id = ?",  # noqa: S608
                        (*values, check_run_id(run_id)))

    def touch(self, run_id: str) -> None:
        """A view is looking at the run now (the idle pause counts from the last touch)."""
        self.db.execute("UPDATE runs SET last_viewed = ? WHERE id = ?",
                        (time.time(), check_run_id(run_id)))

    def claim(self, run_id: str, pid: int) -> bool:
        """Take a queued run for a new worker: True for exactly one caller, whichever process.

        One conditional UPDATE (SQLite runs writes one at a time): "queued" becomes
        "starting" with ``pid`` and a fresh heartbeat, so every other registry on this
        file sees a live worker from that moment on, and a second claim finds nothing
        queued. Two servers on one data folder thus never start two workers for one run.
        """
        now = time.time()
        cursor = self.db.execute(
            "UPDATE runs SET status = 'starting', error = NULL, worker_pid = ?, "
            "worker_heartbeat = ?, updated = ? WHERE id = ? AND status = 'queued'",
            (pid, now, now, check_run_id(run_id)),
        )
        return cursor.rowcount == 1

    def heartbeat(self, run_id: str, pid: int | None) -> None:
        self.db.execute("UPDATE runs SET worker_pid = ?, worker_heartbeat = ? WHERE id = ?",
                        (pid, time.time(), run_id))

    def _update(self, run_id: str, **values) -> None:
        self.run(run_id)
        values["updated"] = time.time()
        sets = ", ".join(f"{key} = ?" for key in values)
        self.db.execute(f"UPDATE runs SET {sets} WHERE id = ?",  # noqa: S608 - keys are ours
                        (*values.values(), run_id))

    # --- updates ---

    def append_update(self, run_id: str, record: UpdateRecord, slice_npz: bytes | None,
                      checkpoint: bytes | None, consumed_step: bool = False) -> None:
        """Store one update: record, slice, checkpoint and summary in one transaction."""
        mean = record.mean_return
        record_json = json.dumps(record.to_dict(), allow_nan=False)
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            self.db.execute("INSERT INTO records (run_id, idx, record) VALUES (?, ?, ?)",
                            (run_id, record.update, record_json))
            if slice_npz is not None:
                self.db.execute("INSERT INTO slices (run_id, idx, data) VALUES (?, ?, ?)",
                                (run_id, record.update, slice_npz))
            if checkpoint is not None:
                self.db.execute(
                    "INSERT INTO checkpoints (run_id, idx, data) VALUES (?, ?, ?) "
                    "ON CONFLICT(run_id) DO UPDATE SET idx = excluded.idx, data = excluded.data",
                    (run_id, record.update, checkpoint),
                )
            best = None if mean is None or not math.isfinite(mean) else mean
            self.db.execute(
                "UPDATE runs SET updates = ?, total_timesteps = ?, updated = ?, "
                "wall_s = wall_s + ?, "
                "best_mean_return = CASE WHEN ? IS NULL THEN best_mean_return "
                "  WHEN best_mean_return IS NULL OR ? > best_mean_return THEN ? "
                "  ELSE best_mean_return END, "
                "step_requests = max(0, step_requests - ?) WHERE id = ?",
                (record.update + 1, record.total_timesteps, time.time(), record.wall_s,
                 best, best, best, int(consumed_step), run_id),
            )

    def record_count(self, run_id: str) -> int:
        return self.db.execute("SELECT count(*) FROM records WHERE run_id = ?",
                               (check_run_id(run_id),)).fetchone()[0]

    def records(self, run_id: str, start: int = 0) -> list[UpdateRecord]:
        """The run's records from update ``start`` on, in order (validated on the way in)."""
        from trpo_viz.runs.validate import record_from_json

        rows = self.db.execute(
            "SELECT idx, record FROM records WHERE run_id = ? AND idx >= ? ORDER BY idx",
            (check_run_id(run_id), start),
        ).fetchall()
        return [record_from_json(text, idx) for idx, text in rows]

    def slice(self, run_id: str, update: int) -> bytes | None:
        row = self.db.execute("SELECT data FROM slices WHERE run_id = ? AND idx = ?",
                              (check_run_id(run_id), update)).fetchone()
        return None if row is None else row[0]

    def slices(self, run_id: str) -> dict[int, bytes]:
        rows = self.db.execute("SELECT idx, data FROM slices WHERE run_id = ? ORDER BY idx",
                               (check_run_id(run_id),)).fetchall()
        return dict(rows)

    def checkpoint(self, run_id: str) -> tuple[int, bytes] | None:
        row = self.db.execute("SELECT idx, data FROM checkpoints WHERE run_id = ?",
                              (check_run_id(run_id),)).fetchone()
        return None if row is None else (row[0], row[1])

    def put_media(self, run_id: str, kind: str, update: int, data: bytes) -> None:
        self.db.execute(
            "INSERT INTO media (run_id, kind, idx, data) VALUES (?, ?, ?, ?) ON CONFLICT"
            "(run_id, kind) DO UPDATE SET idx = excluded.idx, data = excluded.data",
            (run_id, kind, update, data),
        )

    def media(self, run_id: str, kind: str) -> tuple[int, bytes] | None:
        row = self.db.execute("SELECT idx, data FROM media WHERE run_id = ? AND kind = ?",
                              (check_run_id(run_id), kind)).fetchone()
        return None if row is None else (row[0], row[1])

    def truncate(self, run_id: str, updates: int) -> None:
        """Drop records and slices from update ``updates`` on (back to the checkpoint)."""
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            for table in ("records", "slices"):
                self.db.execute(f"DELETE FROM {table} WHERE run_id = ? AND idx >= ?",  # noqa: S608
                                (run_id, updates))
            self.db.execute("UPDATE runs SET updates = ? WHERE id = ?", (updates, run_id))

    def queue_position(self, run_id: str) -> int | None:
        """1 for the first queued run, …; None when the run is not queued."""
        info = self.run(run_id)
        if info.status != "queued":
            return None
        ahead = self.db.execute(
            "SELECT count(*) FROM runs WHERE status = 'queued' AND queued_at < ?",
            (info.queued_at,),
        ).fetchone()[0]
        return ahead + 1


_FIELDS = ("id", "name", "env_id", "source", "status", "desired", "step_requests", "error",
           "created", "updated", "queued_at", "last_viewed", "worker_pid", "worker_heartbeat",
           "updates", "total_timesteps", "best_mean_return", "wall_s", "config")
_COLUMNS = ", ".join(_FIELDS)


def _info(row) -> RunInfo:
    values = dict(zip(_FIELDS, row, strict=True))
    values["config_json"] = values.pop("config")
    return RunInfo(**values)
