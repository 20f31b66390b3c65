"""A run trained for real, as the app trains one, for tests that read a trained run.

The worker's own loop (:func:`trpo_viz.runs.worker.train_loop`) trains it into a real
SQLite run store, slices and all; the run is then read back from the store and exported
as the library's download does (:func:`trpo_viz.runs.archive.export_run`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass
class TrainedRun:
    config: object  # TRPOConfig
    run_id: str
    db: Path  # the run store's database file
    records: list  # UpdateRecord, as the store gives them back
    slices: dict[int, dict]  # update -> trust-region slice, as the store gives it back
    archive: bytes  # export_run: the zip a download or `runs export` writes
    saved: Path  # TRPOTrainer.save at the end (what `train --save` writes)
    params: list[np.ndarray]  # the policy's weights at the end
    rng_state: dict  # the trainer's RNG state at the end
    total_timesteps: int
    rollout: object  # runs.worker.latest_rollout: a GIF or the note saying why not


def train_stored_run(config, folder: Path, updates: int, rollout_every: int | None = None):
    """``updates`` updates of ``config`` trained by the worker's loop into ``folder``."""
    from trpo_viz.runs.archive import export_run
    from trpo_viz.runs.store import RunStore
    from trpo_viz.runs.validate import slice_from_npz
    from trpo_viz.runs.worker import LoopSettings, latest_rollout, train_loop

    config = dataclasses.replace(config, total_timesteps=updates * config.batch_size)
    folder.mkdir(parents=True, exist_ok=True)
    db = folder / "runs.sqlite3"
    end = {}

    def on_finish(trainer) -> None:
        trainer.save(folder / "saved")
        end["params"] = [v.numpy().copy() for v in trainer.policy.params]
        end["rng_state"] = trainer.rng.bit_generator.state
        end["total_timesteps"] = trainer.total_timesteps

    with RunStore(db) as store:
        run_id = store.create_run(config, source="cli", status="starting", desired="run")
        settings = LoopSettings(idle_timeout=None, paused_grace=None, slices=True,
                                rollout_every=rollout_every)
        status = train_loop(store, run_id, settings, on_finish=on_finish)
        assert status == "finished", status
        records = store.records(run_id)
        slices = {update: slice_from_npz(data, records[update])
                  for update, data in store.slices(run_id).items()}
        return TrainedRun(config, run_id, db, records, slices, export_run(store, run_id),
                          folder / "saved", end["params"], end["rng_state"],
                          end["total_timesteps"], latest_rollout(store, run_id))
