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
