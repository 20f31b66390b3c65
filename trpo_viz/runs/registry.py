"""The run registry: starts, pauses, steps, resumes and stops stored runs; owns their workers.

Views (pages, the CLI) never train. They call :class:`Registry` methods, which write a
command into the run store and make sure a worker process exists for every run that
wants to train, at most ``max_workers`` at a time; runs beyond that wait in a queue
(first come, first served) with a visible position. A slot belongs to a live worker
process, never to a browser session: a worker pauses itself when nobody watches and
exits when paused, so abandoned sessions hold nothing.

One registry per server process (:func:`shared_registry`). A background thread reaps
finished workers, marks runs whose worker died as ``interrupted`` and starts queued runs.
Workers started by a previous server process are adopted while their heartbeat is fresh.
Several servers may share one data folder: a queued run is claimed in the store (one
conditional UPDATE) before its worker starts, so only one of them starts it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from trpo_viz.runs.store import RunInfo, RunStore, StoreError, data_home, default_db_path
from trpo_viz.trpo.config import TRPOConfig

MAX_WORKERS = 4  # runs training at once per server
STALE_S = 15.0  # a worker whose heartbeat is older than this is gone
SCHEDULE_S = 0.5
IDLE_PAUSE = "paused: nobody was watching"
WORKER_THREADS_ENV = "TRPO_VIZ_WORKER_THREADS"


class Registry:
    """Commands for stored runs, and the worker processes that carry them out."""

    def __init__(self, db_path=None, max_workers: int = MAX_WORKERS,
                 idle_timeout: float = 600.0, paused_grace: float = 60.0,
                 threads: int | None = None):
        self.db_path = Path(db_path) if db_path is not None else default_db_path()
        self.max_workers = max_workers
        self.idle_timeout = idle_timeout
        self.paused_grace = paused_grace
        self.threads = threads
        self._workers: dict[str, subprocess.Popen] = {}
        self._lock = threading.RLock()
        self._local = threading.local()
        self.store.close()  # create or check the database now: bad files fail here
        self._local.store = None
        self._wake = threading.Event()
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="run-registry")
        self._thread.start()

    @property
    def store(self) -> RunStore:
        """This thread's connection to the run store."""
        store = getattr(self._local, "store", None)
        if store is None:
            store = self._local.store = RunStore(self.db_path)
        return store

    # --- commands from the views ---

    def create(self, config: TRPOConfig, name: str | None = None, start: bool = True) -> str:
        """A new stored run; queued to train when ``start``, else paused at update 0."""
        from trpo_viz.trpo.limits import check_limits

        check_limits(config)
        run_id = self.store.create_run(config, name=name, source="page",
                                       status="queued" if start else "paused",
                                       desired="run" if start else "pause")
        self._wake.set()
        return run_id

    def resume(self, run_id: str) -> None:
        self._require_trainable(run_id)
        self.store.command(run_id, "run")
        self._ensure_worker(run_id)

    def pause(self, run_id: str) -> None:
        self.store.command(run_id, "pause")

    def step(self, run_id: str) -> None:
        """One more update (of a paused run)."""
        self._require_trainable(run_id)
        self.store.command(run_id, step=True)
        self._ensure_worker(run_id)

    def release(self, run_id: str) -> None:
        """A paused run that nobody views any more: its worker exits now, not after its grace.

        A paused worker keeps its trainer (hundreds of MiB) for ``paused_grace`` seconds so
        that Resume is instant; a view that leaves the run (New run) gives that memory back
        at once. Only this registry's own worker processes are signalled; the run stays
        paused and Resume starts a new worker from the last checkpoint.
        """
        if self.store.run(run_id).desired != "pause":
            return
        with self._lock:
            process = self._workers.get(run_id)
        if process is not None and process.poll() is None:
            process.terminate()  # the worker ends its current update, stays "paused"

    def stop(self, run_id: str) -> None:
        self.store.command(run_id, "stop")
        with self._lock:  # not between a pass's spawn and its worker's first look
            info = self.store.run(run_id)
            if info.status in ("queued", "paused", "interrupted") and not self._alive(info):
                self.store.set_status(run_id, "stopped")

    def delete(self, run_id: str) -> None:
        """Stop the run's worker (it ends its current update) and delete the run.

        The last look and the delete are one step under the scheduler's lock, so no pass
        starts a worker for a run that is being deleted. A worker that is still alive
        after two waits (another server's, which only its heartbeat shows) is refused
        with a message, not deleted under.
        """
        self.store.command(run_id, "stop")
        for _ in range(2):
            with self._lock:
                if not self._alive(self.store.run(run_id)):
                    self.store.delete(run_id)
                    return
            self._wait_gone(run_id)
        raise StoreError("the run's trainer has not stopped yet; try again in a minute")

    def view(self, run_id: str) -> RunInfo:
        """A view shows the run now: keep it from idling, resume it if it idled out."""
        self.store.touch(run_id)
        info = self.store.run(run_id)
        if info.desired == "pause" and info.error == IDLE_PAUSE and info.status == "paused":
            self.resume(run_id)
            info = self.store.run(run_id)
        return info

    def queue_position(self, run_id: str) -> int | None:
        return self.store.queue_position(run_id)

    def close(self) -> None:
        """Stop scheduling (workers keep running and are adopted by the next registry)."""
        self._closed.set()
        self._wake.set()
        self._thread.join(timeout=5)

    def shutdown(self, timeout: float = 30.0) -> None:
        """Close and ask every worker of this registry to stop after its current update."""
        self.close()
        with self._lock:
            workers = dict(self._workers)
        for process in workers.values():
            if process.poll() is None:
                process.terminate()
        for process in workers.values():
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()

    # --- scheduling ---

    def _require_trainable(self, run_id: str) -> None:
        info = self.store.run(run_id)
        if info.updates > 0 and self.store.checkpoint(run_id) is None:
            raise StoreError("this run has no saved trainer state to continue from (it was "
                             "imported from a file without one): it can only be replayed")
        if info.status == "finished":
            raise StoreError(f"the run is finished ({info.total_timesteps:,} timesteps reached)")
        if info.status == "failed":
            raise StoreError(f"the run failed: {info.error}")

    def _alive(self, info: RunInfo) -> bool:
        with self._lock:
            process = self._workers.get(info.id)
            if process is not None and process.poll() is None:
                return True
        return (info.worker_pid is not None and info.worker_heartbeat is not None
                and time.time() - info.worker_heartbeat < STALE_S)

    def _ensure_worker(self, run_id: str) -> None:
        """Queue the run unless a worker has it or it is queued already.

        Under the lock the scheduler spawns under, so the look and the "queued" are one
        step: a pass that spawned the run in between would see the late "queued" and
        spawn a second worker for it.
        """
        with self._lock:
            info = self.store.run(run_id)
            if self._alive(info) or info.status == "queued":
                return
            self.store.set_status(run_id, "queued", error=None, queued_at=time.time())
        self._wake.set()

    def _wait_gone(self, run_id: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                process = self._workers.get(run_id)
            if process is not None:
                try:
                    process.wait(max(0.0, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    process.kill()
                return
            if not self._alive(self.store.run(run_id)):
                return
            time.sleep(0.2)

    def _loop(self) -> None:
        while not self._closed.is_set():
            try:
                self.schedule()
            except Exception:  # noqa: BLE001 - the scheduler must outlive one bad pass
                import traceback

                traceback.print_exc()
            self._wake.wait(SCHEDULE_S)
            self._wake.clear()

    def schedule(self) -> None:
        """One pass: reap workers, mark dead ones, start queued runs while slots are free."""
        store = self.store
        with self._lock:
            for run_id, process in list(self._workers.items()):
                if process.poll() is not None:
                    del self._workers[run_id]
            runs = store.runs()
            live = 0
            for info in runs:
                if info.source.startswith("sweep:"):
                    continue  # driven by a sweep's own driver (trpo_viz.sweep), not by us
                if self._alive(info):
                    live += 1
                elif info.status in ("starting", "running") or (
                    info.status == "paused" and info.worker_pid is not None
                ):
                    store.set_status(info.id, "interrupted",
                                     error="the trainer stopped unexpectedly; Resume continues "
                                           f"from update {info.updates}", worker_pid=None)
                elif info.status == "paused" and (info.desired == "run"
                                                  or info.step_requests > 0):
                    # Resume or Step arrived while the paused worker was exiting (its grace
                    # was over, or it was released): it saw no command, so start another.
                    store.set_status(info.id, "queued", error=None, queued_at=time.time())
            runs = store.runs()
            queued = sorted((r for r in runs if r.status == "queued"),
                            key=lambda r: r.queued_at or r.created)
            for info in queued:
                if live >= self.max_workers:
                    break
                if self._alive(info):  # counted above; a stale "queued" is no second worker
                    continue
                if self._spawn(info.id):
                    live += 1

    def _spawn(self, run_id: str) -> bool:
        """Claim the queued run in the store and start its worker; False if another
        registry (another server on this data folder) claimed it first."""
        if not self.store.claim(run_id, os.getpid()):
            return False
        try:
            process = self._start_worker(run_id)
        except OSError as error:
            self.store.set_status(run_id, "interrupted", worker_pid=None,
                                  error=f"the trainer could not start ({error}); Resume tries "
                                        "again")
            return False
        self.store.heartbeat(run_id, process.pid)
        self._workers[run_id] = process
        return True

    def _start_worker(self, run_id: str) -> subprocess.Popen:
        logs = data_home() / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "trpo_viz.runs.worker", "--db", str(self.db_path),
                   "--run", run_id, "--idle-timeout", str(self.idle_timeout),
                   "--paused-grace", str(self.paused_grace)]
        if self.threads:
            command += ["--threads", str(self.threads)]
        env = os.environ | {"TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONUNBUFFERED": "1"}
        root = Path(__file__).resolve().parents[2]
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(root), env.get("PYTHONPATH")]))
        with open(logs / f"{run_id}.log", "ab") as log:
            return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, env=env)


_shared: dict[Path, Registry] = {}
_shared_lock = threading.Lock()


def worker_threads() -> int | None:
    """TensorFlow threads per training worker: ``$TRPO_VIZ_WORKER_THREADS`` if set, else
    TensorFlow's own choice (every core). Raises ValueError for anything but 1 … 1024."""
    text = os.environ.get(WORKER_THREADS_ENV, "").strip()
    if not text:
        return None
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= 1024:
        raise ValueError(f"{WORKER_THREADS_ENV} must be a whole number from 1 to 1024, "
                         f"not {text[:40]!r}")
    return int(text)


def shared_registry(db_path=None) -> Registry:
    """The process-wide registry for ``db_path`` (default: the data folder's store)."""
    path = Path(db_path) if db_path is not None else default_db_path()
    with _shared_lock:
        if path not in _shared:
            _shared[path] = Registry(path, threads=worker_threads())
        return _shared[path]
