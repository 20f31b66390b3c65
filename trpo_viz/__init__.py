"""trpo-viz compute core: expressions, Hessian-vector products, traced CG, analysis, TRPO.

Pure compute and data: nothing in this package imports Streamlit. Importing the
package does not import TensorFlow: the modules that compute import it themselves,
and the first of them (the CLI, a page, a test) loads it without TensorFlow's
native start-up notices on stderr (see :mod:`trpo_viz.quiet`). So the CLI can parse
and refuse bad input in a fraction of TensorFlow's import time, and the app can
draw its frame before TensorFlow is loaded.
"""

from trpo_viz.quiet import install as _install_quiet_tensorflow_import

_install_quiet_tensorflow_import()

__version__ = "0.1.0"
