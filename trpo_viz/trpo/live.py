"""A training run as a web page drives it: limits, per-update slices, rollout frames, archives.

One :class:`LiveRun` per browser session. It wraps a :class:`TRPOTrainer`, keeps the
trust-region slice of every update (so a saved run can be replayed later, slices
included, without training: "talk mode"), and bounds what one session may ask for.
No Streamlit here: the page only holds a LiveRun in its session state.
"""

from __future__ import annotations

import dataclasses
import io
import numbers
import threading
import time
import weakref
import zipfile

import numpy as np

from trpo_viz.figures.trpo import rollout_gif
from trpo_viz.trpo.archive import ArchiveError
from trpo_viz.trpo.config import TRPOConfig
from trpo_viz.trpo.limits import (  # noqa: F401 - re-exported
    MAX_BATCH,
    MAX_EXACT_FISHER_DIM,
    MAX_HIDDEN,
    MAX_LAYERS,
    MAX_TIMESTEPS,
    RunLimitError,
    check_exact_fisher,
    check_limits,
    exact_fisher_size,
)
from trpo_viz.trpo.record import UpdateRecord
from trpo_viz.trpo.saved_run import read_replay
from trpo_viz.trpo.trainer import TRPOTrainer
from trpo_viz.trpo.variants import VARIANTS

MAX_CONCURRENT_RUNS = 4  # live trainers per server process
MAX_UPLOAD_BYTES = 50 * 2**20
SLICE_GRID = 17  # points per axis of the trust-region slice (17² policy evaluations)
SLICE_ALPHAS = np.linspace(-0.5, 1.5, SLICE_GRID)
SLICE_BETAS = np.linspace(-1.25, 1.25, SLICE_GRID)
FRAME_SIZE = (160, 240)  # rendered rollout frames are shrunk to this (height, width)

_SLICE_KEYS = ("alphas", "betas", "improvement", "kl", "quadratic_form", "candidates")
# Written since the undamped ellipse was added; runs saved before lack them.
_OPTIONAL_SLICE_KEYS = ("quadratic_form_undamped",)


class FormError(ValueError):
    """A form value the page cannot use; the message names the field as the form does."""


class ReplayError(ArchiveError, RunLimitError):
    """An uploaded file is not a valid saved run (also a RunLimitError, as before)."""


_live_runs: weakref.WeakSet = weakref.WeakSet()
_live_runs_lock = threading.Lock()


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

    @property
    def finished(self) -> bool:
        """A live run that has reached its total timesteps: it trains no further."""
        return self.trainer is not None and self.trainer.done

    @property
    def finished_message(self) -> str | None:
        """ "finished (N timesteps reached)" once :attr:`finished`, else None."""
        if not self.finished:
            return None
        return (
            f"finished ({self.trainer.total_timesteps:,} timesteps reached; the limit was "
            f"{self.config.total_timesteps:,}, in whole batches of {self.config.batch_size:,})"
        )

    def step(self) -> UpdateRecord:
        """One TRPO update, with its trust-region slice kept for later.

        A finished run raises :class:`RunLimitError` and trains nothing: the run ends at the
        first update that reaches ``config.total_timesteps`` (whole batches, never more).
        """
        with self._lock:
            if self.trainer.done:
                raise RunLimitError(f"The run is {self.finished_message}.")
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
        """Render a short rollout of the current policy, at most once per ``every`` updates.

        Raises :class:`~trpo_viz.trpo.pictures.RenderUnavailable` (its message is the note
        to show instead) where this machine cannot render the task; the run is unaffected.
        """
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
        """End the run: close its trainer and give its place among the live runs back now."""
        if self.trainer is not None:
            self.trainer.close()
        with _live_runs_lock:
            _live_runs.discard(self)

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
    out |= {k: np.asarray(plane[k], np.float32) for k in _OPTIONAL_SLICE_KEYS if k in plane}
    if "damping" in plane:
        out["damping"] = float(plane["damping"])
    out["max_kl"] = float(plane["max_kl"])
    out["accepted"] = None if plane["accepted"] is None else tuple(plane["accepted"])
    return out


def _slices_to_npz(slices: dict[int, dict]) -> bytes:
    arrays = {}
    for update, plane in slices.items():
        for key in _SLICE_KEYS:
            arrays[f"{update}/{key}"] = plane[key]
        for key in _OPTIONAL_SLICE_KEYS:
            if key in plane:
                arrays[f"{update}/{key}"] = plane[key]
        if "damping" in plane:
            arrays[f"{update}/damping"] = np.float64(plane["damping"])
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


# --- the page's form: its labels, its ranges, its words -----------------------------------------

