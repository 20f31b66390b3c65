"""trpo-viz: an interactive lab for Hessian-free optimisation. Run: ``streamlit run app.py``.

Pages are listed explicitly (with st.navigation, pages/ is not auto-discovered).
The CG explorer lives at ``/cg``. Streamlit always serves the *default* page at the
root URL, never at its own ``url_path``, so the default here is a hidden page that
forwards ``/`` (with its query string) to ``/cg``: both URLs open the explorer and
shared ``/cg?expr=…`` links work.
"""

import gc
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")  # its notice is the only log line left

import streamlit as st  # noqa: E402

st.set_page_config(page_title="trpo-viz", page_icon="🧭", layout="wide")


@st.cache_resource(show_spinner="Loading TensorFlow…")
def load_tensorflow() -> bool:
    """Import TensorFlow once per server process and freeze its heap out of the GC's way.

    Importing TensorFlow imports Keras, and Streamlit then calls
    ``keras.backend.clear_session()`` (a full ``gc.collect()``) after every script
    run: with TensorFlow's millions of objects scanned each time that cost ~0.2 s
    per rerun. ``gc.freeze()`` moves the objects that exist now (TensorFlow, its
    modules) to a permanent generation that collections skip.
    """
    import tensorflow  # noqa: F401

    gc.collect()
    gc.freeze()
    return True


load_tensorflow()

cg_explorer = st.Page("pages/cg_explorer.py", title="CG explorer", icon=":material/insights:",
                      url_path="cg")


def home() -> None:
    """The root URL: forward to the CG explorer, keeping the query string."""
    st.switch_page(cg_explorer, query_params=st.query_params.to_dict())


pages = [
    st.Page(home, title="trpo-viz", url_path="home", default=True, visibility="hidden"),
    cg_explorer,
]
# ---- TRPO page (url_path "trpo", by the TRPO developer): included once pages/trpo_live.py exists.
if (Path(__file__).parent / "pages" / "trpo_live.py").exists():
    pages.append(st.Page("pages/trpo_live.py", title="TRPO live",
                         icon=":material/directions_run:", url_path="trpo"))

st.navigation(pages).run()
