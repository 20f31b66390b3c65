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


@pytest.fixture(autouse=True)
def sigint_left_as_found(request):
    """A test that leaves SIGINT ignored or blocked in this process is named and undone.

    Child processes inherit an ignored SIGINT: a CLI that a later test interrupts with
    Ctrl-C would never see it (the sweep Ctrl-C test failed that way in full runs only).
    """
    import signal
    import warnings

    before = _sigint_state()
    yield
    after = _sigint_state()
    if after != before and any(after):
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
        warnings.warn(f"{request.node.nodeid} left SIGINT (ignored, blocked) = {after}; "
                      "restored", stacklevel=1)
