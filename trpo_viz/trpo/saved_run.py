"""What a saved run contains, checked field by field before anything uses it.

A saved run is a zip (:func:`trpo_viz.runs.archive.export_run`, :meth:`TRPOTrainer.to_bytes`)
or a directory (:meth:`TRPOTrainer.save`) of

- ``config.json``: a :class:`TRPOConfig` (every key of the first format is required; keys
  added to the dataclass since are optional; unknown keys are refused),
- ``records.json``: a list of :class:`UpdateRecord` objects (:mod:`.saved_records`),
- ``slices.npz`` (exports of stored runs): trust-region slices, ``"<update>/<key>"``
  (:data:`SLICE_KEYS`),
- ``state.json`` and ``arrays.npz`` (trainer archives): counters, RNG state, network weights.

Problems raise :class:`~trpo_viz.trpo.archive.ArchiveError` naming the first one; updates
are numbered from 1 in messages, as on the page.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass

import numpy as np

from trpo_viz.trpo.archive import (
    by_annotation,
    finite,
    integer,
    list_of,
    load_json,
    read_npz,
    read_zip,
    refuse,
    short,
    show,
    text,
)
from trpo_viz.trpo.config import TRPOConfig
from trpo_viz.trpo.record import UpdateRecord
from trpo_viz.trpo.saved_records import (  # noqa: F401 - records.json, importable from here too
    CANDIDATE_FIELDS,
    MAX_CANDIDATES,
    MAX_CG_ITERATIONS,
    MAX_EPISODES,
    MAX_RECORDS,
    MAX_TIMESTEPS,
    OPTIONAL_RECORD_FIELDS,
    RECORD_FIELDS,
    parse_record,
    parse_records,
)

MAX_SLICE_GRID = 257  # points per axis of a trust-region slice
_ENV_ID = re.compile(r"[A-Za-z0-9_./-]{1,100}")  # no "module:" prefix: gym.make would import it


# --- config.json ------------------------------------------------------------------------------

# Every key of the first archive format; keys added to TRPOConfig since are optional.
REQUIRED_CONFIG_KEYS = (
    "env_id", "seed", "total_timesteps", "n_envs", "n_steps", "gamma", "gae_lambda",
    "normalize_advantage", "normalize_obs", "normalize_reward", "clip_obs", "clip_reward",
    "max_kl", "cg_max_steps", "cg_damping", "cg_rtol", "line_search_shrink", "max_backtracks",
    "fvp_subsample", "hvp_mode", "value_lr", "value_epochs", "value_batch_size",
    "hidden_sizes", "activation", "log_std_init",
)  # fmt: skip
_CONFIG_RULES = {
    "env_id": text(_ENV_ID, "a gymnasium id such as 'CartPole-v1'"),
    "seed": integer(0, 2**63 - 1),
    "total_timesteps": integer(1, MAX_TIMESTEPS),
    "n_envs": integer(1, 256),
    "n_steps": integer(1, 2**20),
    "cg_max_steps": integer(0, MAX_CG_ITERATIONS),
    "max_backtracks": integer(0, MAX_CANDIDATES - 1),
    "value_epochs": integer(0, 100_000),
    "value_batch_size": integer(1, 2**24),
    "clip_obs": finite(positive=True),
    "clip_reward": finite(positive=True),
    "cg_rtol": finite(lo=0.0),
    "hidden_sizes": list_of(integer(1, 4096), max_len=8, min_len=1),
}


def parse_config(raw: bytes) -> TRPOConfig:
    """config.json: known keys, right types, finite numbers, sane sizes, then ``validate()``."""
    data = load_json(raw, "config.json")
    if not isinstance(data, dict):
        refuse("config.json", f"must be a JSON object, got {show(data)}")
    fields = {f.name: f for f in dataclasses.fields(TRPOConfig)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        refuse("config.json", f"unknown setting {show(unknown[0])}")
    values = {}
    for name, f in fields.items():
        if name not in data:
            if name in REQUIRED_CONFIG_KEYS:
                refuse("config.json", f"setting {name!r} is missing")
            continue
        rule = _CONFIG_RULES.get(name)
        if rule is None:
            rule = finite() if f.type == "float" else by_annotation(f.type)
        values[name] = rule(data[name], "config.json", name)
    if "hidden_sizes" in values:
        sizes = values["hidden_sizes"] = tuple(values["hidden_sizes"])
        if sum(a * b for a, b in zip(sizes, sizes[1:], strict=False)) > 2**22:
            refuse("config.json", f"hidden_sizes {list(sizes)} is larger than a run can be")
    config = TRPOConfig(**values)
    if config.batch_size > 2**22:
        refuse("config.json", f"a batch of {config.batch_size:,} transitions is too large")
    try:
        config.validate()
    except ValueError as error:
        refuse("config.json", str(error))
    return config


# --- slices.npz -------------------------------------------------------------------------------

# Per update "<update>/<key>". "finite": must be finite; others may hold NaN/±Inf (the
# surrogate and KL far from θ_old, or a whole slice of a step that was not finite).
SLICE_KEYS = ("alphas", "betas", "improvement", "kl", "quadratic_form", "candidates",
              "max_kl", "accepted")  # fmt: skip
_OPTIONAL_SLICE_SHAPES = {  # written by newer versions; checked when present
    "linear_improvement": "grid",
    "quadratic_kl": "grid",
    "quadratic_form_undamped": (2, 2),
    "damping": (),
}


def parse_slices(raw: bytes, records: list[UpdateRecord]) -> dict[int, dict]:
    """slices.npz: for some recorded updates, a complete trust-region slice each."""
    max_arrays = (len(SLICE_KEYS) + len(_OPTIONAL_SLICE_SHAPES) + 4) * max(len(records), 1)
    arrays = read_npz(raw, "slices.npz", max_arrays)
    grouped: dict[int, dict[str, np.ndarray]] = {}
    for name, array in arrays.items():
        update, _, key = name.partition("/")
        if not (
            update.isascii()
            and update.isdigit()
            and str(int(update)) == update
            and int(update) < len(records)
            and key
        ):
            refuse("slices.npz", f"entry {show(name)} is not '<recorded update>/<key>'")
        grouped.setdefault(int(update), {})[key] = array
    return {
        update: parse_slice(planes, records[update], f"slices.npz, update {update + 1}")
        for update, planes in sorted(grouped.items())
    }


def parse_slice(arrays: dict[str, np.ndarray], record: UpdateRecord, where: str) -> dict:
    """One update's slice arrays (by key) checked against its record, as the figure wants it."""
    missing = [key for key in SLICE_KEYS if key not in arrays]
    if missing:
        refuse(where, f"array {missing[0]!r} is missing")
    plane = {key: _float_array(arrays[key], where, key) for key in arrays}
    for key in ("alphas", "betas"):
        if plane[key].ndim != 1 or not 2 <= plane[key].size <= MAX_SLICE_GRID:
            refuse(
                where,
                f"array {key!r} must be a list of 2 to {MAX_SLICE_GRID} points, "
                f"got shape {plane[key].shape}",
            )
    grid = (plane["betas"].size, plane["alphas"].size)
    shapes = {
        "alphas": plane["alphas"].shape, "betas": plane["betas"].shape,
        "improvement": grid, "kl": grid, "quadratic_form": (2, 2),
        "candidates": (len(record.candidates), 2), "max_kl": (), "accepted": (2,),
        **{k: grid if s == "grid" else s for k, s in _OPTIONAL_SLICE_SHAPES.items()},
    }  # fmt: skip
    for key, array in plane.items():
        expected = shapes.get(key)
        if expected is None and (array.ndim > 2 or array.size > MAX_SLICE_GRID**2):
            refuse(where, f"array {key!r} has an unexpected shape {array.shape}")
        if expected is not None and array.shape != expected:
            refuse(where, f"array {key!r} must have shape {expected}, got {array.shape}")
    for key in ("alphas", "betas", "candidates", "max_kl"):
        if not np.all(np.isfinite(plane[key])):
            refuse(where, f"array {key!r} must be finite")
    if not plane["max_kl"] > 0:
        refuse(where, "max_kl must be positive")
    if "damping" in plane and not (np.isfinite(plane["damping"]) and plane["damping"] >= 0):
        refuse(where, "damping must be a finite non-negative number")
    accepted = plane["accepted"]
    if np.isnan(accepted).all() and not record.accepted:
        plane["accepted"] = None
    elif np.isfinite(accepted).all() and record.accepted:
        plane["accepted"] = tuple(float(x) for x in accepted)
    else:
        refuse(
            where,
            "array 'accepted' must be the accepted step (finite) exactly when the "
            "record says a step was accepted, else NaN",
        )
    plane["max_kl"] = float(plane["max_kl"])
    if "damping" in plane:
        plane["damping"] = float(plane["damping"])
    return plane


