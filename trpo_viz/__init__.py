"""trpo-viz compute core: expressions, Hessian-vector products, traced CG, analysis, TRPO.

Pure compute and data: nothing in this package imports Streamlit.
"""

__version__ = "0.1.0"
