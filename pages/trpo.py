"""TRPO live: pick a task, train, and watch every trust-region step.

Session state (one run per browser session):
  trpo_run      the LiveRun (live trainer, or a replayed archive in talk mode)
  trpo_running  whether the live fragment trains / replays on each tick
  trpo_replay   the update shown in talk mode
  trpo_error    the last error, shown by the controls
"""

import streamlit as st
from streamlit.runtime.pages_manager import PagesManager

from trpo_viz.figures import trpo as figures
from trpo_viz.trpo.config import CLASSIC_CONTROL_ENVS, available_envs, default_config
from trpo_viz.trpo.live import MAX_BATCH, MAX_HIDDEN, MAX_TIMESTEPS, LiveRun, config_from_form

if "entered_through_app" not in st.session_state:  # run by Streamlit's legacy pages/ mode
    PagesManager.uses_pages_directory = False  # leave it (see app.py) and go through app.py
    st.rerun()

TICK_SECONDS = 0.05  # pause between ticks of the live fragment: one update (or replay step) each
ROLLOUT_EVERY = 10  # updates between re-rendered policy rollouts

st.session_state.setdefault("trpo_run", None)
st.session_state.setdefault("trpo_running", False)
st.session_state.setdefault("trpo_replay", 0)
st.session_state.setdefault("trpo_error", None)

st.title("TRPO live")
st.caption(
    "Each update: the policy gradient g, CG on the Fisher system F s = g (Fisher-vector "
    "products are Hessian-vector products of the mean KL), the step scaled to the KL "
    "bound δ, and a backtracking line search that accepts the first candidate with "
    "KL ≤ δ and a positive surrogate improvement."
)

# ---- Settings -----------------------------------------------------------------------------
envs = available_envs()
missing_mujoco = len(envs) == len(CLASSIC_CONTROL_ENVS)
with st.expander("Task and hyperparameters", expanded=st.session_state.trpo_run is None):
    if st.session_state.trpo_run is not None:
        st.caption("These settings apply to a new run: press **Reset**, then **Start**.")
    env_id = st.selectbox("Task", envs, key="trpo_env")
    if missing_mujoco:
        st.caption("MuJoCo tasks (Hopper-v5, …) appear here when `gymnasium[mujoco]` is installed.")
    defaults = default_config(env_id)
    c1, c2, c3, c4 = st.columns(4)
    max_kl = c1.number_input(
        "δ (max KL)", 1e-4, 0.2, defaults.max_kl, format="%.4f", key=f"trpo_max_kl_{env_id}"
    )
    cg_steps = c2.slider("CG iterations", 1, 50, defaults.cg_max_steps, key=f"trpo_cg_{env_id}")
    cg_damping = c3.number_input(
        "CG damping λ", 0.0, 10.0, defaults.cg_damping, format="%.4f", key=f"trpo_damping_{env_id}"
    )
    seed = c4.number_input("Seed", 0, 2**31 - 1, 0, key="trpo_seed")
    c1, c2, c3, c4 = st.columns(4)
    shrink = c1.slider(
        "Line-search shrink", 0.1, 0.95, defaults.line_search_shrink, key=f"trpo_shrink_{env_id}"
    )
    backtracks = c2.slider(
        "Max backtracks", 0, 20, defaults.max_backtracks, key=f"trpo_backtracks_{env_id}"
    )
    batch = c3.select_slider(
        "Steps per update",
        [256, 512, 1024, 2048, 4096, MAX_BATCH],
        defaults.batch_size
        if defaults.batch_size in (256, 512, 1024, 2048, 4096, MAX_BATCH)
        else 1024,
        key=f"trpo_batch_{env_id}",
    )
    hidden = c4.text_input(
        "Hidden sizes",
        ", ".join(map(str, defaults.hidden_sizes)),
        key="trpo_hidden",
        help=f"comma-separated, at most {MAX_HIDDEN} each",
    )
    c1, c2, c3 = st.columns([2, 2, 1])
    gamma = c1.slider("γ (discount)", 0.8, 0.999, defaults.gamma, key=f"trpo_gamma_{env_id}")
    lam = c2.slider("λ (GAE)", 0.8, 1.0, defaults.gae_lambda, key=f"trpo_lambda_{env_id}")
    total_timesteps = c3.number_input(
        "Total timesteps",
        1_000,
        MAX_TIMESTEPS,
        defaults.total_timesteps,
        step=10_000,
        key=f"trpo_total_{env_id}",
        help="training stops here",
    )


