"""trpo-viz: an interactive lab for Hessian-free optimisation. Run: ``streamlit run app.py``.

Pages are listed explicitly (with st.navigation, pages/ is not auto-discovered):
the CG explorer at ``/cg``, TRPO live at ``/trpo``, the run library at ``/runs`` and
sweeps over settings and seeds at ``/compare``, the Hessian-free cost lab at
``/cost``. Streamlit serves the *default*
page at the root URL, never at its own ``url_path``, so the default here is a hidden
page that forwards ``/`` (with its query string) to ``/cg``.

Streamlit serves the first session after a server start in its legacy pages/-folder
mode (streamlit/streamlit#9992): it runs the page file directly, without this script.
Each page file is named after its URL path (pages/cg.py → /cg), so a shared /cg or
/trpo link finds its page there; a page run without this script switches the legacy
mode off (Streamlit's own ``_mpa_v1`` never does) and reruns, through this script.

Cold start: TensorFlow takes 5–15 s to import, once per server process. Nothing
above the import needs it (``trpo_viz`` imports it lazily), so the first run
sends the navigation and a frame, the app's name and a "Loading TensorFlow…"
spinner, before the import starts: elements reach the browser as they are
written, not when the script ends. The frame is cleared once TensorFlow is in.
"""

import gc

import streamlit as st

from trpo_viz.heap import trim_memory
from trpo_viz.quiet import import_tensorflow, tensorflow_imported

ENTERED_THROUGH_APP = "entered_through_app"

st.set_page_config(page_title="trpo-viz", page_icon=":material/insights:", layout="wide")


@st.cache_resource(show_spinner=False)  # the frame below shows the spinner
def load_tensorflow() -> bool:
    """Import TensorFlow once per server process and keep Streamlit from resetting it.

    Importing TensorFlow imports Keras, and Streamlit then calls
    ``keras.backend.clear_session()`` after every script run. That runs a full
    ``gc.collect()`` and clears TensorFlow's kernel caches, so every compiled HVP,
    CG and TRPO function was re-instantiated (re-optimised) on each rerun: about 1 s
    per rerun for an n = 100 expression. Nothing here uses Keras, so its
    ``clear_session`` becomes a no-op in this server process. ``gc.freeze()`` moves
    TensorFlow's millions of objects out of the way of the collections that remain.
    """
    import_tensorflow()  # without its native start-up notices in the server console
    import keras

    keras.backend.clear_session = lambda *args, **kwargs: None
    gc.collect()
    gc.freeze()
    return True


cg_explorer = st.Page("pages/cg.py", title="CG explorer", icon=":material/insights:", url_path="cg")
trpo_live = st.Page(
    "pages/trpo.py", title="TRPO live", icon=":material/directions_run:", url_path="trpo"
)
run_library = st.Page(
    "pages/runs.py", title="Run library", icon=":material/folder_open:", url_path="runs"
)
cost_lab = st.Page(
    "pages/cost.py", title="Hessian-free cost lab", icon=":material/speed:", url_path="cost"
)
compare = st.Page(
    "pages/compare.py", title="Compare settings", icon=":material/compare:", url_path="compare"
)


def home() -> None:
    """The root URL: forward to the CG explorer, keeping the query string."""
    st.switch_page(cg_explorer, query_params=st.query_params.to_dict())


def show_frame_while_loading() -> None:
    """Import TensorFlow (once per process) under a frame, if it is not imported yet.

    The frame is written before the import blocks this script, so the browser shows
    it at once; later runs find TensorFlow imported and draw nothing here.
    """
    if tensorflow_imported():
        load_tensorflow()  # cached after the first run: returns at once
        return
    frame = st.empty()
    with frame.container():
        st.title("trpo-viz")
        st.caption("Conjugate gradient on Hessian-vector products, and TRPO live.")
        with st.spinner("Loading TensorFlow… (once per server start)", show_time=True):
            load_tensorflow()
    frame.empty()


home_page = st.Page(home, title="trpo-viz", url_path="home", default=True, visibility="hidden")
st.session_state[ENTERED_THROUGH_APP] = True  # the pages check it: see pages/cg.py
# st.navigation sends the sidebar now, before TensorFlow loads.
page = st.navigation([home_page, cg_explorer, trpo_live, run_library, compare, cost_lab])
show_frame_while_loading()
try:
    page.run()
finally:
    trim_memory()  # what this run freed goes back to the OS (under 10 ms; trpo_viz.heap)
