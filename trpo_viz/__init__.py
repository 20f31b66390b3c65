"""trpo-viz compute core: expressions, Hessian-vector products, traced CG, analysis, TRPO.

Pure compute and data: nothing in this package imports Streamlit. Importing it
imports TensorFlow without TensorFlow's native start-up notices on stderr (see
:mod:`trpo_viz.quiet`), whichever entry point comes first: the CLI, a page, a test.
"""

from trpo_viz.quiet import import_tensorflow

import_tensorflow()

__version__ = "0.1.0"
