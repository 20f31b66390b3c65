"""The run store on a real SQLite file: schema, transactions, commands, crash safety, CLI."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from trpo_viz.cli import main as cli_main
from trpo_viz.runs import schema
from trpo_viz.runs.archive import export_run, import_run
from trpo_viz.runs.store import RunStore, StoreError
from trpo_viz.runs.worker import LoopSettings, train_loop
from trpo_viz.trpo.config import default_config

ROOT = Path(__file__).resolve().parents[1]
TINY = dict(n_steps=128, n_envs=2, hidden_sizes=(16,), value_epochs=1)


def tiny_config(updates: int = 3, **overrides):
    values = TINY | overrides
    return default_config("CartPole-v1", total_timesteps=updates * 256, **values)


@pytest.fixture
def store(tmp_path):
    with RunStore(tmp_path / "runs.sqlite3") as store:
        yield store


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A finished 3-update run in its own store (shared by the read-only tests)."""
    path = tmp_path_factory.mktemp("store") / "runs.sqlite3"
    with RunStore(path) as store:
        run_id = store.create_run(tiny_config(), name="three updates", desired="run")
        status = train_loop(store, run_id, LoopSettings(paused_grace=0))
        assert status == "finished"
    return path, run_id


def test_a_new_store_is_ours_and_versioned(store):
    app_id = store.db.execute("PRAGMA application_id").fetchone()[0]
    version = store.db.execute("PRAGMA user_version").fetchone()[0]
    assert (app_id, version) == (schema.APPLICATION_ID, schema.SCHEMA_VERSION)
    assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_trained_run_has_every_update_slice_and_a_checkpoint(trained):
    path, run_id = trained
    with RunStore(path, readonly=True) as store:
        info = store.run(run_id)
        records = store.records(run_id)
        assert info.status == "finished" and info.updates == 3 == len(records)
        assert [r.update for r in records] == [0, 1, 2]
        assert info.total_timesteps == records[-1].total_timesteps == 768
        means = [r.mean_return for r in records if r.mean_return is not None]
        assert info.best_mean_return == pytest.approx(max(means))
        assert sorted(store.slices(run_id)) == [0, 1, 2]
        assert store.checkpoint(run_id)[0] == 2
        assert store.records(run_id, start=2)[0].update == 2


def test_export_import_round_trip(trained, store):
    path, run_id = trained
    with RunStore(path, readonly=True) as source:
        data = export_run(source, run_id)
        original = source.records(run_id)
    with zipfile.ZipFile(__import__("io").BytesIO(data)) as archive:
        assert {"config.json", "records.json", "state.json", "arrays.npz", "slices.npz"} <= set(
            archive.namelist()
        )
    new_id = import_run(store, data)
    assert new_id != run_id
    copied = store.records(new_id)
    assert [r.to_dict() for r in copied] == [r.to_dict() for r in original]
    assert sorted(store.slices(new_id)) == [0, 1, 2]
    assert store.checkpoint(new_id)[0] == 2  # resumable: the state came along


def test_pause_and_single_steps_are_commands_the_loop_obeys(store):
    run_id = store.create_run(tiny_config(updates=10), desired="pause")
    store.command(run_id, step=True)
    store.command(run_id, step=True)
    # Paused with two step requests: exactly two updates, then it idles out of its grace.
    assert train_loop(store, run_id, LoopSettings(paused_grace=0.3)) == "paused"
    assert store.run(run_id).updates == 2
    assert store.run(run_id).step_requests == 0
    store.command(run_id, "stop")
    assert train_loop(store, run_id, LoopSettings(paused_grace=0.3)) == "stopped"
    assert store.run(run_id).updates == 2


def test_a_run_resumes_from_its_checkpoint_with_identical_parameters(tmp_path):
    """Two updates, stop, resume for one more: same records as the stored state implies."""
    with RunStore(tmp_path / "a.sqlite3") as store:
        run_id = store.create_run(tiny_config(updates=3), desired="pause")
        for _ in range(2):
            store.command(run_id, step=True)
        train_loop(store, run_id, LoopSettings(paused_grace=0))
        first_two = [r.to_dict() for r in store.records(run_id)]
        store.command(run_id, "run")
        assert train_loop(store, run_id, LoopSettings(paused_grace=0)) == "finished"
        records = store.records(run_id)
    assert [r.to_dict() for r in records[:2]] == first_two
    assert [r.update for r in records] == [0, 1, 2]


def test_nobody_watching_pauses_a_run(store):
    run_id = store.create_run(tiny_config(updates=50), desired="run")
    store.db.execute("UPDATE runs SET last_viewed = ? WHERE id = ?", (time.time() - 100, run_id))
    status = train_loop(store, run_id, LoopSettings(idle_timeout=10, paused_grace=0))
    info = store.run(run_id)
    assert status == "paused" and info.desired == "pause"
    assert "nobody was watching" in info.error
    assert info.updates == 0


def test_bad_ids_are_refused_with_a_clear_message(store):
    for bad in ("", "x" * 200, "../../etc", "ABCDEFGHIJ", None, 7):
        with pytest.raises(StoreError, match="not a run id"):
            store.run(bad)
    with pytest.raises(StoreError, match="no run 'abcdefghij'"):
        store.run("abcdefghij")


def test_a_foreign_database_is_refused_and_left_alone(tmp_path):
    path = tmp_path / "other.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE notes (text TEXT)")
        db.execute("INSERT INTO notes VALUES ('mine')")
    before = path.read_bytes()
    with pytest.raises(StoreError, match="not a trpo-viz run store"):
        RunStore(path)
    assert path.read_bytes() == before


