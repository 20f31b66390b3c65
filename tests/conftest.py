import contextlib
import os

import pytest

# Quiet TensorFlow's C++ logging and let gymnasium render without a display.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("SDL_VIDEODRIVER", "dummy")

# Importing trpo_viz (no TensorFlow yet) makes the session's first `import tensorflow`,
# in whichever test module, load without TensorFlow's native start-up notices.
import trpo_viz  # noqa: E402, F401


@pytest.fixture(scope="session", autouse=True)
def private_data_home(tmp_path_factory):
    """Runs stored by the tests (and their servers) go to a temporary folder, not ~/.trpo-viz."""
    if os.environ.get("TRPO_VIZ_HOME"):
        yield os.environ["TRPO_VIZ_HOME"]
        return
    os.environ["TRPO_VIZ_HOME"] = str(tmp_path_factory.mktemp("trpo-viz-home"))
    yield os.environ["TRPO_VIZ_HOME"]
    del os.environ["TRPO_VIZ_HOME"]


@pytest.fixture(scope="session")
def cartpole_trained_run(tmp_path_factory):
    """CartPole after three updates (256 steps × 2 envs each), trained by the worker's loop
    into a real run store, with a rollout after every update (tests/stored_run.py): for the
    tests that read a trained run's records, slices, pictures and archive."""
    from tests.stored_run import train_stored_run
    from trpo_viz.trpo.config import default_config

    config = default_config("CartPole-v1", n_steps=256, n_envs=2)
    return train_stored_run(config, tmp_path_factory.mktemp("cartpole-run"), updates=3,
                            rollout_every=1)


def _sigint_state() -> tuple[bool, bool]:
    """(ignored, blocked) for SIGINT at the OS level, from /proc (Python's own table of
    handlers cannot tell: native code can change the disposition behind its back)."""
    import signal

    try:
        with open("/proc/self/status") as file:
            status = file.read().splitlines()
    except OSError:
        return False, False
    bits = {line.split(":")[0]: int(line.split()[1], 16) for line in status
            if line.startswith(("SigIgn", "SigBlk"))}
    bit = 1 << (signal.SIGINT - 1)
    return bool(bits.get("SigIgn", 0) & bit), bool(bits.get("SigBlk", 0) & bit)


@contextlib.contextmanager
def _sigint_guard(where: str):
    """Undo an ignored or blocked SIGINT found at the end of a phase, and say so.

    Checked whatever it was before the phase: a background thread (a server's, Ray's) may
    change it between two phases, where no phase would see the change happen.
    """
    import signal
    import warnings

    before = _sigint_state()
    try:
        yield
    finally:
        after = _sigint_state()
        if any(after):
            signal.signal(signal.SIGINT, signal.default_int_handler)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
            warnings.warn(f"SIGINT (ignored, blocked) = {after} at the end of {where} (before "
                          f"it: {before}); restored", stacklevel=1)


# A test phase (its fixtures' setup and teardown included) that leaves SIGINT ignored or
# blocked in this process is named and undone: child processes inherit an ignored SIGINT,
# so a CLI that a later test interrupts with Ctrl-C, or a Ray worker that ray.cancel
# interrupts, would never see it (the sweep Ctrl-C test failed that way in full runs only).
@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item):
    with _sigint_guard(f"setting up {item.nodeid}"):
        return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    with _sigint_guard(item.nodeid):
        return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item, nextitem):
    with _sigint_guard(f"tearing down {item.nodeid}"):
        return (yield)
