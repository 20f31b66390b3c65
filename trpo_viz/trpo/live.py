"""What the TRPO views need from the core: limits, the form, slices, frames, run files.

A run is trained by a worker (:mod:`trpo_viz.runs.worker`) and read from the run store;
no page or session owns one. This module holds what the page's form and the run's
pictures share with the core: the form's labels, ranges and checks
(:func:`config_from_form`), the trust-region slice's grid (:data:`SLICE_ALPHAS`,
:data:`SLICE_BETAS`) and the part of a slice that is stored (:func:`compact_slice`), the
size of rollout frames, and :func:`read_run_file`, which validates an uploaded or imported
zip archive before anything is stored. No Streamlit here.
"""

from __future__ import annotations

import dataclasses
import numbers
from dataclasses import dataclass

import numpy as np

from trpo_viz.trpo.archive import PREFIX, ArchiveError
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
from trpo_viz.trpo.variants import VARIANTS

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


@dataclass(frozen=True)
class RunFile:
    """A run read back from its zip archive: settings, every update, every stored slice."""

    config: TRPOConfig
    records: list[UpdateRecord]
    slices: dict[int, dict]  # update -> the slice as compact_slice keeps it


def read_run_file(data: bytes) -> RunFile:
    """The run in a zip archive (``runs export``, the run library's download).

    Every part is validated first (:mod:`trpo_viz.trpo.saved_run`): a file that is not a
    valid run raises :class:`ReplayError`, naming its first problem; a file over
    :data:`MAX_UPLOAD_BYTES` is refused unread.
    """
    if len(data) > MAX_UPLOAD_BYTES:
        raise ReplayError(f"{PREFIX}the file is larger than {MAX_UPLOAD_BYTES // 2**20} MiB")
    try:
        config, records, slices = read_replay(data)
    except ArchiveError as error:
        raise ReplayError(str(error)) from None
    return RunFile(config, records, slices)


def compact_slice(plane: dict) -> dict:
    """The parts of a trust-region slice the figure needs, as float32 arrays."""
    out = {k: np.asarray(plane[k], np.float32) for k in _SLICE_KEYS}
    out |= {k: np.asarray(plane[k], np.float32) for k in _OPTIONAL_SLICE_KEYS if k in plane}
    if "damping" in plane:
        out["damping"] = float(plane["damping"])
    out["max_kl"] = float(plane["max_kl"])
    out["accepted"] = None if plane["accepted"] is None else tuple(plane["accepted"])
    return out


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
