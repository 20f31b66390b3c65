"""Compare settings: a grid of TRPO settings × seeds on Ray, with uncertainty over seeds.

The page plans a sweep (task, grid, seeds) and asks the process's sweep registry
(``trpo_viz.sweep.registry``) to run it; the registry's thread drives Ray and writes
every trial into the run store, and this page only reads the store. State: the URL's
``sweep`` (the sweep shown, so a link shows the same sweep), ``compare_message`` (the
last action's outcome, shown once) and ``compare_cache`` (records already read).
"""

import os

import pandas as pd
import streamlit as st
from streamlit.runtime.pages_manager import PagesManager

if "entered_through_app" not in st.session_state:  # run by Streamlit's legacy pages/ mode
    PagesManager.uses_pages_directory = False  # leave it (see app.py) and go through app.py
    st.rerun()  # before the heavy imports below: the real app appears at once

from app_parts import plain
from trpo_viz.runs.store import RunStore, StoreError, default_db_path
from trpo_viz.sweep import export, figures
from trpo_viz.sweep.engine import engine_info
from trpo_viz.sweep.grid import (
    MAX_SEEDS,
    MAX_TRIALS,
    GridError,
    build_spec,
    has_variants,
    parse_grid,
    parse_overrides,
)
from trpo_viz.sweep.registry import app_address, shared_sweeps
from trpo_viz.sweep.results import list_sweeps, load_sweep
from trpo_viz.sweep.storage import check_sweep_id
from trpo_viz.trpo.config import available_envs, default_config

REFRESH_S = 1.5  # how often a running sweep's view is redrawn
MAX_BARS = 24  # progress bars drawn (running trials first); the table lists every trial
GRID_INPUTS = [  # (grid key, label, placeholder)
    ("max_kl", "δ (max_kl)", "e.g. 0.001, 0.01, 0.05"),
    ("cg_max_steps", "CG iterations", "e.g. 5, 10, 20"),
    ("cg_damping", "CG damping λ", "e.g. 0.01, 0.1"),
    ("batch_size", "Batch size (n_envs × n_steps)", "e.g. 1024, 2048"),
]
if has_variants():
    GRID_INPUTS.append(("variant", "Variant", "e.g. trpo, npg, no-kl-check, gradient, vanilla-pg"))

st.session_state.setdefault("compare_message", None)
st.session_state.setdefault("compare_cache", {})


@st.cache_resource(show_spinner=False)
def registry_for(db_path: str):
    """The server's sweep registry (its threads drive Ray; pages only ask)."""
    return shared_sweeps(db_path)


def registry():
    return registry_for(str(default_db_path()))


def items(text: str) -> list[str]:
    """``"a=1, b=2"`` or ``"a=1 b=2"`` -> ``["a=1", "b=2"]``."""
    return [part for part in text.replace(",", " ").split() if part]


def planned_spec():
    """The sweep the inputs describe (GridError with the reason if it cannot run)."""
    grid_items = [f"{key}={','.join(items(st.session_state.get(f'compare_grid_{key}', '')))}"
                  for key, _, _ in GRID_INPUTS
                  if items(st.session_state.get(f"compare_grid_{key}", ""))]
    return build_spec(st.session_state.compare_env, int(st.session_state.compare_steps),
                      parse_grid(grid_items), int(st.session_state.compare_seeds),
                      overrides=parse_overrides(items(st.session_state.compare_fixed)))


def start() -> None:
    try:
        spec = planned_spec()
        sweep_id = registry().start(spec, parallel=int(st.session_state.compare_parallel),
                                    address=app_address())
    except (GridError, ValueError, StoreError) as error:
        st.session_state.compare_message = ("error", f"Not started: {error}")
        return
    st.query_params["sweep"] = sweep_id
    st.session_state.compare_message = ("success", f"Sweep {sweep_id} started: "
                                        f"{len(spec.trials())} trials.")


def stop(sweep_id: str) -> None:
    if registry().stop(sweep_id):
        st.session_state.compare_message = ("info", "Stopping: the running trials are "
                                            "cancelled, the others will not start.")


def engine_text() -> str:
    try:
        address = app_address()
    except ValueError as error:
        return f"Ray tasks, but RAY_ADDRESS is not usable: {error}"
    if address:
        return f"Ray tasks on the Ray cluster at `{address}` (from RAY_ADDRESS)"
    info = engine_info()
    cpus = int(info.cpus) if info is not None else os.cpu_count()
    return f"Ray tasks on a local Ray instance on this machine, one trial per CPU ({cpus} CPUs)"