FORM_LABELS = {
    "max_kl": "δ (max KL)",
    "cg_max_steps": "CG iterations",
    "cg_damping": "CG damping λ",
    "cg_rtol": "CG tolerance",
    "fvp_dtype": "FVP/CG precision",
    "seed": "Seed",
    "line_search_shrink": "Line-search shrink",
    "max_backtracks": "Max backtracks",
    "n_steps": "Steps per update",
    "n_envs": "Steps per update",
    "gamma": "γ (discount)",
    "gae_lambda": "λ (GAE)",
    "total_timesteps": "Total timesteps",
    "hidden_sizes": "Hidden sizes",
    "variant": "Variant",
    "pg_lr": "Learning rate (vanilla-pg)",
    "exact_fisher": "Exact Fisher beside CG",
}
# Inclusive ranges the page accepts (the meaningful ones; the config itself allows more).
FORM_RANGES = {
    "max_kl": (1e-6, 1.0),
    "cg_max_steps": (1, 50),
    "cg_damping": (0.0, 10.0),
    "seed": (0, 2**31 - 1),
    "line_search_shrink": (0.1, 0.95),
    "max_backtracks": (0, 20),
    "gamma": (0.0, 1.0),
    "gae_lambda": (0.0, 1.0),
    "total_timesteps": (1_000, MAX_TIMESTEPS),
    # vanilla-pg's Δ = pg_lr·g: 1 is about TRPO's δ on CartPole's first step, 10 overshoots
    # (KL ≈ 1); the range leaves room to show a collapse without unbounded steps.
    "pg_lr": (1e-4, 100.0),
}
# What each variant keeps of TRPO, in the words describe_config uses.
VARIANT_TEXT = {
    "trpo": "TRPO (natural step by CG scaled to δ, line search with KL ≤ δ)",
    "npg": "npg (natural step by CG scaled to δ, no line search: KL not checked)",
    "no-kl-check": "no-kl-check (natural step by CG scaled to δ, line search on the surrogate "
                   "only: KL not checked)",
    "gradient": "gradient (g instead of the natural gradient, scaled to the same quadratic KL, "
                "line search with KL ≤ δ)",
    "vanilla-pg": "vanilla-pg (Δ = {pg_lr}·g: no Fisher, no trust region, no line search)",
}
MAX_HIDDEN_TEXT = 100  # characters of the hidden-sizes field that are read at all


def parse_hidden_sizes(text: str) -> tuple[int, ...]:
    """The "Hidden sizes" field ("64, 64") as layer sizes; FormError in the form's words."""
    label = FORM_LABELS["hidden_sizes"]
    if len(text) > MAX_HIDDEN_TEXT:
        raise FormError(f"{label}: at most {MAX_HIDDEN_TEXT} characters, e.g. 64, 64")
    parts = [p for p in text.replace(",", " ").split() if p]
    if not parts:
        raise FormError(f"{label}: give at least one layer size, e.g. 64, 64")
    if not all(p.isascii() and p.isdigit() for p in parts):
        bad = next(p for p in parts if not (p.isascii() and p.isdigit()))
        raise FormError(
            f"{label}: whole numbers separated by commas, e.g. 64, 64 ({bad!r} is not one)"
        )
    sizes = tuple(int(p) for p in parts)
    if min(sizes) < 1:
        raise FormError(f"{label}: every layer needs at least 1 unit, e.g. 64, 64")
    if len(sizes) > MAX_LAYERS or max(sizes) > MAX_HIDDEN:
        raise FormError(
            f"{label}: networks are limited to {MAX_LAYERS} layers of {MAX_HIDDEN} units, "
            f"got {', '.join(map(str, sizes))}"
        )
    return sizes


def in_form_words(message: str) -> str:
    """A config error ("max_kl must be …") with the field named as on the form."""
    for name, label in FORM_LABELS.items():
        if message.startswith(name + " "):
            return f"{label}: {message[len(name) + 1 :]}"
    return message


def config_from_form(env_id: str, **values) -> TRPOConfig:
    """A config from the task's defaults overridden by form values (validated, bounded).

    Out-of-range values are refused with a :class:`FormError` naming the form field and
    its range: nothing is clamped or replaced. ``variant`` must be one of
    :data:`~trpo_viz.trpo.variants.VARIANTS`, ``exact_fisher`` a bool; an exact Fisher
    the trainer would skip (more parameters than ``exact_fisher_max_params``) or that
    costs too much per update (:func:`~trpo_viz.trpo.limits.check_exact_fisher`) is
    refused, not left to be skipped.
    """
    from trpo_viz.trpo.config import default_config

    known = {f.name for f in dataclasses.fields(TRPOConfig)}
    unknown = set(values) - known
    if unknown:
        raise RunLimitError(f"unknown settings: {', '.join(sorted(unknown))}")
    check_form_values(values)
    return checked_config(default_config(env_id, **values))


