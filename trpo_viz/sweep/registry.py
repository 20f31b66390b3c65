"""The process-wide owner of running sweeps: pages ask it, it never belongs to a page.

:func:`shared_sweeps` gives one :class:`SweepRegistry` per run store and process (the
Streamlit server). ``start`` checks the plan, then runs the sweep's driver in a daemon
thread (:func:`trpo_viz.sweep.runner.execute`); the page polls the run store for
progress and calls ``stop`` to cancel. A browser tab closing, or a session ending,
stops nothing. Ray is reached at ``$RAY_ADDRESS`` when set, else a local instance
with one worker per CPU; every sweep of the process shares that one connection, and
each keeps to its own number of trials at once. Two minutes after the last sweep
ends the registry lets Ray go (a local instance's idle workers each hold TensorFlow);
the next sweep starts it again.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from trpo_viz.sweep import engine, runner, storage
from trpo_viz.sweep.grid import SweepSpec

IDLE_RELEASE_S = 120.0  # Ray is let go this long after the last sweep of the process ended


def app_address() -> str | None:
    """The cluster the app uses: ``$RAY_ADDRESS`` (checked), else None (a local instance)."""
    return engine.check_address(os.environ.get("RAY_ADDRESS"))


@dataclass
class SweepHandle:
    """A sweep this process drives."""

    sweep_id: str
    trials: int
    parallel: int | None
    address: str | None
    cancel: threading.Event = field(default_factory=threading.Event)
    state: str = "connecting"  # connecting, running, done, failed
    error: str | None = None
    engine: engine.EngineInfo | None = None
    started: float = field(default_factory=time.time)
    thread: threading.Thread | None = None

    @property
    def active(self) -> bool:
        return self.state in ("connecting", "running")


class SweepRegistry:
    """Starts sweeps in background threads and remembers them (see the module docstring)."""

    def __init__(self, db_path, idle_release_s: float | None = IDLE_RELEASE_S):
        self.db_path = Path(db_path)
        self.idle_release_s = idle_release_s
        self._handles: dict[str, SweepHandle] = {}
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None

    def start(self, spec: SweepSpec, parallel: int | None = None,
              address: str | None = None) -> str:
        """A new sweep of ``spec``, running in the background; returns its id."""
        address = engine.check_address(address)
        if parallel is not None and parallel < 1:
            raise ValueError(f"parallel trials must be at least 1, got {parallel}")
        sweep_id = storage.new_sweep_id()
        runner.check(spec, self.db_path, sweep_id)
        handle = SweepHandle(sweep_id, len(spec.trials()), parallel, address)
        handle.thread = threading.Thread(target=self._drive, args=(handle, spec), daemon=True,
                                         name=f"sweep-{sweep_id}")
        with self._lock:
            self._handles[sweep_id] = handle
        handle.thread.start()
        return sweep_id

    def _drive(self, handle: SweepHandle, spec: SweepSpec) -> None:
        def ready(sweep_id, info, planned):
            handle.engine, handle.state = info, "running"

        try:
            runner.execute(spec, self.db_path, sweep_id=handle.sweep_id,
                           address=handle.address, cancel=handle.cancel, on_ready=ready,
                           parallel=handle.parallel)
            handle.state = "done"
        except Exception as error:  # noqa: BLE001 - shown on the page; the thread ends
            handle.error = " ".join(str(error).split()) or type(error).__name__
            handle.state = "failed"
        finally:
            self._release_later()

    def _release_later(self) -> None:
        """Disconnect from Ray (stopping a local instance and its idle workers, each
        holding TensorFlow) once no sweep has run for ``idle_release_s`` seconds."""
        if self.idle_release_s is None:
            return
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
            self._timer = threading.Timer(self.idle_release_s, self._release_if_idle)
            self._timer.daemon = True
            self._timer.start()

    def _release_if_idle(self) -> None:
        with self._lock:
            if any(h.active for h in self._handles.values()):
                return
            engine.shutdown()

    def stop(self, sweep_id: str) -> bool:
        """Cancel the sweep's remaining trials; False if this process does not drive it."""
        handle = self.handle(sweep_id)
        if handle is None or not handle.active:
            return False
        handle.cancel.set()
        return True

    def handle(self, sweep_id: str) -> SweepHandle | None:
        with self._lock:
            return self._handles.get(sweep_id)

    def active(self) -> list[SweepHandle]:
        with self._lock:
            return [h for h in self._handles.values() if h.active]

    def wait(self, sweep_id: str, timeout: float | None = None) -> bool:
        """Wait for the sweep's driver thread to end; True if it has."""
        handle = self.handle(sweep_id)
        if handle is None or handle.thread is None:
            return True
        handle.thread.join(timeout)
        return not handle.thread.is_alive()

    def shutdown(self, timeout: float = 60.0) -> None:
        """Cancel every sweep, wait for the drivers, and disconnect from Ray."""
        with self._lock:
            handles = list(self._handles.values())
            if self._timer is not None:
                self._timer.cancel()
        for h in handles:
            h.cancel.set()
        deadline = time.monotonic() + timeout
        for h in handles:
            if h.thread is not None:
                h.thread.join(max(0.0, deadline - time.monotonic()))
        engine.shutdown()


_shared: dict[Path, SweepRegistry] = {}
_shared_lock = threading.Lock()


def shared_sweeps(db_path=None) -> SweepRegistry:
    """The process-wide sweep registry for ``db_path`` (default: the data folder's store)."""
    from trpo_viz.runs.store import default_db_path

    path = Path(db_path) if db_path is not None else default_db_path()
    with _shared_lock:
        if path not in _shared:
            _shared[path] = SweepRegistry(path)
        return _shared[path]