def _float_array(array: np.ndarray, where: str, key: str) -> np.ndarray:
    if array.dtype.kind != "f" or array.dtype.itemsize not in (4, 8):
        refuse(where, f"array {key!r} must hold float32 or float64, got {array.dtype}")
    return array


# --- trainer archives: state.json and arrays.npz ----------------------------------------------


@dataclass
class SavedTrainer:
    """A trainer archive's parts, each validated on its own (shapes need the trainer)."""

    config: TRPOConfig
    records: list[UpdateRecord]
    total_timesteps: int
    rng_state: dict
    arrays: dict[str, np.ndarray]


def read_trainer_files(files: dict[str, bytes]) -> SavedTrainer:
    """config.json, records.json, state.json, arrays.npz of :meth:`TRPOTrainer.save`."""
    config = parse_config(files["config.json"])
    records = parse_records(files["records.json"])
    state = load_json(files["state.json"], "state.json")
    if not isinstance(state, dict) or set(state) != {"total_timesteps", "rng_state"}:
        refuse("state.json", "must be an object with total_timesteps and rng_state")
    total = integer(0, MAX_TIMESTEPS)(state["total_timesteps"], "state.json", "total_timesteps")
    if records and total < records[-1].total_timesteps:
        refuse("state.json", "total_timesteps is less than the last update's")
    if not isinstance(state["rng_state"], dict):
        refuse(
            "state.json",
            f"field 'rng_state' must be an object, got {show(state['rng_state'])}",
        )
    generator = np.random.default_rng(0).bit_generator  # the trainer's kind, to try it on
    try:
        generator.state = state["rng_state"]
    except (TypeError, ValueError, KeyError, OverflowError) as error:
        kind = type(generator).__name__
        refuse("state.json", f"rng_state is not a {kind} state ({short(error)})")
    arrays = read_npz(files["arrays.npz"], "arrays.npz", max_arrays=256)
    return SavedTrainer(config, records, total, state["rng_state"], arrays)


