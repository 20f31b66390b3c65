"""trpo-viz compute core: expressions, Hessian-vector products, traced CG, analysis, TRPO.

Pure compute and data: nothing in this package imports Streamlit. Importing the
package does not import TensorFlow: the modules that compute import it themselves,
and the first of them (the CLI, a page, a test) loads it without TensorFlow's
native start-up notices on stderr (see :mod:`trpo_viz.quiet`). So the CLI can parse
and refuse bad input in a fraction of TensorFlow's import time, and the app can
draw its frame before TensorFlow is loaded.

Importing the package also sets headless rendering defaults (see
:func:`_headless_rendering_defaults`) before anything can import pygame or MuJoCo.
"""

import ctypes
import os
import sys

from trpo_viz.quiet import install as _install_quiet_tensorflow_import

# MuJoCo's OpenGL back ends on Linux and the libraries each needs (the sonames PyOpenGL
# and MuJoCo load).
_GL_LIBRARIES = (("egl", ("libEGL.so.1", "libEGL.so")),
                 ("osmesa", ("libOSMesa.so.8", "libOSMesa.so.6", "libOSMesa.so")))


def _loadable(names) -> bool:
    for name in names:
        try:
            ctypes.CDLL(name)
        except OSError:
            continue
        return True
    return False


def _headless_rendering_defaults() -> None:
    """Render without a display unless the user said otherwise (set variables win).

    * ``SDL_VIDEODRIVER=dummy``: pygame (classic-control rendering) opens no window.
    * ``MUJOCO_GL`` on Linux: ``egl`` (headless, what this project renders with), else
      ``osmesa`` when only that is installed, else ``disable`` (no display either). It
      must be decided before ``mujoco`` is imported: MuJoCo loads the back end's library
      *at import*, and one that is missing (``MUJOCO_GL=egl`` without libEGL, or
      ``osmesa`` without libOSMesa) makes ``import mujoco`` fail, which would stop
      MuJoCo tasks from training at all. With ``disable`` they train, and rendering
      fails with a clear note (:class:`trpo_viz.trpo.pictures.RenderUnavailable`).
      With a display (``DISPLAY`` set) and neither library, MuJoCo's own default (GLFW)
      is kept. Other systems keep MuJoCo's default (CGL on macOS, WGL on Windows).
    """
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    if "MUJOCO_GL" in os.environ or not sys.platform.startswith("linux"):
        return
    for backend, libraries in _GL_LIBRARIES:
        if _loadable(libraries):
            os.environ["MUJOCO_GL"] = backend
            return
    if not os.environ.get("DISPLAY"):
        os.environ["MUJOCO_GL"] = "disable"


_headless_rendering_defaults()
_install_quiet_tensorflow_import()

__version__ = "0.1.0"