def test_a_database_from_a_future_schema_is_refused(tmp_path):
    path = tmp_path / "future.sqlite3"
    RunStore(path).close()
    with sqlite3.connect(path) as db:
        db.execute(f"PRAGMA user_version = {schema.SCHEMA_VERSION + 1}")
    before = path.read_bytes()
    with pytest.raises(StoreError, match="newer trpo-viz"):
        RunStore(path)
    assert path.read_bytes() == before


def test_a_file_that_is_not_sqlite_is_refused(tmp_path):
    path = tmp_path / "junk.sqlite3"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError, match="not a readable run store"):
        RunStore(path)
    assert path.read_bytes() == b"this is not a database" * 100


def test_damaged_stored_records_are_reported_not_crashed_on(store):
    run_id = store.create_run(tiny_config())
    store.db.execute("INSERT INTO records (run_id, idx, record) VALUES (?, 0, ?)",
                     (run_id, json.dumps({"update": 0, "total_timesteps": "many"})))
    with pytest.raises(StoreError, match="damaged: stored update 1: field 'total_timesteps'"):
        store.records(run_id)


def _wait_for(predicate, what: str, timeout: float = 300.0):
    """Wait for a state (generous: the box may be loaded); fail with what was awaited."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_kill_9_mid_run_leaves_a_readable_store_and_a_resumable_run(tmp_path):
    path = tmp_path / "runs.sqlite3"
    with RunStore(path) as store:
        run_id = store.create_run(tiny_config(updates=1000), desired="run")
    env = os.environ | {"PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
    worker = subprocess.Popen(
        [sys.executable, "-m", "trpo_viz.runs.worker", "--db", str(path), "--run", run_id],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        with RunStore(path, readonly=True) as reader:
            _wait_for(lambda: reader.run(run_id).updates >= 3, "three stored updates")
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.wait()
    with RunStore(path) as store:
        assert store.db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        info = store.run(run_id)
        records = store.records(run_id)
        assert info.updates == len(records) >= 3
        assert [r.update for r in records] == list(range(len(records)))
        checkpoint_update = store.checkpoint(run_id)[0]
        assert checkpoint_update == len(records) - 1  # committed with its record
        # Resume for two more updates from the checkpoint.
        store.db.execute("UPDATE runs SET total_timesteps = ? WHERE id = ?", (0, run_id))
        store.command(run_id, "pause")
        store.command(run_id, step=True)
        store.command(run_id, step=True)
        assert train_loop(store, run_id, LoopSettings(paused_grace=0)) == "paused"
        resumed = store.records(run_id)
    assert len(resumed) == len(records) + 2
    assert resumed[-1].total_timesteps == records[-1].total_timesteps + 2 * 256


def test_runs_cli_list_show_export_import_delete(trained, tmp_path, capsys):
    path, run_id = trained
    db = ["runs", "--db", str(path)]
    assert cli_main([*db, "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert {"id", "name", "env_id", "status", "updates", "total_timesteps", "created"} <= set(
        listed[0]
    )
    assert listed[0]["id"] == run_id and listed[0]["updates"] == 3
    assert cli_main([*db, "show", run_id, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["config"]["env_id"] == "CartPole-v1"
    out = tmp_path / "run.zip"
    assert cli_main([*db, "export", run_id, str(out)]) == 0
    other = ["runs", "--db", str(tmp_path / "other.sqlite3")]
    assert cli_main([*other, "import", str(out)]) == 0
    new_id = capsys.readouterr().out.strip()
    assert cli_main([*other, "delete", new_id]) == 0
    assert cli_main([*other, "list", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []


@pytest.mark.parametrize(
    "args, message",
    [
        (["show", "nope"], "not a run id"),
        (["show", "abcdefghij"], "no run"),
        (["delete", "zzzzzzzzzz"], "no run"),
        (["export", "../etc/pwd", "x.zip"], "not a run id"),
    ],
)
def test_runs_cli_refuses_bad_ids_with_one_line(trained, args, message, capsys):
    path, _ = trained
    assert cli_main(["runs", "--db", str(path), *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and message in err[0]


def test_runs_cli_refuses_a_foreign_database_and_a_bad_zip(tmp_path, capsys):
    foreign = tmp_path / "foreign.sqlite3"
    with sqlite3.connect(foreign) as db:
        db.execute("CREATE TABLE t (x)")
    assert cli_main(["runs", "--db", str(foreign), "list"]) == 2
    assert "not a trpo-viz run store" in capsys.readouterr().err
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"PK\x03\x04 not really")
    assert cli_main(["runs", "--db", str(tmp_path / "s.sqlite3"), "import", str(junk)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:")


@pytest.mark.parametrize("status, desired, training", [
    ("queued", "run", True), ("starting", "run", True), ("running", "run", True),
    ("running", "pause", True),   # until the worker reads the pause
    ("paused", "run", True),      # Resume sent, the paused worker has not read it yet
    ("paused", "pause", False), ("interrupted", "run", False), ("finished", "run", False),
    ("stopped", "stop", False), ("failed", "run", False),
])
def test_a_run_is_training_while_a_worker_has_it_or_a_resume_is_on_its_way(
        store, status, desired, training):
    """What a view ticks on and enables Pause for (pages/trpo.py)."""
    run_id = store.create_run(tiny_config(), status=status, desired=desired)
    assert store.run(run_id).training is training
