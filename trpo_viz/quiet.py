"""Import TensorFlow without its native start-up chatter on stderr.

TensorFlow's C++ runtime prints absl/oneDNN notices while it loads, whatever
TF_CPP_MIN_LOG_LEVEL says; a command whose stderr is one ``error: …`` line, and a
server console that should show no warning, need them gone. Only the import
itself is silenced: later errors still reach stderr.
"""

from __future__ import annotations

import os
import sys


def import_tensorflow():
    """Import and return ``tensorflow`` with file descriptor 2 pointed at /dev/null meanwhile."""
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        import tensorflow

        tensorflow.get_logger().setLevel("ERROR")
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
    return tensorflow
