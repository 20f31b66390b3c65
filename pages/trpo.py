"""TRPO live: a view of one stored run, trained by the server's worker, never by this page.

URL: ``/trpo`` (settings; Start creates a run), ``/trpo?run=<id>`` (that run: a reload,
a second tab or a link shows the same run with its whole history),
``/trpo?run=<id>&follow=1`` (read-only: no settings, no controls), and ``&beside=<id>``
(a second run of the same seed with another variant, overlaid on the first).

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
import time

import streamlit as st
from streamlit.runtime.pages_manager import PagesManager

if "entered_through_app" not in st.session_state:  # run by Streamlit's legacy pages/ mode
    PagesManager.uses_pages_directory = False  # leave it (see app.py) and go through app.py
    st.rerun()  # before the heavy imports below: the real app appears at once

from app_parts import plain
from app_parts.run_registry import run_registry
from app_parts.trpo_charts import (
    beside_figure,
    detail_figures,
    draw,
    fingerprint,
    overview_figures,
    rollout_of,
)
from app_parts.trpo_form import VARIANT_NAMES, settings_form
from trpo_viz.runs.html import stored_run_html
from trpo_viz.runs.store import StoreError
from trpo_viz.trpo.live import (
    describe_config,
    variant_of,
)
from trpo_viz.trpo.numerics import (
    EXPLAINED_VARIANCE_HELP,
    cg_precision_note,
    cg_stop_text,
    damping_share,
    explained_variance_text,
)
from trpo_viz.trpo.variants import VARIANTS

REFRESH_S = 1.0  # a watching view redraws this often (a fragment tick): once a second
TOUCH_S = 15.0  # a view tells the store it is watching at most this often
REPLAY_S = 0.6  # seconds per update while a replay plays
ENDED = ("finished", "stopped", "failed", "imported")

st.session_state.setdefault("trpo_records", {})
st.session_state.setdefault("trpo_replay", {})
st.session_state.setdefault("trpo_playing", False)
st.session_state.setdefault("trpo_error", None)
st.session_state.setdefault("trpo_touched", {})


def records_of(run_id: str) -> list:
    """Every record of the run, reading only those this session has not read yet."""
    cached = st.session_state.trpo_records.setdefault(run_id, [])
    cached.extend(run_registry().store.records(run_id, start=len(cached)))
    return cached


def watching(run_id: str) -> None:
    """Keep the run from pausing itself for want of a viewer (at most one write per TOUCH_S)."""
    last = st.session_state.trpo_touched.get(run_id, -TOUCH_S)
    if time.monotonic() - last >= TOUCH_S:
        run_registry().view(run_id)
        st.session_state.trpo_touched[run_id] = time.monotonic()


def set_run(run_id: str | None) -> None:
    st.query_params.pop("beside", None)
    if run_id is None:
        st.query_params.pop("run", None)
        st.query_params.pop("follow", None)
    else:
        st.query_params["run"] = run_id


# ---- Which run? ----------------------------------------------------------------------------
run_id = st.query_params.get("run")
follow = st.query_params.get("follow") == "1"
info = None
if run_id is not None:
    try:
        info = run_registry().view(run_id)
        st.session_state.trpo_touched[run_id] = time.monotonic()
    except StoreError as error:
        st.error(plain(f"Cannot show this run: {error}."), icon=":material/error:")
        if st.button("Start a new run instead"):
            set_run(None)
            st.rerun()
        st.stop()
elif follow:
    st.error("This follow link names no run (it needs ?run=<id>&follow=1).",
             icon=":material/error:")
    st.stop()
beside_id = st.query_params.get("beside") if info is not None else None
beside = None
if beside_id is not None:
    try:
        beside = run_registry().view(beside_id)
    except StoreError as error:
        st.warning(plain(f"Cannot show the run beside this one: {error}."), icon=":material/error:")
        beside_id = None

st.title("TRPO live")
st.caption(
    "Each update: the policy gradient g, CG on the Fisher system F s = g (Fisher-vector "
    "products are Hessian-vector products of the mean KL), the step scaled to the KL "
    "bound δ, and a backtracking line search that accepts the first candidate with "
    "KL ≤ δ and a positive surrogate improvement. The server trains; this page watches."
)

# ---- Settings (not in follow mode) ---------------------------------------------------------
settings = None if follow else settings_form(info)


def command(action: str) -> None:
    """Start a run from the settings, or command the shown one; errors go by the controls."""
    st.session_state.trpo_error = None
    try:
        if action in ("start", "step") and info is None:
            new_id = run_registry().create(settings.config(), start=action == "start")
            if action == "step":
                run_registry().step(new_id)
            set_run(new_id)
        elif action == "start":
            run_registry().resume(info.id)
        elif action == "step":
            run_registry().step(info.id)
        elif action == "pause":
            run_registry().pause(info.id)
        elif action == "stop":
            run_registry().stop(info.id)
        elif action == "beside":
            chosen = st.session_state.trpo_beside_variant
            config = variant_of(info.config, chosen,
                                pg_lr=settings.values["pg_lr"] if chosen == "vanilla-pg" else None)
            st.query_params["beside"] = run_registry().create(
                config, name=f"{info.name} · {chosen}", start=True)
        elif action == "new":
            run_registry().release(info.id)  # paused: its worker's memory goes back now
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
            also = f"&beside={beside.id}" if beside is not None else ""
            st.code(f"{base}?run={info.id}&follow=1{also}", language=None)
    if st.session_state.trpo_error:
        st.error(plain(st.session_state.trpo_error), icon=":material/error:")
    if info is not None:
        st.caption(plain(f"Applied to this run: {describe_config(info.config)}."))
        differing = settings.differences(info.config)
        if differing:
            st.caption(plain(f"The form differs from this run in {', '.join(differing)}: press "
                             "New run, then Start, to apply it."))
    if info is not None and beside is None:
        with st.expander("Run a second variant beside this one (same seed)"):
            c1, c2 = st.columns([3, 1], vertical_alignment="bottom")
            c1.selectbox("Variant of the second run",
                         [v for v in VARIANTS if v != info.config.variant],
                         key="trpo_beside_variant", format_func=VARIANT_NAMES.get)
            c2.button("Start beside", icon=":material/compare_arrows:", width="stretch",
                      on_click=command, args=("beside",))
            st.caption("Every setting of this run, its seed included, with another variant "
                       "(vanilla-pg takes the form's learning rate). Both train at once; their "
                       "learning curves, KL per update and rejected steps are overlaid.")
elif info is not None:
    st.caption("Following a run: this view is read-only and updates as the run trains.")
if info is not None:  # outside the ticking fragment: the button keeps its callable
    st.download_button(
        "Download for slides (.html)",
        # built on click from the updates stored by then; the partial holds two strings,
        # not the page's globals
        functools.partial(stored_run_html, str(run_registry().db_path), info.id),
        file_name=f"trpo-{info.env_id}-{info.id}.html", mime="text/html", on_click="ignore",
        icon=":material/slideshow:",
        help="One self-contained HTML file that opens offline, without Python: the learning "
             "curve and every update's CG residuals, line search and trust-region slice, "
             "with a slider. It holds the updates stored when you click.",
    )


# ---- The run, redrawn at the page's own pace -----------------------------------------------
def status_line(info, records, shown: int) -> str:
    status = info.status
    if status == "queued":
        position = run_registry().queue_position(info.id)
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


def ticking(info, other=None) -> bool:
    """Whether the view redraws on a timer: following, training, or about to train (the
    run, or the run beside it).

    Resume on a paused run whose worker is still alive changes only the command
    (``desired``); the status stays "paused" until the worker's next loop, so the
    command counts too, or the view that pressed Resume would never tick.
    """
    return info is not None and (follow or info.training or info.step_requests > 0
                                 or st.session_state.trpo_playing
                                 or (other is not None and other.training))


@st.fragment(run_every=REFRESH_S if ticking(info, beside) else None)
def run_view() -> None:
    if run_id is None:
        st.info("Press **Start** to train, or **Step** for a single update. Stored runs are "
                "listed in the Run library.")
        return
    store = run_registry().store
    current = store.run(run_id)
    watching(run_id)
    records = records_of(run_id)
    other = store.run(beside_id) if beside_id is not None else None
    if ticking(current, other) != ticking(info, beside):  # started or ended: redraw controls
        st.rerun(scope="app")
    training = current.training
    shown = len(records) - 1
    if not training and len(records) > 1:  # the replay's buttons move the line above them
        line = st.empty()
        shown = replay_controls(run_id, len(records))
        line.markdown(status_line(current, records, shown))
    else:  # no placeholder while ticking: its empty frame would blink once a second
        st.markdown(status_line(current, records, shown))
    if not records:
        return
    visible = records[: shown + 1]
    overview = overview_figures(run_id, len(visible), fingerprint(visible[-1]), visible)
    live = ticking(current, other)
    left, right = st.columns(2)
    draw(left, overview.learning, "trpo_learning", live)
    draw(right, overview.history, "trpo_history", live)
    if other is not None:
        beside_view(current, records, other, live)
    if overview.exact is not None:
        draw(st.container(), overview.exact, "trpo_exact_history", live)

    st.subheader("One update in detail")
    if len(visible) > 1 and not training:
        index = st.slider("Update to inspect", 1, len(visible), len(visible), key="trpo_inspect")
    else:
        index = len(visible)
    record = visible[index - 1]
    damping = current.config.cg_damping
    detail = detail_figures(run_id, record.update, fingerprint(record), damping, record, store)
    left, right = st.columns(2)
    if record.cg_iterations > 0:
        draw(left, detail.cg, "trpo_cg", live)
        left.caption(plain(cg_precision_note(record)))
    else:
        left.info(plain(f"This update ran no CG: the {record.variant} variant steps along the "
                        "plain gradient g, without the Fisher."))
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
        rollout = rollout_of(run_id, current.updated, store)
        if rollout is not None and rollout.gif is not None:
            st.image(rollout.gif, caption=f"The policy acting after update {rollout.update + 1}")
        elif rollout is not None:
            st.info(plain(rollout.note), icon=":material/videocam_off:")

    if record.cg_iterations > 0:  # CG against the exact natural gradient, F's spectrum
        left, right = st.columns(2)
        if detail.exact is not None:
            draw(left, detail.exact, "trpo_cg_exact", live)
        else:
            left.info(plain(detail.exact_note), icon=":material/info:")
        draw(right, detail.spectrum, "trpo_spectrum", live)


def beside_view(current, records, other, live: bool) -> None:
    """The run beside this one (same seed, another variant), overlaid on it."""
    other_records = records_of(other.id)
    st.subheader(plain(f"{VARIANT_NAMES.get(current.config.variant, current.config.variant)} "
                       f"beside {VARIANT_NAMES.get(other.config.variant, other.config.variant)}"))
    if not records or not other_records:
        st.caption("The overlay appears once both runs have an update.")
        return
    runs = [(f"{current.config.variant} ({current.id})", records),
            (f"{other.config.variant} ({other.id})", other_records)]
    overlay, summaries = beside_figure(current.id, fingerprint(records[-1]), other.id,
                                       fingerprint(other_records[-1]), runs)
    draw(st.container(), overlay, "trpo_beside", live)
    for line in summaries:
        st.caption(plain(line))
    st.caption(plain(f"The second run, {other.id}, is {other.status} after "
                     f"{len(other_records)} updates: open ?run={other.id} to pause or stop it."))


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