st.title("Compare settings")
st.caption("One TRPO run says little: returns swing with the seed. Run a grid of settings over "
           "several seeds and compare them by the interquartile mean of their returns, with "
           "95 % stratified-bootstrap intervals over seeds. Trials run as " + engine_text() +
           "; they are stored in the run library.")

if st.session_state.compare_message:
    kind, text = st.session_state.compare_message
    getattr(st, kind)(text)
    st.session_state.compare_message = None

with st.expander("New sweep", expanded="sweep" not in st.query_params):
    envs = available_envs()
    left, right = st.columns(2)
    env_id = left.selectbox("Task", envs, key="compare_env")
    left.number_input("Environment steps per trial", min_value=256, max_value=2_000_000,
                      value=default_config(env_id).total_timesteps, step=10_000,
                      key="compare_steps")
    left.number_input("Seeds per setting", min_value=1, max_value=MAX_SEEDS, value=3,
                      key="compare_seeds")
    cpus = os.cpu_count() or 1
    left.number_input("Trials at once", min_value=1, max_value=max(cpus, 64), value=cpus,
                      key="compare_parallel", help="Default: one per CPU of the Ray instance.")
    right.markdown("**Grid** — comma-separated values; leave a key empty to keep the task's "
                   "default")
    for key, label, placeholder in GRID_INPUTS:
        right.text_input(label, key=f"compare_grid_{key}", placeholder=placeholder,
                         max_chars=300)
    right.text_input("Fixed settings for every trial", key="compare_fixed", max_chars=500,
                     placeholder="e.g. n_steps=256, hidden_sizes=64x64",
                     help="Any TRPO hyperparameter as name=value (hidden_sizes as 64x64).")
    try:
        spec = planned_spec()
        count = len(spec.trials())
        settings = len(spec.settings())
        st.markdown(f"{settings} setting{'s' * (settings != 1)} × {len(spec.seeds)} seeds = "
                    f"**{count} trials** of {spec.total_timesteps:,} steps "
                    f"(at most {MAX_TRIALS}).")
        st.button("Start", type="primary", icon=":material/play_arrow:", on_click=start)
    except GridError as error:
        st.error(plain(f"This grid cannot run: {error}"), icon=":material/error:")
        st.button("Start", type="primary", icon=":material/play_arrow:", disabled=True)

try:
    with RunStore(default_db_path()) as store:
        sweeps = list_sweeps(store)
except StoreError as error:
    st.error(plain(str(error)), icon=":material/error:")
    st.stop()

chosen = st.query_params.get("sweep")
if chosen is not None:
    try:
        check_sweep_id(chosen)
    except GridError as error:
        st.error(plain(f"The link's sweep is not valid: {error}"), icon=":material/error:")
        chosen = None
known = {s.sweep_id: s for s in sweeps}
options = list(known)
if chosen is not None and chosen not in known:
    options.insert(0, chosen)  # started a moment ago: no trial stored yet
if not options:
    st.info("No sweeps yet: plan one above and press Start, or run "
            "`python -m trpo_viz sweep --grid max_kl=0.001,0.01 --seeds 3`.")
    st.stop()


def describe(sweep_id: str) -> str:
    s = known.get(sweep_id)
    if s is None:
        return f"{sweep_id} · starting"
    keys = ", ".join(s.keys) or "one setting"
    state = f"{s.active} running/pending" if s.active else f"{s.finished}/{s.trials} finished"
    return f"{sweep_id} · {s.env_id} · {keys} · {s.trials} trials · {state}"


selected = st.selectbox("Sweep", options, index=options.index(chosen) if chosen in options
                        else 0, format_func=describe)
if selected != chosen:
    st.query_params["sweep"] = selected
handle = registry().handle(selected)
stored = known.get(selected)
live = (handle is not None and handle.active) or (stored is not None and stored.active > 0)


