"""Sweeps on a real Ray cluster: a separately started ``ray start --head`` on 127.0.0.1.

The fixture starts the head node as its own process session (with token authentication,
as ``ray start`` does by default, and Ray's default token file), connects through
``--address``/``address=`` exactly as a user would, and at the end ends every process
of that session (not ``ray stop``, which would stop every Ray on the machine).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from trpo_viz.runs.store import RunStore
from trpo_viz.sweep import engine, runner, storage
from trpo_viz.sweep.grid import build_spec, parse_grid, parse_overrides

ROOT = Path(__file__).resolve().parents[1]
RAY = Path(sys.executable).with_name("ray")
TINY = ["n_steps=128", "hidden_sizes=16", "value_epochs=1"]
TINY_SET = [arg for item in TINY for arg in ("--set", item)]
START_S = 180.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _session_pids(sid: int) -> list[int]:
    """Live (not zombie) processes of session ``sid``."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
                if state != "Z" and os.getsid(int(entry.name)) == sid:
                    pids.append(int(entry.name))
            except (OSError, IndexError):
                pass
    return pids


def _end_session(sid: int) -> None:
    """SIGTERM every process of the head node's session, then SIGKILL what is left."""
    for signum, wait in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 10.0)):
        for pid in _session_pids(sid):
            try:
                os.kill(pid, signum)
            except OSError:
                pass
        deadline = time.monotonic() + wait
        while _session_pids(sid) and time.monotonic() < deadline:
            time.sleep(0.3)
        if not _session_pids(sid):
            return


def _wait_for(predicate, what: str, timeout: float = 300.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def _signal_state(pid) -> dict:
    """SIGINT's disposition in process ``pid`` (ignored, blocked, caught), from /proc."""
    try:
        with open(f"/proc/{pid}/status") as file:
            lines = [line for line in file if line.startswith(("SigIgn", "SigBlk", "SigCgt"))]
    except OSError as error:
        return {"error": str(error)}
    bit = 1 << (signal.SIGINT - 1)
    return {line.split(":")[0]: bool(int(line.split()[1], 16) & bit) for line in lines}


def _as_from_a_terminal() -> None:
    """In the child before exec: SIGINT handled by default, as in a terminal's foreground
    job (this process may ignore it: a child inherits an ignored SIGINT)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


@pytest.fixture(scope="module")
def cluster():
    if not RAY.exists():
        pytest.skip(f"no ray command beside {sys.executable}")
    temp = Path(tempfile.mkdtemp(prefix="rayc", dir="/tmp"))  # short: Ray's socket paths
    # The token: Ray's default file (~/.ray/auth_token, created if missing), which a local
    # instance started earlier in this process has already read (Ray keeps the first).
    auth = {"RAY_AUTH_MODE": "token"}
    env = os.environ | auth | {"RAY_USAGE_STATS_ENABLED": "0"}
    subprocess.run([str(RAY), "get-auth-token", "--generate"], env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    saved = {name: os.environ.get(name) for name in auth}
    os.environ.update(auth)  # this process is the driver: it sends the same token
    port = _free_port()
    log = (temp / "head.log").open("w")
    head = subprocess.Popen(
        [str(RAY), "start", "--head", "--node-ip-address", "127.0.0.1", "--port", str(port),
         "--num-cpus", "2", "--include-dashboard", "false", "--disable-usage-stats",
         "--temp-dir", str(temp), "--block"],
        env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        start_new_session=True)
    address = f"127.0.0.1:{port}"
    try:
        engine.shutdown()  # a local instance of an earlier test module
        deadline = time.monotonic() + START_S
        while True:
            if head.poll() is not None:
                raise RuntimeError(f"ray start exited: {(temp / 'head.log').read_text()}")
            try:
                engine.connect(address)
                break
            except engine.EngineError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(1.0)
        yield {"address": address, "sid": head.pid, "env": env}
    finally:
        engine.shutdown()
        _end_session(head.pid)
        head.wait(10)
        log.close()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        shutil.rmtree(temp, ignore_errors=True)


def test_a_sweep_runs_on_the_cluster_and_its_trials_on_the_cluster_workers(cluster, tmp_path):
    spec = build_spec("CartPole-v1", 512, parse_grid(["max_kl=0.01"]), 2,
                      overrides=parse_overrides(TINY))
    sessions = {}

    def on_event(event):
        if event.kind == "started":  # the worker is alive now: whose process is it?
            sessions[event.index] = os.getsid(event.pid)

    run = runner.execute(spec, tmp_path / "runs.sqlite3", address=cluster["address"],
                         on_event=on_event)
    assert run.engine.to_dict() == {"name": "ray", "address": cluster["address"], "nodes": 1,
                                    "cpus": 2.0}
    assert [o.status for o in run.outcomes] == ["finished", "finished"]
    assert sessions == {0: cluster["sid"], 1: cluster["sid"]}  # the head node's workers
    with RunStore(tmp_path / "runs.sqlite3", readonly=True) as store:
        assert [store.record_count(o.run_id) for o in run.outcomes] == [2, 2]


def test_ctrl_c_cancels_a_cli_sweep_on_the_cluster_cleanly(cluster, tmp_path):
    db = tmp_path / "runs.sqlite3"
    env = cluster["env"] | {"PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
    driver = subprocess.Popen(
        [sys.executable, "-m", "trpo_viz.sweep.command", "--address", cluster["address"],
         "--db", str(db), "--steps", str(256 * 400), "--grid", "max_kl=0.01,0.02",
         "--seeds", "2", *TINY_SET, "--workers", "2", "--json", "--no-progress"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
        preexec_fn=_as_from_a_terminal)
    try:
        def some_trial_running() -> bool:  # its worker has started the task
            if driver.poll() is not None:
                raise AssertionError(f"the sweep ended early: {driver.communicate()}")
            if not db.exists():
                return False
            with RunStore(db, readonly=True) as store:
                return any(r.status == "running" for r in store.runs())

        _wait_for(some_trial_running, "a running trial")
        before = _signal_state(driver.pid)  # what the driver does with SIGINT: for a failure
        driver.send_signal(signal.SIGINT)
        out, err = driver.communicate(timeout=120)
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.wait()
    assert driver.returncode == 130, (before, _signal_state("self"), out, err)
    assert "cancelling the sweep" in err  # the first Ctrl-C was taken as a cancel
    report = json.loads(out)
    assert report["cancelled"] is True
    assert [t["status"] for t in report["trials"]] == ["cancelled"] * 4
    with RunStore(db, readonly=True) as store:
        infos = store.runs()
        assert len(infos) == 4 and {i.status for i in infos} == {"stopped"}
        assert {storage.trial_status(i) for i in infos} == {"cancelled"}
        started = [i for i in infos if i.error == "cancelled: the sweep was stopped"]
        assert 1 <= len(started) <= 2  # two workers: the others never started

    # The cancelled trials gave their CPUs back to the cluster.
    import ray

    engine.connect(cluster["address"])
    _wait_for(lambda: ray.available_resources().get("CPU", 0) == 2.0, "both CPUs free",
              timeout=120)