def check_trainer_arrays(arrays: dict[str, np.ndarray], trainer) -> None:
    """arrays.npz against a trainer built from the saved config: same names, shapes, dtypes.

    Policy parameters and normaliser statistics must be finite (TRPO never accepts a
    non-finite step); the value network and its Adam moments may not be (a diverged fit).
    """
    expected = {
        **{f"policy/{i}": v.numpy() for i, v in enumerate(trainer.policy.params)},
        **{f"value/{i}": v.numpy() for i, v in enumerate(trainer.value.params)},
        **{f"adam/{i}": v.numpy() for i, v in enumerate(trainer.value_optimizer.state)},
        **{f"normalizer/{k}": np.asarray(v) for k, v in trainer.normalizer.state().items()},
    }
    for name in sorted(set(expected) | set(arrays)):
        if name not in arrays:
            refuse("arrays.npz", f"array {name!r} is missing")
        if name not in expected:
            refuse("arrays.npz", f"unexpected array {name!r} for this config's networks")
        want, got = expected[name], arrays[name]
        if got.shape != want.shape or got.dtype != want.dtype:
            refuse(
                "arrays.npz",
                f"array {name!r} must be {want.dtype} {want.shape} for this "
                f"config's networks, got {got.dtype} {got.shape}",
            )
        if name.startswith(("policy/", "normalizer/")) and not np.all(np.isfinite(got)):
            refuse("arrays.npz", f"array {name!r} must be finite")
        if name.endswith(("_var", "_count")) and not np.all(got >= 0):
            refuse("arrays.npz", f"array {name!r} must be non-negative")


def read_replay(data: bytes) -> tuple[TRPOConfig, list[UpdateRecord], dict[int, dict]]:
    """config, records and slices of a run's archive (:func:`trpo_viz.runs.archive.export_run`)."""
    files = read_zip(data)
    config = parse_config(files["config.json"])
    records = parse_records(files["records.json"])
    slices = parse_slices(files["slices.npz"], records) if "slices.npz" in files else {}
    return config, records, slices
