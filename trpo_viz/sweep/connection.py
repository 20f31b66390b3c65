"""The process's connection to Ray: a local instance by default, or a cluster by address.

Without an address, Ray starts a local instance on this machine
(``ray.init(address="local")``) with ``workers`` CPUs (default: the CPU count); each
trial asks for one CPU and TensorFlow uses one thread per trial. With ``HOST:PORT`` it
joins that cluster (started with ``ray start --head``) and ships this checkout's
``trpo_viz`` package to the workers (``runtime_env.py_modules``); the workers need the
same Python, Ray and requirements (see docs/CLUSTER.md). One connection per process,
owned by a long-lived thread: Ray ties the processes it starts to the thread that
started them, so a short-lived thread would take the local instance down with it.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path

CONNECT_TIMEOUT_S = 120.0
ADDRESS = re.compile(r"^(?P<host>[A-Za-z0-9.\-]{1,253}|\[[0-9A-Fa-f:]+\]):(?P<port>\d{1,5})$")
ROOT = Path(__file__).resolve().parents[2]
WORKER_ENV = {
    "TF_CPP_MIN_LOG_LEVEL": "3",
    "TF_NUM_INTRAOP_THREADS": "1",  # one TensorFlow thread per trial
    "TF_NUM_INTEROP_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "SDL_VIDEODRIVER": "dummy",
    "RAY_DISABLE_FAILURE_SIGNAL_HANDLER": "0",
}
# Set in this process before Ray is first imported: no usage reports, and no C++ failure
# signal handler in the driver (it prints a stack trace on every SIGTERM, e.g. when the
# app's server is stopped); the workers keep theirs.
QUIET_ENV = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_DISABLE_USAGE_STATS": "1",
             "RAY_DISABLE_FAILURE_SIGNAL_HANDLER": "1"}


class EngineError(RuntimeError):
    """Ray could not be reached or started; the message says which address and why."""


def check_address(address: str | None) -> str | None:
    """``HOST:PORT`` (or None / "" / "local": the embedded local instance)."""
    if address is None or address.strip() in ("", "local"):
        return None
    address = address.strip()
    match = ADDRESS.match(address)
    if match is None or not 1 <= int(match["port"]) <= 65535:
        raise ValueError(f"a Ray address looks like HOST:PORT (e.g. 10.0.0.5:6379), "
                         f"got {address[:80]!r}")
    return address


@dataclass(frozen=True)
class EngineInfo:
    name: str
    address: str  # "local" or HOST:PORT
    nodes: int
    cpus: float

    def to_dict(self) -> dict:
        return {"name": self.name, "address": self.address, "nodes": self.nodes,
                "cpus": self.cpus}


class _Connection:
    """The process's Ray connection and the thread that owns it."""

    def __init__(self):
        self.lock = threading.Lock()
        self.info: EngineInfo | None = None
        self.key: tuple | None = None
        self.thread: threading.Thread | None = None
        self.release = threading.Event()

    def connect(self, address: str | None, workers: int | None) -> EngineInfo:
        address = check_address(address)
        for name, value in QUIET_ENV.items():
            os.environ.setdefault(name, value)
        workers = workers or os.cpu_count() or 1
        key = (address, None if address else workers)
        with self.lock:
            if self.info is not None and self.key == key and self._alive():
                return self._refresh()
            self._shutdown()
            ready = threading.Event()
            outcome: dict = {}
            self.release = threading.Event()
            self.thread = threading.Thread(
                target=_own_ray, args=(address, workers, ready, self.release, outcome),
                daemon=True, name="ray-owner")
            self.thread.start()
            if not ready.wait(CONNECT_TIMEOUT_S):
                self.release.set()
                raise EngineError(f"Ray at {address or 'local'} did not start or answer within "
                                  f"{CONNECT_TIMEOUT_S:.0f} s")
            if "error" in outcome:
                self.thread.join(timeout=30)
                self.thread = None
                raise EngineError(outcome["error"])
            self.key = key
            self.info = EngineInfo("ray", address or "local", 0, 0.0)
            return self._refresh()

    def _alive(self) -> bool:
        import ray

        return self.thread is not None and self.thread.is_alive() and ray.is_initialized()

    def _refresh(self) -> EngineInfo:
        import ray

        nodes = sum(1 for node in ray.nodes() if node.get("Alive"))
        cpus = float(ray.cluster_resources().get("CPU", 0.0))
        self.info = EngineInfo("ray", self.info.address, nodes, cpus)
        return self.info

    def _shutdown(self) -> None:
        if self.thread is not None:
            self.release.set()
            self.thread.join(timeout=60)
        self.thread, self.info, self.key = None, None, None

    def shutdown(self) -> None:
        with self.lock:
            self._shutdown()


def _own_ray(address, workers, ready, release, outcome) -> None:
    """The owner thread: ray.init, then hold the instance until released."""
    import ray

    env = dict(WORKER_ENV)
    if address is None:  # same machine: the workers import this checkout directly
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get(
            "PYTHONPATH")]))
        runtime_env = {"env_vars": env}
        kwargs = {"address": "local", "num_cpus": workers}
    else:  # another machine's workers get this package from the driver
        runtime_env = {"env_vars": env, "py_modules": [str(ROOT / "trpo_viz")]}
        kwargs = {"address": address}
    try:
        if ray.is_initialized():
            ray.shutdown()
        ray.init(**kwargs, runtime_env=runtime_env, include_dashboard=False,
                 log_to_driver=False, logging_level=logging.ERROR, configure_logging=True,
                 namespace="trpo-viz")
    except Exception as error:  # noqa: BLE001 - reported to the caller as one message
        where = address or "a local instance"
        outcome["error"] = f"could not start or reach Ray ({where}): " + " ".join(
            str(error).split())[:400]
        if address and not os.environ.get("RAY_AUTH_MODE"):
            outcome["error"] += (" (a cluster started by `ray start` uses token authentication: "
                                 "set RAY_AUTH_MODE=token here and give this machine the "
                                 "cluster's token in ~/.ray/auth_token or RAY_AUTH_TOKEN; "
                                 "see docs/CLUSTER.md)")
        ready.set()
        return
    ready.set()
    release.wait()
    ray.shutdown()


_connection = _Connection()


def connect(address: str | None = None, workers: int | None = None) -> EngineInfo:
    """Connect this process to Ray (reusing the connection when it has the same target)."""
    return _connection.connect(address, workers)


def shutdown() -> None:
    """Disconnect (and stop the local instance, if this process started one)."""
    _connection.shutdown()


def engine_info() -> EngineInfo | None:
    return _connection.info
