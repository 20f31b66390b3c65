"""Import TensorFlow without its native start-up chatter on stderr, whoever imports it.

TensorFlow's C++ runtime prints absl/oneDNN notices while it loads, whatever
TF_CPP_MIN_LOG_LEVEL says; a command whose stderr is one ``error: …`` line, and a
server console that should show no warning, need them gone. Only the import
itself is silenced: later errors still reach stderr.

Importing :mod:`trpo_viz` calls :func:`install`, which puts a finder at the front of
``sys.meta_path``: the first ``import tensorflow`` in the process, wherever it is
written (a ``trpo_viz`` module, a page, a test, Keras), loads TensorFlow with file
descriptor 2 pointed at /dev/null. Nothing is imported until then, so commands
that refuse bad input never pay for TensorFlow. :func:`import_tensorflow` is the
explicit form.
"""

from __future__ import annotations

import importlib.abc
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager


def import_tensorflow():
    """Import (once) and return ``tensorflow``, silenced as described above."""
    install()
    import tensorflow

    return tensorflow


def tensorflow_imported() -> bool:
    """Whether TensorFlow's import has finished in this process (not merely started)."""
    module = sys.modules.get("tensorflow")
    spec = getattr(module, "__spec__", None)
    return module is not None and not getattr(spec, "_initializing", False)  # importlib's flag


def install() -> None:
    """Route the process's first ``import tensorflow`` through the silenced loader (idempotent)."""
    if "tensorflow" in sys.modules:
        return
    if not any(isinstance(finder, _QuietTensorFlowFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, _QuietTensorFlowFinder())


@contextmanager
def _stderr_to_devnull() -> Iterator[None]:
    """Point file descriptor 2 (what C++ code writes to) at /dev/null meanwhile."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


class _QuietTensorFlowFinder(importlib.abc.MetaPathFinder):
    """Finds ``tensorflow`` with the other finders, then wraps its loader in :class:`_Quiet`."""

    def find_spec(self, fullname, path, target=None):
        if fullname != "tensorflow":
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                break
        else:
            return None
        if spec.loader is not None:
            spec.loader = _QuietLoader(spec.loader)
        return spec


class _QuietLoader(importlib.abc.Loader):
    """TensorFlow's own loader, executed with stderr silenced and its Python logger at ERROR."""

    def __init__(self, loader) -> None:
        self._loader = loader

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module) -> None:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        with _stderr_to_devnull():
            self._loader.exec_module(module)
            module.get_logger().setLevel("ERROR")

    def __getattr__(self, name):  # resource readers and the like: TensorFlow's own loader
        return getattr(self._loader, name)