def new_run() -> LiveRun | None:
    """Build a run from the settings; on bad values, say why by the controls."""
    try:
        hidden_sizes = tuple(int(h) for h in hidden.replace(" ", "").split(",") if h)
    except ValueError:
        st.session_state.trpo_error = f"Hidden sizes must be integers, e.g. 64, 64 (got {hidden!r})"
        return None
    try:
        n_envs = default_config(env_id).n_envs
        config = config_from_form(
            env_id,
            seed=int(seed),
            max_kl=float(max_kl),
            cg_max_steps=int(cg_steps),
            cg_damping=float(cg_damping),
            line_search_shrink=float(shrink),
            max_backtracks=int(backtracks),
            n_envs=n_envs,
            n_steps=max(1, batch // n_envs),
            gamma=float(gamma),
            gae_lambda=float(lam),
            total_timesteps=int(total_timesteps),
            hidden_sizes=hidden_sizes,
        )
        with st.spinner(f"Building {env_id} and compiling TRPO's functions…", show_time=True):
            return LiveRun.start(config)
    except ValueError as error:
        st.session_state.trpo_error = str(error)
        return None


def close_run() -> None:
    if st.session_state.trpo_run is not None:
        st.session_state.trpo_run.close()
    st.session_state.trpo_run = None
    st.session_state.trpo_running = False


# ---- Controls -----------------------------------------------------------------------------
run: LiveRun | None = st.session_state.trpo_run
b1, b2, b3, b4, b5 = st.columns([1, 1, 1, 1, 2])
start = b1.button(
    "Start",
    icon=":material/play_arrow:",
    type="primary",
    width="stretch",
    disabled=st.session_state.trpo_running,
)
pause = b2.button(
    "Pause", icon=":material/pause:", width="stretch", disabled=not st.session_state.trpo_running
)
step_once = b3.button(
    "Step", icon=":material/skip_next:", width="stretch", disabled=st.session_state.trpo_running
)
reset = b4.button("Reset", icon=":material/restart_alt:", width="stretch")
if reset:
    close_run()
    st.session_state.trpo_error = None
    run = None
if start or step_once:
    st.session_state.trpo_error = None
    if run is None:
        run = st.session_state.trpo_run = new_run()
    if run is not None and start:
        st.session_state.trpo_running = True
        st.rerun()  # redraw the buttons (Pause enabled) and start the ticking fragment
if pause:
    st.session_state.trpo_running = False
    st.rerun()
if step_once and run is not None:
    try:
        with st.spinner("One TRPO update…"):
            if run.live:
                run.step()
            else:
                st.session_state.trpo_replay = min(
                    st.session_state.trpo_replay + 1, len(run.records) - 1
                )
    except Exception as error:  # noqa: BLE001 - shown by the controls, never as a traceback
        st.session_state.trpo_error = f"The update failed: {error}"
if st.session_state.trpo_error:
    st.error(st.session_state.trpo_error)

with b5:
    if run is not None and run.live and run.records:
        st.download_button(
            "Save run",
            icon=":material/download:",
            data=run.to_bytes,  # built on click, not on every rerun
            width="stretch",
            file_name=f"trpo-{run.config.env_id}-{len(run.records)}.zip",
            mime="application/zip",
            on_click="ignore",
        )
with st.expander("Talk mode: load a saved run and replay it update by update"):
    upload = st.file_uploader("Saved run (.zip)", type=["zip"], key="trpo_upload")
    if upload is not None and st.button("Load for replay"):
        try:
            close_run()
            run = st.session_state.trpo_run = LiveRun.replay(upload.getvalue())
            st.session_state.trpo_replay = 0
            st.session_state.trpo_error = None
            st.rerun()
        except ValueError as error:
            st.error(str(error))


# ---- Live views: one update (or replay step) per tick while running -----------------------
@st.fragment(run_every=TICK_SECONDS if st.session_state.trpo_running else None)
def live_view() -> None:
    run: LiveRun | None = st.session_state.trpo_run
    if run is None:
        st.info("Press **Start** to train, **Step** for a single update, or load a saved run.")
        return
    if st.session_state.trpo_running:
        advance(run)
    records = run.records
    if not records:
        st.info("No update yet: press Start or Step.")
        return
    shown = st.session_state.trpo_replay if not run.live else len(records) - 1
    latest = records[min(shown, len(records) - 1)]
    speed = f"{run.steps_per_second:,.0f} steps/s" if run.live else "replay (talk mode)"
    st.markdown(
        f"**Update {latest.update + 1}** of {len(records)} · "
        f"{latest.total_timesteps:,} timesteps · {speed}"
    )
    visible = records[: shown + 1]
    left, right = st.columns(2)
    left.plotly_chart(figures.learning_curve_figure(visible), key="trpo_learning")
    right.plotly_chart(figures.trust_region_history_figure(visible), key="trpo_history")

    st.subheader("One update in detail")
    if len(visible) > 1 and not st.session_state.trpo_running:
        index = st.slider("Update to inspect", 1, len(visible), len(visible), key="trpo_inspect")
    else:
        index = len(visible)
    record = visible[index - 1]
    left, right = st.columns(2)
    left.plotly_chart(figures.cg_residuals_figure(record), key="trpo_cg")
    right.plotly_chart(figures.line_search_figure(record), key="trpo_line_search")
    plane = run.slice_for(record.update)
    left, right = st.columns([3, 2])
    if plane is not None:
        left.plotly_chart(figures.trust_region_slice_figure(plane), key="trpo_slice")
    else:
        left.info("No trust-region slice was saved for this update.")
    with right:
        st.markdown(
            f"- δ = {record.max_kl:g}, KL of the step = {record.kl:.3g}\n"
            f"- CG: {record.cg_iterations} iterations, {record.cg_stop_reason}\n"
            f"- sᵀFs = {record.sFs:.3g}, step scale β = {record.step_scale:.3g}\n"
            f"- backtracks: {record.backtracks}, "
            + ("accepted" if record.accepted else "**rejected: θ restored**")
            + f"\n- surrogate: expected {record.expected_improvement * record.step_fraction:.3g}, "
            f"actual {record.actual_improvement:.3g}\n"
            f"- entropy {record.entropy:.3g}, explained variance {record.explained_variance:.2f}"
        )
        if run.live:
            run.refresh_frames(every=ROLLOUT_EVERY)
            st.image(run.rollout_gif, caption=f"The policy acting after update {run.frames_update}")


def advance(run: LiveRun) -> None:
    """One tick: train one update (live) or show the next recorded one (replay)."""
    finished = (
        st.session_state.trpo_replay >= len(run.records) - 1 if not run.live else run.trainer.done
    )
    if finished:  # stop ticking: a full rerun re-registers the fragment without run_every
        st.session_state.trpo_running = False
        st.rerun()
    if not run.live:
        st.session_state.trpo_replay += 1
        return
    try:
        run.step()
    except Exception as error:  # noqa: BLE001 - a failed update pauses the run with a message
        st.session_state.trpo_running = False
        st.session_state.trpo_error = f"The update failed: {error}"
        st.rerun()


live_view()
