"""TRPO live: a view of one stored run, trained by the server's worker, never by this page.

URL: ``/trpo`` (settings; Start creates a run), ``/trpo?run=<id>`` (that run: a reload,
a second tab or a link shows the same run with its whole history), and
``/trpo?run=<id>&follow=1`` (read-only: no settings, no controls).

The page sends commands (start, pause, resume, step, stop) to the run registry and draws
what the run store holds, redrawing at its own pace while the run trains: it skips the
updates it could not draw in time and never replays a backlog.

Session state:
  trpo_records  {run id: [UpdateRecord, …]}, the records read so far (only new ones are read)
  trpo_replay   {run id: update shown} while replaying a stored run ("talk mode")
  trpo_playing  whether the replay advances by itself
  trpo_error    the last command's error, shown by the controls
  trpo_touched  when this session last told the store it is watching (monotonic seconds)
"""

import functools
import string
import time
from typing import NamedTuple

import streamlit as st
from streamlit.runtime.pages_manager import PagesManager

if "entered_through_app" not in st.session_state:  # run by Streamlit's legacy pages/ mode
    PagesManager.uses_pages_directory = False  # leave it (see app.py) and go through app.py
    st.rerun()  # before the heavy imports below: the real app appears at once

from live_charts import LiveFigure, live_figure, live_plotly_chart
from trpo_viz.figures import trpo as figures
from trpo_viz.runs.html import stored_run_html
from trpo_viz.runs.registry import shared_registry
from trpo_viz.runs.store import StoreError, default_db_path
from trpo_viz.runs.validate import slice_from_npz
from trpo_viz.trpo.config import CLASSIC_CONTROL_ENVS, FVP_DTYPES, available_envs, default_config
from trpo_viz.trpo.live import (
    FORM_LABELS,
    FORM_RANGES,
    MAX_BATCH,
    MAX_HIDDEN,
    MAX_LAYERS,
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

REFRESH_S = 1.0  # a watching view redraws this often (a fragment tick): once a second
TOUCH_S = 15.0  # a view tells the store it is watching at most this often
REPLAY_S = 0.6  # seconds per update while a replay plays
ENDED = ("finished", "stopped", "failed", "imported")

st.session_state.setdefault("trpo_records", {})
st.session_state.setdefault("trpo_replay", {})
st.session_state.setdefault("trpo_playing", False)
st.session_state.setdefault("trpo_error", None)
st.session_state.setdefault("trpo_touched", {})


@st.cache_resource(show_spinner=False)
def registry_for(db_path: str):
    """The server's run registry: its worker processes train, the pages only send commands."""
    return shared_registry(db_path)


def registry():
    return registry_for(str(default_db_path()))


def records_of(run_id: str) -> list:
    """Every record of the run, reading only those this session has not read yet."""
    cached = st.session_state.trpo_records.setdefault(run_id, [])
    cached.extend(registry().store.records(run_id, start=len(cached)))
    return cached


def watching(run_id: str) -> None:
    """Keep the run from pausing itself for want of a viewer (at most one write per TOUCH_S)."""
    last = st.session_state.trpo_touched.get(run_id, -TOUCH_S)
    if time.monotonic() - last >= TOUCH_S:
        registry().view(run_id)
        st.session_state.trpo_touched[run_id] = time.monotonic()


def set_run(run_id: str | None) -> None:
    if run_id is None:
        st.query_params.pop("run", None)
        st.query_params.pop("follow", None)
    else:
        st.query_params["run"] = run_id


def plain(text: str) -> str:
    """``text`` for st.error/st.caption shown as typed: no Markdown, LaTeX or directives.

    Every ASCII punctuation character is backslash-escaped (CommonMark shows an escaped
    punctuation character literally), so user-derived text cannot format itself.
    """
    return "".join("\\" + c if c in string.punctuation else c for c in str(text))


# ---- Which run? ----------------------------------------------------------------------------
run_id = st.query_params.get("run")
follow = st.query_params.get("follow") == "1"
info = None
if run_id is not None:
    try:
        info = registry().view(run_id)
        st.session_state.trpo_touched[run_id] = time.monotonic()
    except StoreError as error:
        st.error(plain(f"Cannot show this run: {error}."), icon=":material/error:")
        if st.button("Start a new run instead"):
            set_run(None)
            st.rerun()
        st.stop()
elif follow:
    st.error("This follow link names no run (it needs ?run=<id>&follow=1).", icon="⚠️")
    st.stop()

st.title("TRPO live")
st.caption(
    "Each update: the policy gradient g, CG on the Fisher system F s = g (Fisher-vector "
    "products are Hessian-vector products of the mean KL), the step scaled to the KL "
    "bound δ, and a backtracking line search that accepts the first candidate with "
    "KL ≤ δ and a positive surrogate improvement. The server trains; this page watches."
)

# ---- Settings (not in follow mode) ---------------------------------------------------------
def range_help(name: str, text: str) -> str:
    lo, hi = FORM_RANGES[name]
    return f"{text} From {lo:g} to {hi:g}; other values are refused, never replaced."


if not follow:
    envs = available_envs()
    missing_mujoco = len(envs) == len(CLASSIC_CONTROL_ENVS)
    with st.expander("Task and hyperparameters", expanded=info is None):
        if info is not None:
            st.caption("These settings apply to a new run: press **New run**, then **Start**.")
        env_id = st.selectbox("Task", envs, key="trpo_env")
        if missing_mujoco:
            st.caption("MuJoCo tasks (Hopper-v5, …) appear here when `gymnasium[mujoco]` is "
                       "installed.")
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
            "Line-search shrink", 0.1, 0.95, defaults.line_search_shrink,
            key=f"trpo_shrink_{env_id}",
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


def form_values() -> dict:
    """The form's values as typed: config_from_form applies them exactly or refuses them."""
    n_envs = defaults.n_envs
    return dict(
        seed=int(seed), max_kl=float(max_kl), cg_max_steps=int(cg_steps),
        cg_damping=float(cg_damping), line_search_shrink=float(shrink),
        max_backtracks=int(backtracks), n_envs=n_envs, n_steps=max(1, batch // n_envs),
        gamma=float(gamma), gae_lambda=float(lam), total_timesteps=int(total_timesteps),
        fvp_dtype=fvp_dtype,
    )




def command(action: str) -> None:
    """Start a run from the settings, or command the shown one; errors go by the controls."""
    st.session_state.trpo_error = None
    try:
        if action in ("start", "step") and info is None:
            config = config_from_form(env_id, hidden_sizes=parse_hidden_sizes(hidden),
                                      **form_values())
            new_id = registry().create(config, start=action == "start")
            if action == "step":
                registry().step(new_id)
            set_run(new_id)
        elif action == "start":
            registry().resume(info.id)
        elif action == "step":
            registry().step(info.id)
        elif action == "pause":
            registry().pause(info.id)
        elif action == "stop":
            registry().stop(info.id)
        elif action == "new":
            registry().release(info.id)  # paused: its worker's memory goes back now
            set_run(None)
    except (StoreError, ValueError) as error:
        st.session_state.trpo_error = str(error)


# ---- Controls (not in follow mode) ---------------------------------------------------------
if not follow:
    active = info is not None and info.training
    ended = info is not None and info.status in ENDED
    b1, b2, b3, b4, b5, b6 = st.columns([1, 1, 1, 1, 1, 1])
    b1.button("Start" if info is None else "Resume", icon=":material/play_arrow:",
              type="primary", width="stretch", disabled=active or ended,
              on_click=command, args=("start",))
    b2.button("Pause", icon=":material/pause:", width="stretch", disabled=not active,
              on_click=command, args=("pause",))
    b3.button("Step", icon=":material/skip_next:", width="stretch", disabled=active or ended,
              on_click=command, args=("step",))
    b4.button("Stop", icon=":material/stop:", width="stretch",
              disabled=info is None or ended or info.status == "stopped",
              on_click=command, args=("stop",), help="end this run for good (it stays stored)")
    b5.button("New run", icon=":material/add:", width="stretch", disabled=info is None,
              on_click=command, args=("new",), help="leave this run (it stays stored)")
    if info is not None:
        with b6.popover("Share", icon=":material/share:", width="stretch"):
            base = st.context.url.split("?")[0] if st.context.url else "/trpo"
            st.markdown("A read-only view that follows this run live:")
            st.code(f"{base}?run={info.id}&follow=1", language=None)
    if st.session_state.trpo_error:
        st.error(plain(st.session_state.trpo_error), icon=":material/error:")
    if info is not None:
        st.caption(plain(f"Applied to this run: {describe_config(info.config)}."))
        try:
            differing = form_differences(info.config, dict(form_values(),
                                                           hidden_sizes=parse_hidden_sizes(hidden)))
        except ValueError:
            differing = [FORM_LABELS["hidden_sizes"]]
        if differing:
            st.caption(plain(f"The form differs from this run in {', '.join(differing)}: press "
                             "New run, then Start, to apply it."))
elif info is not None:
    st.caption("Following a run: this view is read-only and updates as the run trains.")
if info is not None:  # outside the ticking fragment: the button keeps its callable
    st.download_button(
        "Download for slides (.html)",
        # built on click from the updates stored by then; the partial holds two strings,
        # not the page's globals
        functools.partial(stored_run_html, str(registry().db_path), info.id),
        file_name=f"trpo-{info.env_id}-{info.id}.html", mime="text/html", on_click="ignore",
        icon=":material/slideshow:",
        help="One self-contained HTML file that opens offline, without Python: the learning "
             "curve and every update's CG residuals, line search and trust-region slice, "
             "with a slider. It holds the updates stored when you click.",
    )


# ---- Figures, built once per update and shared by every view of the run --------------------
# A view redraws every REFRESH_S while its run trains, and any number of views (the owner's
# tab, followers) may watch one run: each figure is built once per (run, update, record) by
# whichever view asks first, and every other view only sends a copy. Records are immutable
# once stored except after a resume from a checkpoint, which re-trains the last update:
# the fingerprint (update, timesteps, wall time) tells such a record apart.
def fingerprint(record) -> tuple:
    return record.update, record.total_timesteps, record.wall_s


class Chart(NamedTuple):
    """A figure for st.plotly_chart, and the same figure serialised for the live chart."""
    figure: object
    live: LiveFigure


def chart(figure) -> Chart:
    return Chart(figure, live_figure(figure))


def draw(container, shown: Chart, key: str, live: bool) -> None:
    """While the view ticks, a chart redraws in place (Plotly.react), never mounted again:
    st.plotly_chart would mount a new chart for every new figure, which costs the browser
    about three times as much CPU (benchmarks/bench_runs.py)."""
    with container:
        if live:
            live_plotly_chart(shown.live, key=f"{key}_live")
        else:
            st.plotly_chart(shown.figure, key=key)


@st.cache_resource(show_spinner=False, max_entries=16)
def overview_figures(run_id: str, count: int, last: tuple, _records) -> tuple[Chart, Chart]:
    """The learning curve and the trust-region history of the run's first ``count`` updates."""
    return (chart(figures.learning_curve_figure(_records[:count])),
            chart(figures.trust_region_history_figure(_records[:count])))


class DetailFigures(NamedTuple):
    cg: Chart
    line_search: Chart
    slice: Chart | None
    slice_error: str | None


@st.cache_resource(show_spinner=False, max_entries=32)
def detail_figures(run_id: str, update: int, last: tuple, _record) -> DetailFigures:
    """One update's CG residuals, line search and trust-region slice (if one was stored)."""
    data = registry().store.slice(run_id, update)
    plane, error = None, None
    if data is not None:
        try:
            plane = chart(figures.trust_region_slice_figure(slice_from_npz(data, _record)))
        except StoreError as exc:
            error = str(exc)
    return DetailFigures(chart(figures.cg_residuals_figure(_record)),
                         chart(figures.line_search_figure(_record)), plane, error)


@st.cache_resource(show_spinner=False, max_entries=8)
def rollout_of(run_id: str, updated) -> tuple | None:
    """The run's latest rollout picture (update, GIF bytes), read again when the run changes."""
    return registry().store.media(run_id, "rollout")


# ---- The run, redrawn at the page's own pace -----------------------------------------------
def status_line(info, records, shown: int) -> str:
    status = info.status
    if status == "queued":
        position = registry().queue_position(info.id)
        status = f"waiting for a free trainer: {_ordinal(position)} in line" if position else status
    elif status == "starting":
        status = "starting the trainer (TensorFlow and the task load in a few seconds)"
    elif status == "paused" and info.error:
        status = plain(info.error)
    elif status == "interrupted":
        status = f"interrupted: {plain(info.error)}" if info.error else status
    elif status == "finished":
        status = f"finished: {info.total_timesteps:,} timesteps reached"
    elif status == "failed":
        status = f"failed: {plain(info.error)}"
    where = f"**Update {shown + 1}** of {len(records)}" if records else "No update yet"
    speed = ""
    if records and info.wall_s > 0:
        speed = f" · {info.total_timesteps / info.wall_s:,.0f} steps/s while training"
    return f"{where} · {info.total_timesteps:,} timesteps · {status}{speed}"


def _ordinal(n: int) -> str:
    return f"{n}{'th' if 10 <= n % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th')}"


def ticking(info) -> bool:
    """Whether the view redraws on a timer: following, training, or about to train.

    Resume on a paused run whose worker is still alive changes only the command
    (``desired``); the status stays "paused" until the worker's next loop, so the
    command counts too, or the view that pressed Resume would never tick.
    """
    return info is not None and (follow or info.training or info.step_requests > 0
                                 or st.session_state.trpo_playing)


@st.fragment(run_every=REFRESH_S if ticking(info) else None)
def run_view() -> None:
    if run_id is None:
        st.info("Press **Start** to train, or **Step** for a single update. Stored runs are "
                "listed in the Run library.")
        return
    store = registry().store
    current = store.run(run_id)
    watching(run_id)
    records = records_of(run_id)
    if ticking(current) != ticking(info):  # started or ended: redraw the controls
        st.rerun(scope="app")
    training = current.training
    shown = len(records) - 1
    line = st.empty()
    if not training and len(records) > 1:
        shown = replay_controls(run_id, len(records))
    line.markdown(status_line(current, records, shown))
    if not records:
        return
    visible = records[: shown + 1]
    learning, history = overview_figures(run_id, len(visible), fingerprint(visible[-1]), visible)
    live = ticking(current)
    left, right = st.columns(2)
    draw(left, learning, "trpo_learning", live)
    draw(right, history, "trpo_history", live)

    st.subheader("One update in detail")
    if len(visible) > 1 and not training:
        index = st.slider("Update to inspect", 1, len(visible), len(visible), key="trpo_inspect")
    else:
        index = len(visible)
    record = visible[index - 1]
    detail = detail_figures(run_id, record.update, fingerprint(record), record)
    left, right = st.columns(2)
    draw(left, detail.cg, "trpo_cg", live)
    left.caption(plain(cg_precision_note(record)))
    draw(right, detail.line_search, "trpo_line_search", live)
    left, right = st.columns([3, 2])
    if detail.slice is not None:
        draw(left, detail.slice, "trpo_slice", live)
    elif detail.slice_error:
        left.warning(plain(detail.slice_error))
    else:
        left.info("No trust-region slice was stored for this update.")
    with right:
        share = damping_share(record, current.config.cg_damping)
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
        rollout = rollout_of(run_id, current.updated)
        if rollout is not None:
            st.image(rollout[1], caption=f"The policy acting after update {rollout[0] + 1}")


def replay_controls(run_id: str, count: int) -> int:
    """Talk mode for a run that is not training: step or play through its updates."""
    replay = st.session_state.trpo_replay
    shown = min(replay.get(run_id, count - 1), count - 1)
    if st.session_state.trpo_playing:
        shown = shown + 1
        if shown >= count - 1:
            shown = count - 1
            st.session_state.trpo_playing = False
            st.rerun(scope="app")
    replay[run_id] = shown
    c1, c2, c3, c4 = st.columns([1, 1, 1, 5], vertical_alignment="center")
    if c1.button("First", icon=":material/first_page:", key="replay_first"):
        replay[run_id] = shown = 0
    if c2.button("Next", icon=":material/skip_next:", key="replay_next"):
        replay[run_id] = shown = min(shown + 1, count - 1)
    playing = st.session_state.trpo_playing
    if c3.button("Hold" if playing else "Replay", key="replay_play",
                 icon=":material/pause:" if playing else ":material/play_arrow:"):
        st.session_state.trpo_playing = not playing
        if not playing and shown >= count - 1:
            replay[run_id] = 0
        st.rerun(scope="app")
    c4.caption(f"Replay (talk mode): showing update {shown + 1} of {count}.")
    return shown


run_view()
