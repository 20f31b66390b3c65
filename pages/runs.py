"""Run library: every stored TRPO run; open, rename, delete, download and import.

The page reads the run store (``trpo_viz.runs``) and sends commands through the
server's run registry; it owns no run. State: ``runs_selected`` (the chosen run id)
and ``runs_message`` (the last action's outcome, shown once).
"""

import functools

import pandas as pd
import streamlit as st
from streamlit.runtime.pages_manager import PagesManager

if "entered_through_app" not in st.session_state:  # run by Streamlit's legacy pages/ mode
    PagesManager.uses_pages_directory = False  # leave it (see app.py) and go through app.py
    st.rerun()  # before the heavy imports below: the real app appears at once

from app_parts import plain
from app_parts.run_registry import run_registry
from trpo_viz.runs.archive import export_run, import_run
from trpo_viz.runs.html import stored_run_html
from trpo_viz.runs.store import RunStore, StoreError
from trpo_viz.trpo.live import MAX_UPLOAD_BYTES

st.session_state.setdefault("runs_message", None)


def run_zip(db_path: str, run_id: str) -> bytes:
    """The run's archive, built on click in a server thread: on a connection of its own."""
    with RunStore(db_path, readonly=True) as store:
        return export_run(store, run_id)


def rename(run_id: str) -> None:
    try:
        run_registry().store.rename(run_id, st.session_state[f"runs_name_{run_id}"])
        st.session_state.runs_message = ("success", "Renamed.")
    except StoreError as error:
        st.session_state.runs_message = ("error", str(error))


def delete(run_id: str) -> None:
    try:
        run_registry().delete(run_id)
        st.session_state.runs_message = ("success", "Deleted.")
        st.session_state.runs_selected = None
    except StoreError as error:
        st.session_state.runs_message = ("error", str(error))


st.title("Run library")
st.caption("Every TRPO run trained here, from the command line (`python -m trpo_viz train`) "
           "or imported, stored in the data folder's SQLite file. Open one to replay or "
           "continue it; a link to it shows the same run to anyone.")

try:
    store = run_registry().store
    runs = store.runs()
except StoreError as error:
    st.error(plain(str(error)), icon=":material/error:")
    st.stop()

if st.session_state.runs_message:
    kind, text = st.session_state.runs_message
    getattr(st, kind)(plain(text))
    st.session_state.runs_message = None

if not runs:
    st.info("No stored runs yet: start one on **TRPO live**, train one with "
            "`python -m trpo_viz train --name …`, or import a saved run below.")
else:
    table = pd.DataFrame({
        "name": [r.name for r in runs],
        "task": [r.env_id for r in runs],
        "status": [r.status for r in runs],
        "updates": [r.updates for r in runs],
        "timesteps": [r.total_timesteps for r in runs],
        "best mean return": [r.best_mean_return for r in runs],
        "created": pd.to_datetime([r.created for r in runs], unit="s").strftime("%Y-%m-%d %H:%M"),
        "open": [f"/trpo?run={r.id}" for r in runs],
    })
    st.dataframe(
        table, hide_index=True,
        column_config={
            "open": st.column_config.LinkColumn("open", display_text="open ↗"),
            "best mean return": st.column_config.NumberColumn(format="%.1f"),
            "timesteps": st.column_config.NumberColumn(format="localized"),
        },
    )
    by_id = {r.id: r for r in runs}
    chosen = st.selectbox("Run to rename, delete or download", list(by_id), index=None,
                          key="runs_selected", placeholder="Choose a run…",
                          format_func=lambda i: f"{by_id[i].name} · {by_id[i].env_id} · {i}")
    if chosen is not None:
        info = by_id[chosen]
        st.subheader(plain(info.name))
        st.markdown(f"[Open on TRPO live ↗](/trpo?run={info.id}) · run id `{info.id}`")
        left, right = st.columns(2)
        left.text_input("Name", info.name, max_chars=80, key=f"runs_name_{info.id}")
        left.button("Rename", on_click=rename, args=(info.id,))
        with right:
            # Built on click; each partial holds the store's path and the run id, not the
            # page's globals.
            db_path = str(run_registry().db_path)
            zip_column, html_column = st.columns(2)
            zip_column.download_button(
                "Download (.zip)", functools.partial(run_zip, db_path, info.id),
                file_name=f"trpo-{info.env_id}-{info.id}.zip", mime="application/zip",
                on_click="ignore", icon=":material/download:",
                help="The run as a file to import here or elsewhere: its records, slices "
                     "and, when stored, the trainer state to continue from.")
            html_column.download_button(
                "Download for slides (.html)", functools.partial(stored_run_html, db_path, info.id),
                file_name=f"trpo-{info.env_id}-{info.id}.html", mime="text/html",
                on_click="ignore", icon=":material/slideshow:",
                help="One self-contained HTML file that opens offline, without Python: the "
                     "learning curve and every update's CG residuals, line search and "
                     "trust-region slice, with a slider.")
            confirm = st.checkbox(f"Yes, delete “{plain(info.name)}” and its {info.updates} "
                                  "stored updates", key=f"runs_confirm_{info.id}")
            st.button("Delete", icon=":material/delete:", disabled=not confirm,
                      on_click=delete, args=(info.id,))

st.subheader("Import a saved run")
upload = st.file_uploader("Run file (.zip, as downloaded from TRPO live or this page)",
                          type=["zip"], key="runs_upload")
if upload is not None and st.button("Import", icon=":material/upload:"):
    if upload.size > MAX_UPLOAD_BYTES:
        st.error(f"The file is larger than {MAX_UPLOAD_BYTES // 2**20} MiB.")
    else:
        try:
            import_run(run_registry().store, upload.getvalue())
            st.session_state.runs_message = ("success", "Imported: it is at the top of the list.")
            st.rerun()
        except ValueError as error:  # StoreError and the archive's validation errors
            st.error(plain(f"Not imported: {error}"), icon=":material/error:")
