"""Saving and loading a trainer: config, records, counters, RNG state and weights.

:class:`TrainerPersistence` is a mixin of :class:`~trpo_viz.trpo.trainer.TRPOTrainer`;
what a saved run must contain, and how every file is checked before use, is
:mod:`trpo_viz.trpo.saved_run`.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

import gymnasium as gym
import numpy as np

from trpo_viz.trpo.archive import TRAINER_FILES, ArchiveError, read_dir, read_zip, refuse
from trpo_viz.trpo.saved_run import check_trainer_arrays, read_trainer_files

if TYPE_CHECKING:
    from trpo_viz.trpo.trainer import TRPOTrainer


class TrainerPersistence:
    """save/load (a directory) and to_bytes/from_bytes (one zip) of a trainer."""

    def _state_files(self, records: bool = True) -> dict[str, bytes]:
        """config.json, state.json, arrays.npz and (``records``) records.json as bytes.

        ``records=False`` is a checkpoint's cost: the weights, not the whole history
        (a run store keeps the records in rows of their own).
        """
        arrays = {f"policy/{i}": v.numpy() for i, v in enumerate(self.policy.params)}
        arrays |= {f"value/{i}": v.numpy() for i, v in enumerate(self.value.params)}
        arrays |= {f"adam/{i}": v.numpy() for i, v in enumerate(self.value_optimizer.state)}
        arrays |= {f"normalizer/{k}": np.asarray(v) for k, v in self.normalizer.state().items()}
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        state = {
            "total_timesteps": self.total_timesteps,
            "rng_state": self.rng.bit_generator.state,
        }
        files = {
            "config.json": json.dumps(self.config.to_dict(), indent=1).encode(),
            "state.json": json.dumps(state).encode(),
            "arrays.npz": buffer.getvalue(),
        }
        if records:
            files["records.json"] = json.dumps([r.to_dict() for r in self.records]).encode()
        return files

    @classmethod
    def _from_state_files(cls, files: dict[str, bytes]) -> TRPOTrainer:
        """A trainer from its saved files, each validated first (:mod:`~trpo_viz.trpo.saved_run`).

        A damaged or foreign file raises :class:`~trpo_viz.trpo.archive.ArchiveError`.
        """
        saved = read_trainer_files(files)
        config = saved.config
        try:
            trainer = cls(config)
        except gym.error.Error as error:
            refuse("config.json", f"environment {config.env_id!r} cannot be made here ({error})")
        try:
            check_trainer_arrays(saved.arrays, trainer)  # shapes match this config's networks
        except ArchiveError:
            trainer.close()
            raise
        arrays = saved.arrays
        for prefix, variables in (
            ("policy", trainer.policy.params),
            ("value", trainer.value.params),
            ("adam", trainer.value_optimizer.state),
        ):
            for i, var in enumerate(variables):
                var.assign(arrays[f"{prefix}/{i}"])
        trainer.normalizer.load_state(
            {k.split("/", 1)[1]: v for k, v in arrays.items() if k.startswith("normalizer/")}
        )
        trainer.total_timesteps = saved.total_timesteps
        trainer.rng.bit_generator.state = saved.rng_state
        trainer.records = saved.records
        trainer._sync_numpy_policy()
        # Environment states cannot be saved: start fresh episodes, seeded by the update count.
        seed = config.seed + 1_000_003 * (len(trainer.records) + 1)
        trainer.collector.reset(seed, update_normalizer=False)
        return trainer

    def save(self, path_dir) -> Path:
        """Write config.json, records.json, state.json and arrays.npz into ``path_dir``."""
        path = Path(path_dir)
        path.mkdir(parents=True, exist_ok=True)
        for name, data in self._state_files().items():
            (path / name).write_bytes(data)
        return path

    @classmethod
    def load(cls, path_dir) -> TRPOTrainer:
        """The run saved by :meth:`save` (:class:`~trpo_viz.trpo.archive.ArchiveError` if bad)."""
        return cls._from_state_files(read_dir(path_dir))

    def to_bytes(self) -> bytes:
        """The saved run as one zip archive in memory (for a download button)."""
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for name, data in self._state_files().items():
                archive.writestr(name, data)
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> TRPOTrainer:
        """The run of :meth:`to_bytes` (:class:`~trpo_viz.trpo.archive.ArchiveError` if bad)."""
        return cls._from_state_files(read_zip(data, required=TRAINER_FILES, optional=()))
