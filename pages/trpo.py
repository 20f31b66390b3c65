"""TRPO live: pick a task, train, and watch every trust-region step.

Session state (one run per browser session):
  trpo_run      the LiveRun (live trainer, or a replayed archive in talk mode)
  trpo_running  whether the live fragment trains / replays on each tick
  trpo_replay   the update shown in talk mode
  trpo_error    the last error, shown by the controls
"""

import string

import streamlit as st
from streamlit.runtime.pages_manager import PagesManager

from trpo_viz.figures import trpo as figures
from trpo_viz.trpo.config import (
    CLASSIC_CONTROL_ENVS,
    FVP_DTYPES,
    available_envs,
    default_config,
)
from trpo_viz.trpo.live import (
    FORM_LABELS,
    FORM_RANGES,
    MAX_BATCH,
    MAX_HIDDEN,
    MAX_LAYERS,
    LiveRun,
    config_from_form,
    describe_config,
    form_differences,
    parse_hidden_sizes,
)
from trpo_viz.trpo.numerics import (
    EXPLAINED_VARIANCE_HELP,
    cg_precision_note,
    cg_stop_text,
    damping_share,
    explained_variance_text,
)

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


def range_help(name: str, text: str) -> str:
    lo, hi = FORM_RANGES[name]
    return f"{text} From {lo:g} to {hi:g}; other values are refused, never replaced."


with st.expander("Task and hyperparameters", expanded=st.session_state.trpo_run is None):
    if st.session_state.trpo_run is not None:
        st.caption("These settings apply to a new run: press **Reset**, then **Start**.")
    env_id = st.selectbox("Task", envs, key="trpo_env")
    if missing_mujoco:
        st.caption("MuJoCo tasks (Hopper-v5, …) appear here when `gymnasium[mujoco]` is installed.")
    defaults = default_config(env_id)
    # Number fields have no min/max: Streamlit would keep its last valid value when a typed
    # one is out of range. Here every typed value reaches config_from_form, which applies
    # it exactly or refuses it with a message naming the field and its range.
    c1, c2, c3, c4 = st.columns(4)
    max_kl = c1.number_input(
        "δ (max KL)",
        value=defaults.max_kl,
        step=0.001,
        format="%g",
        key=f"trpo_max_kl_{env_id}",
        help=range_help("max_kl", "Trust-region radius on the mean KL(π_old ‖ π)."),
    )
    cg_steps = c2.slider("CG iterations", 1, 50, defaults.cg_max_steps, key=f"trpo_cg_{env_id}")
    cg_damping = c3.number_input(
        "CG damping λ",
        value=defaults.cg_damping,
        step=0.001,
        format="%g",
        key=f"trpo_damping_{env_id}",
        help=range_help("cg_damping", "Added to the Fisher: CG solves (F + λI) s = g."),
    )
    seed = c4.number_input(
        "Seed", value=0, step=1, key="trpo_seed", help=range_help("seed", "Random seed.")
    )
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
        help=f"Comma-separated layer sizes, e.g. 64, 64: at most {MAX_LAYERS} layers of "
        f"{MAX_HIDDEN} units.",
    )
    c1, c2, c3, c4 = st.columns(4)
    gamma = c1.number_input(
        "γ (discount)",
        value=defaults.gamma,
        step=0.001,
        format="%g",
        key=f"trpo_gamma_{env_id}",
        help=range_help("gamma", "Discount factor; 1 is undiscounted."),
    )
    lam = c2.number_input(
        "λ (GAE)",
        value=defaults.gae_lambda,
        step=0.01,
        format="%g",
        key=f"trpo_lambda_{env_id}",
        help=range_help("gae_lambda", "0: one-step TD advantages; 1: Monte Carlo returns."),
    )
    total_timesteps = c3.number_input(
        "Total timesteps",
        value=defaults.total_timesteps,
        step=10_000,
        key=f"trpo_total_{env_id}",
        help=range_help(
            "total_timesteps",
            "Training stops at the first update that reaches it (updates are whole batches).",
        ),
    )
    fvp_dtype = c4.selectbox(
        "FVP/CG precision",
        FVP_DTYPES,
        index=FVP_DTYPES.index(defaults.fvp_dtype),
        key="trpo_fvp_dtype",
        help="float64 computes the Fisher-vector products and CG in float64 (slower), so "
        "the CG residual curve follows exact-arithmetic CG further than float32 can.",
    )

