"""The run store's SQLite schema: one version number, and the path from each version to the next.

A database is ours when its ``PRAGMA application_id`` is :data:`APPLICATION_ID`; its
``PRAGMA user_version`` is the schema version. :func:`prepare` creates a new database,
migrates an older one step by step (each step in one transaction), and refuses a
foreign file or one written by a newer trpo-viz, without writing to it.

Tables (version 1):

``runs``         one row per run: identity, config JSON, status, the command the views
                 sent (``desired``: ``run`` / ``pause`` / ``stop``; ``step_requests``), and
                 summary columns the run library lists without reading records.
``records``      every :class:`~trpo_viz.trpo.record.UpdateRecord` as JSON, by (run, update).
``slices``       the trust-region slice of each update (compressed npz), by (run, update).
``checkpoints``  the trainer state after the run's latest stored update (one per run).
``media``        the latest picture of each kind (``rollout``: an animated GIF of the
                 policy acting, with the update it shows).
"""

from __future__ import annotations

import sqlite3

APPLICATION_ID = 0x54525056  # "TRPV"
SCHEMA_VERSION = 1


class StoreError(ValueError):
    """The database cannot be used: not ours, from the future, or unreadable. Shown as is."""


_V1 = """
CREATE TABLE runs (
    id               TEXT PRIMARY KEY,
    name             TEXT NOT NULL,
    env_id           TEXT NOT NULL,
    config           TEXT NOT NULL,
    source           TEXT NOT NULL,
    status           TEXT NOT NULL,
    desired          TEXT NOT NULL DEFAULT 'pause',
    step_requests    INTEGER NOT NULL DEFAULT 0,
    error            TEXT,
    created          REAL NOT NULL,
    updated          REAL NOT NULL,
    queued_at        REAL,
    last_viewed      REAL,
    worker_pid       INTEGER,
    worker_heartbeat REAL,
    updates          INTEGER NOT NULL DEFAULT 0,
    total_timesteps  INTEGER NOT NULL DEFAULT 0,
    best_mean_return REAL,
    wall_s           REAL NOT NULL DEFAULT 0
);
CREATE TABLE records (
    run_id  TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    idx     INTEGER NOT NULL,
    record  TEXT NOT NULL,
    PRIMARY KEY (run_id, idx)
) WITHOUT ROWID;
CREATE TABLE slices (
    run_id  TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    idx     INTEGER NOT NULL,
    data    BLOB NOT NULL,
    PRIMARY KEY (run_id, idx)
) WITHOUT ROWID;
CREATE TABLE checkpoints (
    run_id  TEXT PRIMARY KEY REFERENCES runs(id) ON DELETE CASCADE,
    idx     INTEGER NOT NULL,
    data    BLOB NOT NULL
);
CREATE TABLE media (
    run_id  TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    kind    TEXT NOT NULL,
    idx     INTEGER NOT NULL,
    data    BLOB NOT NULL,
    PRIMARY KEY (run_id, kind)
) WITHOUT ROWID;
CREATE INDEX runs_by_status ON runs(status, queued_at);
"""

# MIGRATIONS[v] turns a version-v database into version v + 1 (SQL run in one transaction).
# The next schema change adds MIGRATIONS[1] and bumps SCHEMA_VERSION to 2.
MIGRATIONS: dict[int, str] = {}
CREATE = {1: _V1}


def prepare(connection: sqlite3.Connection, readonly: bool = False) -> int:
    """Check, create or migrate the schema; return the version in use.

    Raises :class:`StoreError` for a database that is not a trpo-viz store or whose
    schema version is newer than this code knows; nothing is written then.
    """
    app_id = connection.execute("PRAGMA application_id").fetchone()[0]
    version = connection.execute("PRAGMA user_version").fetchone()[0]
    tables = connection.execute(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table'"
    ).fetchone()[0]
    if app_id != APPLICATION_ID:
        if app_id != 0 or tables or version:
            raise StoreError("the database file is not a trpo-viz run store")
        if readonly:
            raise StoreError("the run store is empty")
        with connection:
            connection.executescript(
                f"BEGIN; {CREATE[SCHEMA_VERSION]} "
                f"PRAGMA application_id = {APPLICATION_ID}; "
                f"PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"
            )
        return SCHEMA_VERSION
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"the run store was written by a newer trpo-viz (schema version {version}; "
            f"this version reads up to {SCHEMA_VERSION}): upgrade trpo-viz"
        )
    if version < 1:
        raise StoreError("the run store has no schema version: not written by trpo-viz")
    while version < SCHEMA_VERSION and not readonly:
        connection.executescript(
            f"BEGIN; {MIGRATIONS[version]} PRAGMA user_version = {version + 1}; COMMIT;"
        )
        version += 1
    return version
