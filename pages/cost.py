"""Hessian-free cost lab: form H and solve, or run k CG iterations on HVPs?

The page is thin: widgets, a progress bar and layout. Measurements come from
``trpo_viz.cost`` (one size at a time, cached here per (N, k) for all sessions), the
figure from ``trpo_viz.figures.krylov.cost_figure``. Headless:
``python -m trpo_viz cost``.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st
from streamlit.runtime.pages_manager import PagesManager

from trpo_viz.cost import DEFAULT_BUDGET, DEFAULT_ITERS, MAX_ITERS, CostRow, fit_costs, measure_size
from trpo_viz.figures.krylov import cost_figure
from trpo_viz.inputs import InputError

if "entered_through_app" not in st.session_state:  # run by Streamlit's legacy pages/ mode
    PagesManager.uses_pages_directory = False  # leave it (see app.py) and go through app.py
    st.rerun()

SIZES = [100, 300, 1_000, 3_000, 10_000, 30_000, 100_000, 300_000, 1_000_000]  # 10² … 10⁶


@st.cache_data(max_entries=64, show_spinner=False)
def measured(n: int, iters: int) -> CostRow:
    """Both routes at one size, once per (N, k) for all sessions (a fixed memory budget)."""
    return measure_size(n, iters, DEFAULT_BUDGET)


def size_text(n: int) -> str:
    return f"{n:,}"


st.title("Hessian-free cost lab")
st.markdown(
    "For a network-shaped loss with **N** parameters (TRPO's KL, whose Hessian is the Fisher "
    "matrix), compare two ways to solve (H + λI)x = g: **form H** from N HVPs and solve "
    "densely (time ~N²…N³, memory ~N²), or run **k CG iterations** on HVPs (time ~k·N, "
    "memory ~N). Each size is measured once and kept.")

left, right = st.columns([3, 1])
largest = left.select_slider("largest N (log scale)", options=SIZES, value=3_000,
                             format_func=size_text, key="cost_n")
iters = right.number_input("CG iterations k", min_value=1, max_value=MAX_ITERS,
                           value=DEFAULT_ITERS, step=1, key="cost_k")
sizes = [n for n in SIZES if n <= largest]
st.caption(f"Measures N = {', '.join(size_text(n) for n in sizes)}. The explicit route runs "
           f"only where its modelled memory fits {DEFAULT_BUDGET / 2**20:.0f} MiB; beyond, "
           "its fit is extrapolated. Timings are wall clock on this server, shared with "
           "other users.")

request = (tuple(sizes), int(iters))
if st.button("Measure", key="cost_run", type="primary"):
    st.session_state.cost_request = request
if st.session_state.get("cost_request") != request:
    st.info("Press **Measure** to time both routes at these sizes.", icon=":material/timer:")
    st.stop()

rows = []
bar = st.progress(0.0, text="Measuring…")
try:
    for i, n in enumerate(sizes):
        bar.progress(i / len(sizes), text=f"Measuring N = {size_text(n)} "
                                          f"({i + 1} of {len(sizes)})…")
        rows.append(measured(n, int(iters)))
except InputError as error:
    bar.empty()
    st.error(str(error), icon=":material/error:")
    st.stop()
bar.progress(1.0, text=f"Measured {len(rows)} sizes.")

fits = fit_costs(rows)
st.plotly_chart(cost_figure(rows, fits, extend_to=SIZES[-1]), key="cost_chart")
if fits.crossover_n is not None:
    st.markdown(f"The fitted times cross at **N ≈ {fits.crossover_n:,.0f}**"
                + (" (extrapolated beyond the measured sizes)" if fits.crossover_extrapolated
                   else "") + f": above it, {int(iters)} CG iterations are cheaper than "
                "forming H.")
if fits.explicit_faster_at:
    st.markdown("Forming H was faster at N = "
                + ", ".join(size_text(n) for n in fits.explicit_faster_at) + ".")
elif any(r.explicit_seconds is not None for r in rows):
    st.markdown(f"{int(iters)} CG iterations were faster than forming H at every N where "
                "both were measured.")
for note in fits.notes:
    st.caption(note)
table = pd.DataFrame([{
    "N": r.n,
    "explicit (s)": r.explicit_seconds,
    "explicit memory (MiB)": r.explicit_bytes / 2**20,
    "explicit memory": "measured" if r.explicit_bytes_measured else "model",
    f"k = {r.iters} CG (s)": r.hvp_cg_seconds,
    "CG memory (MiB, model)": r.hvp_cg_bytes / 2**20,
    "one HVP (s)": r.hvp_seconds,
    "explicit skipped": r.explicit_skipped or "",
} for r in rows])
st.dataframe(table, hide_index=True)