n_envs = defaults.n_envs
form = dict(
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
    fvp_dtype=fvp_dtype,
)


def plain(text: str) -> str:
    """``text`` for st.error/st.caption shown as typed: no Markdown, LaTeX or directives.

    Every ASCII punctuation character is backslash-escaped (CommonMark shows an escaped
    punctuation character literally), so user-derived text cannot format itself.
    """
    return "".join("\\" + c if c in string.punctuation else c for c in str(text))


def new_run() -> LiveRun | None:
    """Build a run from the settings; on bad values, say why by the controls."""
    try:
        config = config_from_form(env_id, hidden_sizes=parse_hidden_sizes(hidden), **form)
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
finished = run is not None and run.finished
b1, b2, b3, b4, b5 = st.columns([1, 1, 1, 1, 2])
start = b1.button(
    "Start",
    icon=":material/play_arrow:",
    type="primary",
    width="stretch",
    disabled=st.session_state.trpo_running or finished,
)
pause = b2.button(
    "Pause", icon=":material/pause:", width="stretch", disabled=not st.session_state.trpo_running
)
step_once = b3.button(
    "Step",
    icon=":material/skip_next:",
    width="stretch",
    disabled=st.session_state.trpo_running or finished,
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
    if run is not None and run.finished:
        st.session_state.trpo_error = f"The run is {run.finished_message}: press Reset."
    elif run is not None and start:
        st.session_state.trpo_running = True
        st.rerun()  # redraw the buttons (Pause enabled) and start the ticking fragment
if pause:
    st.session_state.trpo_running = False
    st.rerun()
if step_once and run is not None and not st.session_state.trpo_error:
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
    if run.finished:
        st.rerun()  # redraw the controls: Start and Step are off once the run is finished
if st.session_state.trpo_error:
    st.error(plain(st.session_state.trpo_error), icon=":material/error:")
if run is not None and run.live:
    st.caption(plain(f"Applied to this run: {describe_config(run.config)}."))
    try:
        differing = form_differences(
            run.config, dict(form, hidden_sizes=parse_hidden_sizes(hidden))
        )
    except ValueError:
        differing = [FORM_LABELS["hidden_sizes"]]
    if differing:
        st.caption(
            plain(
                f"The form differs from this run in {', '.join(differing)}: "
                "press Reset, then Start, to apply it."
            )
        )
if finished:
    st.success(plain(f"Training {run.finished_message}."), icon=":material/flag:")

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
            st.error(plain(error), icon=":material/error:")


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
    if run.finished:
        speed += " · finished"
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
    left.caption(plain(cg_precision_note(record)))
    right.plotly_chart(figures.line_search_figure(record), key="trpo_line_search")
    plane = run.slice_for(record.update)
    left, right = st.columns([3, 2])
    if plane is not None:
        left.plotly_chart(figures.trust_region_slice_figure(plane), key="trpo_slice")
    else:
        left.info("No trust-region slice was saved for this update.")
    with right:
        share = damping_share(record, run.config.cg_damping)
        st.markdown(
            f"- δ = {record.max_kl:g}, KL of the step = {record.kl:.3g}\n"
            f"- CG ({record.cg_dtype}): {record.cg_iterations} iterations, "
            f"{plain(cg_stop_text(record))}\n"
            f"- sᵀ(F+λI)s = {record.sFs:.3g}, step scale β = {record.step_scale:.3g}"
            + (f"; the damping λ‖s‖² is {share:.0%} of it" if share is not None else "")
            + f"\n- backtracks: {record.backtracks}, "
            + ("accepted" if record.accepted else "**rejected: θ restored**")
            + f"\n- surrogate: expected {record.expected_improvement * record.step_fraction:.3g}, "
            f"actual {record.actual_improvement:.3g}\n"
            f"- entropy {record.entropy:.3g}"
        )
        ev = explained_variance_text(record.explained_variance, record.returns_relative_variance)
        st.markdown(f"Explained variance: {plain(ev)}", help=EXPLAINED_VARIANCE_HELP)
        if run.live:
            run.refresh_frames(every=ROLLOUT_EVERY)
            st.image(run.rollout_gif, caption=f"The policy acting after update {run.frames_update}")


def advance(run: LiveRun) -> None:
    """One tick: train one update (live) or show the next recorded one (replay)."""
    if run.live:
        finished = run.finished
    else:
        finished = st.session_state.trpo_replay >= len(run.records) - 1
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
