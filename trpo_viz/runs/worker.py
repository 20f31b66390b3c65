"""Training a stored run: the loop a worker process (or ``python -m trpo_viz train``) runs.

The loop owns one :class:`TRPOTrainer` and talks to the views only through the run
store: before each update it reads the run's ``desired`` command (``run``, ``pause``,
``stop``) and pending single steps; after each update it commits the record, the
trust-region slice and a checkpoint in one transaction. So Pause takes effect within
one update, a view never blocks training, and a killed worker loses at most the update
it was computing.

A worker started for a page pauses itself when nobody has viewed the run for
``idle_timeout`` seconds, and exits (freeing its trainer and its slot) when it has been
paused for ``paused_grace`` seconds; the registry starts a new one when the run is
resumed. Run it as ``python -m trpo_viz.runs.worker --db PATH --run ID``.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from trpo_viz.runs.store import RunStore
from trpo_viz.runs.validate import slice_to_npz

HEARTBEAT_S = 2.0  # how often a worker says it is alive, whatever it is doing
POLL_S = 0.1  # how often a paused worker looks for a command


@dataclass
class LoopSettings:
    idle_timeout: float | None = 600.0  # pause after this long without a viewer (None: never)
    paused_grace: float | None = 60.0  # exit after this long paused (None: wait for ever)
    slices: bool = True  # compute and store every update's trust-region slice
    rollout_every: int | None = 10  # render the policy acting every this many updates


class Heartbeat(threading.Thread):
    """Writes the worker's pid and time to its run row every HEARTBEAT_S seconds."""

    def __init__(self, db_path, run_id: str):
        super().__init__(daemon=True, name=f"heartbeat-{run_id}")
        self.db_path, self.run_id = db_path, run_id
        self.stopped = threading.Event()

    def run(self) -> None:
        store = RunStore(self.db_path)
        try:
            while not self.stopped.is_set():
                store.heartbeat(self.run_id, os.getpid())
                self.stopped.wait(HEARTBEAT_S)
        finally:
            store.close()

    def stop(self) -> None:
        self.stopped.set()
        self.join()


def load_trainer(store: RunStore, run_id: str):
    """The run's trainer: restored from its checkpoint, or new from its config."""
    from trpo_viz.runs.checkpoint import restore_trainer
    from trpo_viz.trpo.trainer import TRPOTrainer

    info = store.run(run_id)
    saved = store.checkpoint(run_id)
    if saved is None:
        store.truncate(run_id, 0)
        return TRPOTrainer(info.config)
    update, blob = saved
    store.truncate(run_id, update + 1)  # nothing after the checkpoint survives a crash anyway
    return restore_trainer(blob, store.records(run_id))


def train_loop(
    store: RunStore,
    run_id: str,
    settings: LoopSettings | None = None,
    on_update: Callable | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    on_finish: Callable | None = None,
) -> str:
    """Train ``run_id`` as its commands say until it finishes, stops or idles out.

    Returns the final status: ``finished``, ``stopped``, ``paused`` or ``interrupted``
    (``should_stop()`` turned true: a signal). ``on_update(record)`` runs after each
    stored update, ``on_finish(trainer)`` once at the end with the trainer still open
    (the CLI evaluates and saves there). A failing update marks the run ``failed`` with
    its message and re-raises; so does Ctrl-C (``interrupted``).
    """
    from trpo_viz.runs.checkpoint import checkpoint_bytes
    from trpo_viz.trpo.live import SLICE_ALPHAS, SLICE_BETAS, compact_slice

    settings = settings or LoopSettings()
    store.set_status(run_id, "starting")
    try:
        trainer = load_trainer(store, run_id)
    except Exception as error:
        store.set_status(run_id, "failed", error=f"the run could not be loaded: {error}")
        raise
    paused_since = None
    try:
        while True:
            info = store.run(run_id)
            if should_stop():  # a signal: a paused run stays paused, a training one was cut
                status = "paused" if info.desired == "pause" else "interrupted"
                break
            if info.desired == "stop":
                status = "stopped"
                break
            if trainer.done:
                status = "finished"
                break
            idle = (
                settings.idle_timeout is not None
                and info.last_viewed is not None
                and time.time() - info.last_viewed > settings.idle_timeout
            )
            if idle and info.desired == "run":
                store.command(run_id, "pause")
                store.set_status(run_id, "paused", error="paused: nobody was watching")
                continue
            if info.desired == "run" or info.step_requests > 0:
                paused_since = None
                if info.status != "running":
                    store.set_status(run_id, "running")
                record = trainer.step()
                plane = None
                if settings.slices:
                    plane = slice_to_npz(
                        compact_slice(trainer.trust_region_slice(SLICE_ALPHAS, SLICE_BETAS))
                    )
                store.append_update(
                    run_id, record, plane, checkpoint_bytes(trainer),
                    consumed_step=info.desired != "run",
                )
                if settings.rollout_every and record.update % settings.rollout_every == 0:
                    _store_rollout(store, run_id, trainer, record.update)
                if on_update is not None:
                    on_update(record)
                continue
            if info.status != "paused":
                store.set_status(run_id, "paused", error=info.error)
            paused_since = paused_since or time.monotonic()
            if (settings.paused_grace is not None
                    and time.monotonic() - paused_since > settings.paused_grace):
                status = "paused"
                break
            time.sleep(POLL_S)
        if on_finish is not None:
            on_finish(trainer)
    except KeyboardInterrupt:
        store.set_status(run_id, "interrupted", error="interrupted (Ctrl-C); Resume continues "
                         "from the last stored update", worker_pid=None)
        raise
    except Exception as error:
        store.set_status(run_id, "failed", error=f"{type(error).__name__}: {error}")
        raise
    finally:
        trainer.close()
    error = store.run(run_id).error if status == "paused" else None
    store.set_status(run_id, status, error=error, worker_pid=None)
    return status