@st.fragment(run_every=REFRESH_S if live else None)
def show_sweep(sweep_id: str, was_live: bool) -> None:
    handle = registry().handle(sweep_id)
    cache = st.session_state.compare_cache.setdefault(sweep_id, {})
    try:
        with RunStore(default_db_path(), readonly=True) as store:
            results = load_sweep(store, sweep_id, cache=cache)
    except (GridError, StoreError) as error:
        if handle is not None and handle.state == "connecting":
            st.info("Starting Ray and storing the trials… (a local instance takes a few "
                    "seconds to start)", icon=":material/hourglass_top:")
        elif handle is not None and handle.state == "failed":
            st.error(plain(f"The sweep could not start: {handle.error}"), icon=":material/error:")
        else:
            st.error(plain(str(error)), icon=":material/error:")
        return
    counts = {k: v for k, v in results.counts().items() if v}
    where = ""
    if handle is not None and handle.engine is not None:
        e = handle.engine
        where = f" · Ray at {e.address} ({e.nodes} node{'s' * (e.nodes != 1)}, {e.cpus:g} CPUs)"
    st.markdown(f"**Sweep {sweep_id}** on {plain(results.env_id)}{where} · " +
                ", ".join(f"{n} {status}" for status, n in counts.items()))
    if handle is not None and handle.state == "failed":
        st.error(plain(f"The sweep's driver stopped: {handle.error}"), icon=":material/error:")
    if handle is not None and handle.active:
        st.button("Stop", icon=":material/stop:", on_click=stop, args=(sweep_id,),
                  key=f"compare_stop_{sweep_id}")
    elif results.active:
        st.caption("Running from another process (e.g. `python -m trpo_viz sweep`): stop it "
                   "there (Ctrl-C).")

    running = sorted(results.trials, key=lambda t: t.status != "running")
    with st.container(height=260 if len(running) > 8 else "content"):
        for t in running[:MAX_BARS]:
            st.progress(t.progress, text=f"{plain(t.label)} · seed {t.seed} · {t.status} · "
                                         f"{t.timesteps:,} / {t.budget:,} steps")
        if len(running) > MAX_BARS:
            st.caption(f"… and {len(running) - MAX_BARS} more trials (all in the table below).")

    st.plotly_chart(figures.curves_figure(results), key=f"compare_curves_{sweep_id}")
    finished = sum(s.finished for s in results.summary)
    st.subheader("Final return per setting")
    if finished == 0:
        st.info("No trial has finished yet: the summary appears as seeds finish.")
    else:
        if results.active:
            st.caption("Summary over the seeds finished so far.")
        table = pd.DataFrame(figures.summary_columns(results))
        st.dataframe(table, hide_index=True, column_config={
            c: st.column_config.NumberColumn(format="%.1f")
            for c in ("IQM", "CI low", "CI high", "median", "mean", "wall s / trial")})
        if any(s.finished == 1 for s in results.summary):
            st.caption("A setting with one finished seed has no interval: one seed says "
                       "nothing about the spread over seeds.")
        elif any(0 < s.finished < 5 for s in results.summary):
            st.caption("With fewer than 5 seeds the intervals are rough (the bootstrap can "
                       "only recombine the few seeds there are).")
        st.plotly_chart(figures.finals_figure(results), key=f"compare_finals_{sweep_id}")
    st.caption(export.DEFINITIONS)

    st.subheader("Trials")
    trials = pd.DataFrame(figures.trial_columns(results))
    trials["run"] = [f"/trpo?run={run_id}" for run_id in trials["run"]]
    st.dataframe(trials, hide_index=True, column_config={
        "progress": st.column_config.ProgressColumn(min_value=0.0, max_value=1.0),
        "final return": st.column_config.NumberColumn(format="%.1f"),
        "wall s": st.column_config.NumberColumn(format="%.1f"),
        "run": st.column_config.LinkColumn("run", display_text="open ↗"),
    })
    left, middle, right = st.columns(3)
    left.download_button("Summary (.csv)", lambda: export.summary_csv(results),
                         file_name=f"sweep-{sweep_id}-summary.csv", mime="text/csv",
                         on_click="ignore", icon=":material/download:",
                         key=f"compare_csv_{sweep_id}")
    middle.download_button("Trials (.csv)", lambda: export.trials_csv(results),
                           file_name=f"sweep-{sweep_id}-trials.csv", mime="text/csv",
                           on_click="ignore", icon=":material/download:",
                           key=f"compare_trials_csv_{sweep_id}")
    right.download_button("Report (.html)", lambda: export.sweep_html(results),
                          file_name=f"sweep-{sweep_id}.html", mime="text/html",
                          on_click="ignore", icon=":material/download:",
                          key=f"compare_html_{sweep_id}")
    still_live = (handle is not None and handle.active) or results.active
    if was_live and not still_live:
        st.rerun()  # finished: a full rerun registers the fragment without run_every


show_sweep(selected, live)