def check_form_values(values: dict) -> None:
    """Refuse a form value of the wrong kind or outside its range (:class:`FormError`)."""
    for name, (lo, hi) in FORM_RANGES.items():
        if name not in values:
            continue
        value = values[name]
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise FormError(
                f"{FORM_LABELS[name]}: must be a number between {lo:g} and {hi:g}, "
                f"got {value!r}"
            )
        if not lo <= value <= hi:  # NaN fails too
            raise FormError(
                f"{FORM_LABELS[name]}: must be between {lo:g} and {hi:g}, got {value:g}"
            )
    if "variant" in values and values["variant"] not in VARIANTS:
        raise FormError(
            f"{FORM_LABELS['variant']}: must be one of {', '.join(VARIANTS)}, "
            f"got {values['variant']!r}"
        )
    if "exact_fisher" in values and not isinstance(values["exact_fisher"], bool):
        raise FormError(
            f"{FORM_LABELS['exact_fisher']}: must be on or off (True or False), "
            f"got {values['exact_fisher']!r}"
        )


def checked_config(config: TRPOConfig) -> TRPOConfig:
    """``config`` if the server allows it (limits, exact-Fisher cost), in the form's words."""
    try:
        check_limits(config)
        check_exact_fisher(config)
    except RunLimitError as error:
        raise RunLimitError(in_form_words(str(error))) from None
    except ValueError as error:
        raise FormError(in_form_words(str(error))) from None
    return config


def variant_of(config: TRPOConfig, variant: str, pg_lr: float | None = None) -> TRPOConfig:
    """The same run with another variant: the same seed and every other setting.

    ``pg_lr`` (vanilla-pg's learning rate) replaces the config's when given. Both are
    checked like form values (:class:`FormError` naming the field and its range).
    """
    values = {"variant": variant} | ({} if pg_lr is None else {"pg_lr": pg_lr})
    check_form_values(values)
    return checked_config(dataclasses.replace(config, **values))


def _number(value) -> str:
    """Exactly the value that is applied, without float noise (0.999, 1e-06, 100,000)."""
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:.10g}"


def describe_config(config: TRPOConfig) -> str:
    """The settings a run applies, in the form's words (plain text)."""
    c = config
    return (
        f"δ = {_number(c.max_kl)}, CG {c.cg_max_steps} iterations "
        f"(stop at ‖r‖ ≤ {_number(c.cg_rtol)}·‖g‖), damping λ = {_number(c.cg_damping)}, "
        f"FVP/CG in {c.fvp_dtype}, line search ×{_number(c.line_search_shrink)} up to "
        f"{c.max_backtracks} backtracks, {c.batch_size:,} steps per update "
        f"({c.n_envs} envs × {c.n_steps:,}), γ = {_number(c.gamma)}, "
        f"λ_GAE = {_number(c.gae_lambda)}, hidden sizes {', '.join(map(str, c.hidden_sizes))}, "
        f"{c.total_timesteps:,} total timesteps, seed {c.seed}; "
        f"variant {describe_variant(c)}; {describe_exact_fisher(c)}"
    )


def describe_variant(config: TRPOConfig) -> str:
    """The variant and what it keeps of TRPO (vanilla-pg with its learning rate)."""
    text = VARIANT_TEXT.get(config.variant, config.variant)
    return text.format(pg_lr=_number(config.pg_lr))


def describe_exact_fisher(config: TRPOConfig) -> str:
    """Whether each update computes the exact Fisher, and if not why (plain text)."""
    cap = config.exact_fisher_max_params
    if not config.exact_fisher:
        return "exact Fisher off"
    size = exact_fisher_size(config)
    if size is None:
        return (f"exact Fisher beside CG for policies up to {cap:,} parameters (this task's "
                "size is checked when the run starts; each update records whether it was "
                "computed)")
    if size.parameters > cap:
        return (f"exact Fisher asked for but skipped: the policy has {size.parameters:,} "
                f"parameters, above the cap of {cap:,} (each update records too_large)")
    return (f"exact Fisher beside CG every update ({size.parameters:,} parameters, cap "
            f"{cap:,}; F from {size.rows:,} Jacobian rows in float64, a diagnostic that "
            "changes no step)")


def form_differences(config: TRPOConfig, values: dict) -> list[str]:
    """Form labels whose values differ from ``config`` (what a Reset would change)."""
    labels = []
    for name, value in values.items():
        current = getattr(config, name, None)
        if name == "hidden_sizes":
            current, value = tuple(current), tuple(value)
        if current != value and FORM_LABELS.get(name, name) not in labels:
            labels.append(FORM_LABELS.get(name, name))
    return labels