ROLLOUT_NOTE_CHARS = 500  # the longest note stored in place of a rollout


def _store_rollout(store: RunStore, run_id: str, trainer, update: int) -> None:
    """An animated GIF of the current policy for the views; a task that cannot render is noted.

    The note (media kind ``rollout-error``, UTF-8 text) is the message of
    :class:`~trpo_viz.trpo.pictures.RenderUnavailable` ("This machine cannot render
    MuJoCo (no EGL or OSMesa): ...") or, for any other failure, the error itself.
    Training goes on either way. :func:`latest_rollout` reads whichever is newer.
    """
    from trpo_viz.figures.trpo import rollout_gif
    from trpo_viz.trpo.live import FRAME_SIZE, shrink
    from trpo_viz.trpo.pictures import RenderUnavailable

    try:
        frames = trainer.render_rollout(max_frames=120, size=FRAME_SIZE, every=2)
        gif = rollout_gif([shrink(frame, FRAME_SIZE) for frame in frames])
    except RenderUnavailable as error:
        _store_rollout_note(store, run_id, update, str(error))
        return
    except Exception as error:  # noqa: BLE001 - a picture must not stop training
        _store_rollout_note(
            store, run_id, update, f"The rollout could not be drawn: {type(error).__name__}: "
            f"{error}"
        )
        return
    store.put_media(run_id, "rollout", update, gif)


def _store_rollout_note(store: RunStore, run_id: str, update: int, note: str) -> None:
    store.put_media(run_id, "rollout-error", update, note[:ROLLOUT_NOTE_CHARS].encode())


@dataclass
class Rollout:
    """A run's latest rollout picture, or the note stored instead of it."""

    update: int  # the update after which it was rendered (0-based)
    gif: bytes | None  # an animated GIF, or None when ``note`` says why there is none
    note: str | None  # e.g. "This machine cannot render MuJoCo (no EGL or OSMesa): ..."


def latest_rollout(store: RunStore, run_id: str) -> Rollout | None:
    """The newer of the run's stored rollout GIF and rollout note; None when neither exists.

    On a tie (both from the same update) the GIF wins. A page shows ``gif`` with a
    caption, or ``note`` (e.g. with ``st.info``) when ``gif`` is None.
    """
    gif = store.media(run_id, "rollout")
    note = store.media(run_id, "rollout-error")
    if note is not None and (gif is None or note[0] > gif[0]):
        return Rollout(note[0], None, note[1].decode("utf-8", errors="replace"))
    if gif is not None:
        return Rollout(gif[0], gif[1], None)
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m trpo_viz.runs.worker")
    parser.add_argument("--db", required=True)
    parser.add_argument("--run", required=True)
    parser.add_argument("--idle-timeout", type=float, default=600.0)
    parser.add_argument("--paused-grace", type=float, default=60.0)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)

    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())

    # Alive before TensorFlow's import (seconds on a busy machine): a registry that did not
    # start this worker judges it by its heartbeat alone.
    heartbeat = Heartbeat(args.db, args.run)
    heartbeat.start()
    store = None
    try:
        from trpo_viz.quiet import import_tensorflow

        import_tensorflow()
        if args.threads:
            from trpo_viz.trpo.trainer import set_num_threads

            set_num_threads(args.threads)
        store = RunStore(args.db)
        train_loop(store, args.run, LoopSettings(args.idle_timeout, args.paused_grace),
                   should_stop=stop.is_set)
    except Exception:  # noqa: BLE001 - recorded in the run row; the log keeps the traceback
        import traceback

        traceback.print_exc()
        return 1
    finally:
        heartbeat.stop()
        if store is None:
            store = RunStore(args.db)
        store.heartbeat(args.run, None)
        store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
