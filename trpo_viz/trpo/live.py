"""A training run as a web page drives it: limits, per-update slices, rollout frames, archives.

One :class:`LiveRun` per browser session. It wraps a :class:`TRPOTrainer`, keeps the
trust-region slice of every update (so a saved run can be replayed later, slices
included, without training: "talk mode"), and bounds what one session may ask for.
No Streamlit here: the page only holds a LiveRun in its session state.
"""

from __future__ import annotations

import dataclasses
import io
import threading
import time
import weakref
import zipfile

import numpy as np

from trpo_viz.figures.trpo import rollout_gif
from trpo_viz.trpo.archive import ArchiveError
from trpo_viz.trpo.config import TRPOConfig
from trpo_viz.trpo.record import UpdateRecord
from trpo_viz.trpo.saved_run import read_replay
from trpo_viz.trpo.trainer import TRPOTrainer

MAX_CONCURRENT_RUNS = 4  # live trainers per server process
MAX_BATCH = 8192  # transitions per update (n_envs · n_steps)
MAX_HIDDEN = 256  # units per hidden layer
MAX_LAYERS = 3
MAX_TIMESTEPS = 2_000_000
MAX_UPLOAD_BYTES = 50 * 2**20
SLICE_GRID = 17  # points per axis of the trust-region slice (17² policy evaluations)
SLICE_ALPHAS = np.linspace(-0.5, 1.5, SLICE_GRID)
SLICE_BETAS = np.linspace(-1.25, 1.25, SLICE_GRID)
FRAME_SIZE = (160, 240)  # rendered rollout frames are shrunk to this (height, width)

_SLICE_KEYS = ("alphas", "betas", "improvement", "kl", "quadratic_form", "candidates")


class RunLimitError(ValueError):
    """The request would exceed what one session or the server may use."""


class ReplayError(ArchiveError, RunLimitError):
    """An uploaded file is not a valid saved run (also a RunLimitError, as before)."""


_live_runs: weakref.WeakSet = weakref.WeakSet()
_live_runs_lock = threading.Lock()


def check_limits(config: TRPOConfig) -> None:
    """Refuse configurations that would let one session starve the others."""
    config.validate()
    if config.batch_size > MAX_BATCH:
        raise RunLimitError(f"batch size {config.batch_size} exceeds the limit of {MAX_BATCH}")
    if len(config.hidden_sizes) > MAX_LAYERS or max(config.hidden_sizes) > MAX_HIDDEN:
        raise RunLimitError(f"networks are limited to {MAX_LAYERS} layers of {MAX_HIDDEN} units")
    if config.total_timesteps > MAX_TIMESTEPS:
        raise RunLimitError(f"total timesteps are limited to {MAX_TIMESTEPS:,}")


