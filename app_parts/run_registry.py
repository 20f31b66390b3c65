"""The server's run registry, as the run pages reach it."""

from __future__ import annotations

import streamlit as st

from app_parts import plain
from trpo_viz.runs.registry import Registry, shared_registry
from trpo_viz.runs.store import default_db_path


def run_registry() -> Registry:
    """The process-wide registry of the data folder's store (``shared_registry``: one per
    server process, shared by every session and page; its worker processes train, the
    pages only send commands). A bad server setting, e.g. ``TRPO_VIZ_WORKER_THREADS``, or
    a database file that is not ours, is an alert on the page, which stops there."""
    try:
        return shared_registry(default_db_path())
    except ValueError as error:  # StoreError is a ValueError
        st.error(plain(f"The server cannot train runs: {error}."), icon=":material/error:")
        st.stop()