class LiveRun:
    """A session's run: live (a trainer) or replayed from an archive (records only)."""

    def __init__(self, trainer: TRPOTrainer | None, records=None, slices=None, config=None):
        self.trainer = trainer
        self.config = trainer.config if trainer is not None else config
        self._records = records if records is not None else []
        self.slices: dict[int, dict] = slices or {}
        self.frames: list[np.ndarray] = []
        self.frames_update: int | None = None
        self.rollout_gif: bytes | None = None
        self._train_seconds = 0.0
        self._train_steps = 0
        # A download runs to_bytes on Streamlit's own thread, possibly during a training tick.
        self._lock = threading.Lock()

    @classmethod
    def start(cls, config: TRPOConfig) -> LiveRun:
        """A new live run, if the server has room for one more."""
        check_limits(config)
        with _live_runs_lock:
            if len(_live_runs) >= MAX_CONCURRENT_RUNS:
                raise RunLimitError(
                    f"the server is already training {MAX_CONCURRENT_RUNS} runs; try again later"
                )
            run = cls(TRPOTrainer(config))
            _live_runs.add(run)
        return run

    @property
    def live(self) -> bool:
        return self.trainer is not None

    @property
    def records(self) -> list[UpdateRecord]:
        return self.trainer.records if self.trainer is not None else self._records

    @property
    def steps_per_second(self) -> float:
        return self._train_steps / self._train_seconds if self._train_seconds else 0.0

    def step(self) -> UpdateRecord:
        """One TRPO update, with its trust-region slice kept for later."""
        with self._lock:
            start = time.perf_counter()
            record = self.trainer.step()
            self._train_seconds += time.perf_counter() - start
            self._train_steps += self.config.batch_size
            plane = self.trainer.trust_region_slice(SLICE_ALPHAS, SLICE_BETAS)
            self.slices[record.update] = compact_slice(plane)
        return record

    def slice_for(self, update: int) -> dict | None:
        return self.slices.get(update)

    def refresh_frames(self, max_frames: int = 120, every: int = 10) -> list[np.ndarray]:
        """Render a short rollout of the current policy, at most once per ``every`` updates."""
        if self.trainer is None:
            return self.frames
        latest = len(self.records)
        if self.frames_update is None or latest - self.frames_update >= every:
            frames = self.trainer.render_rollout(max_frames=max_frames)
            self.frames = [shrink(frame, FRAME_SIZE) for frame in frames[::2]]
            self.frames_update = latest
            self.rollout_gif = rollout_gif(self.frames)
        return self.frames

    def close(self) -> None:
        if self.trainer is not None:
            self.trainer.close()

    # --- archives: the trainer's zip plus the slices ---

    def to_bytes(self) -> bytes:
        if self.trainer is None:
            raise RunLimitError("a replayed run is saved already: download the original file")
        with self._lock:  # a consistent snapshot: never half an update
            buffer = io.BytesIO(self.trainer.to_bytes())
            slices = _slices_to_npz(self.slices)
        with zipfile.ZipFile(buffer, "a", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("slices.npz", slices)
        return buffer.getvalue()

    @classmethod
    def replay(cls, data: bytes) -> LiveRun:
        """A run loaded from :meth:`to_bytes`, for replay (no trainer, nothing trains).

        Every part is validated first (:mod:`trpo_viz.trpo.saved_run`): a file that is not a
        valid run raises :class:`ReplayError`, naming its first problem.
        """
        if len(data) > MAX_UPLOAD_BYTES:
            raise RunLimitError(f"the file is larger than {MAX_UPLOAD_BYTES // 2**20} MiB")
        try:
            config, records, slices = read_replay(data)
        except ArchiveError as error:
            raise ReplayError(str(error)) from None
        return cls(None, records=records, slices=slices, config=config)


def compact_slice(plane: dict) -> dict:
    """The parts of a trust-region slice the figure needs, as float32 arrays."""
    out = {k: np.asarray(plane[k], np.float32) for k in _SLICE_KEYS}
    out["max_kl"] = float(plane["max_kl"])
    out["accepted"] = None if plane["accepted"] is None else tuple(plane["accepted"])
    return out


def _slices_to_npz(slices: dict[int, dict]) -> bytes:
    arrays = {}
    for update, plane in slices.items():
        for key in _SLICE_KEYS:
            arrays[f"{update}/{key}"] = plane[key]
        arrays[f"{update}/max_kl"] = np.float64(plane["max_kl"])
        arrays[f"{update}/accepted"] = np.asarray(
            plane["accepted"] if plane["accepted"] is not None else [np.nan, np.nan]
        )
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


def shrink(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour downscale of an RGB frame to at most ``size`` (height, width)."""
    height, width = frame.shape[:2]
    rows = np.linspace(0, height - 1, min(size[0], height)).astype(int)
    cols = np.linspace(0, width - 1, min(size[1], width)).astype(int)
    return frame[rows][:, cols]


def config_from_form(env_id: str, **values) -> TRPOConfig:
    """A config from the task's defaults overridden by form values (validated, bounded)."""
    from trpo_viz.trpo.config import default_config

    known = {f.name for f in dataclasses.fields(TRPOConfig)}
    unknown = set(values) - known
    if unknown:
        raise RunLimitError(f"unknown settings: {', '.join(sorted(unknown))}")
    config = default_config(env_id, **values)
    check_limits(config)
    return config
