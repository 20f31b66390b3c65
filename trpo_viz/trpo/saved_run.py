"""What a saved run contains, checked field by field before anything uses it.

A saved run is a zip (:meth:`LiveRun.to_bytes`, :meth:`TRPOTrainer.to_bytes`) or a
directory (:meth:`TRPOTrainer.save`) of

- ``config.json``: a :class:`TRPOConfig` (every key of the first format is required; keys
  added to the dataclass since are optional; unknown keys are refused),
- ``records.json``: a list of :class:`UpdateRecord` objects (:data:`RECORD_FIELDS`),
- ``slices.npz`` (live runs): trust-region slices, ``"<update>/<key>"`` (:data:`SLICE_KEYS`),
- ``state.json`` and ``arrays.npz`` (trainer archives): counters, RNG state, network weights.

Problems raise :class:`~trpo_viz.trpo.archive.ArchiveError` naming the first one; updates
are numbered from 1 in messages, as on the page.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass

import numpy as np

from trpo_viz.trpo.archive import (
    boolean,
    by_annotation,
    finite,
    identifier,
    integer,
    list_of,
    load_json,
    nullable,
    read_npz,
    read_zip,
    refuse,
    short,
    show,
    text,
)
from trpo_viz.trpo.config import MAX_EXACT_FISHER_PARAMS, TRPOConfig
from trpo_viz.trpo.record import EXACT_FISHER_STATUSES, UpdateRecord
from trpo_viz.trpo.variants import STEP_STATUSES, VARIANTS

MAX_RECORDS = 100_000
MAX_EPISODES = 100_000  # finished episodes listed in one update
MAX_CANDIDATES = 1_001  # line-search candidates (max_backtracks + 1)
MAX_CG_ITERATIONS = 10_000
MAX_SLICE_GRID = 257  # points per axis of a trust-region slice
MAX_TIMESTEPS = 10**12
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


# --- records.json -----------------------------------------------------------------------------

# Every field of the first archive format is required (all are written since the first
# version); fields added to UpdateRecord since are optional, checked by their annotation.
# "finite": the trainer produces a finite value by construction; "nullable": NaN/±Inf are
# legitimate (a diverged network, Var(R) = 0, …) and are saved as null.
RECORD_FIELDS = {
    "update": integer(0, MAX_RECORDS - 1),  # = its position: 0, 1, … in order
    "total_timesteps": integer(0, MAX_TIMESTEPS),  # non-decreasing
    "episode_returns": list_of(nullable, MAX_EPISODES),
    "episode_lengths": list_of(integer(1, 2**40), MAX_EPISODES),  # as many as returns
    "max_kl": finite(positive=True),
    "kl": finite(),
    "surrogate_before": nullable,
    "surrogate_after": nullable,
    "expected_improvement": nullable,
    "actual_improvement": finite(),
    "candidates": None,  # checked by _candidates: 1 … MAX_CANDIDATES objects
    "accepted_index": None,  # null or an index into candidates, set exactly when accepted
    "accepted": boolean,
    "backtracks": integer(0, MAX_CANDIDATES - 1),  # an index into candidates
    "step_fraction": finite(0.0, 1.0),
    "gradient_norm": nullable,
    "step_norm": nullable,
    "sFs": nullable,
    "step_scale": nullable,
    "cg_iterations": integer(0, MAX_CG_ITERATIONS),
    "cg_stop_reason": identifier,
    "cg_residuals": list_of(nullable, MAX_CG_ITERATIONS + 1),  # cg_iterations + 1 entries
    "cg_curvatures": list_of(nullable, MAX_CG_ITERATIONS + 1),  # cg_iterations (+ 1)
    "entropy": nullable,
    "value_loss": nullable,
    "value_loss_before": nullable,
    "explained_variance": nullable,
    "wall_rollout_s": finite(lo=0.0),
    "wall_fvp_cg_s": finite(lo=0.0),
    "wall_line_search_s": finite(lo=0.0),
    "wall_value_fit_s": finite(lo=0.0),
    "wall_s": finite(lo=0.0),
}


def optional_number(value, where, field):
    """A number or null; null (and a non-finite number) is None: "undefined" (a cosine at
    x = 0), kept apart from NaN."""
    if value is None:
        return None
    x = nullable(value, where, field)
    return x if math.isfinite(x) else None


def optional(check):
    """``check``, or null for "not recorded"."""
    return lambda value, where, field: None if value is None else check(value, where, field)


def one_of(choices: tuple[str, ...]):
    def check(value, where, field):
        if value not in choices:
            names = ", ".join(repr(c) for c in choices)
            refuse(where, f"field {field!r} must be one of {names}, got {show(value)}")
        return value

    return check


# Fields added since the first format with a rule of their own (the others are checked by
# their annotation); absent ones take the dataclass default.
OPTIONAL_RECORD_FIELDS = {
    "variant": one_of(VARIANTS),
    "step_status": one_of(STEP_STATUSES),
    "cg_ritz_values": list_of(nullable, MAX_CG_ITERATIONS),  # ≤ cg_iterations entries
    "exact_fisher_status": one_of(EXACT_FISHER_STATUSES),
    "cg_exact_errors": list_of(nullable, MAX_CG_ITERATIONS + 1),  # 0 or cg_iterations + 1
    "cg_exact_errors_fnorm": list_of(nullable, MAX_CG_ITERATIONS + 1),  # as cg_exact_errors
    "cg_exact_cosines": list_of(optional_number, MAX_CG_ITERATIONS + 1),  # as cg_exact_errors
    "fisher_eigenvalues": list_of(nullable, MAX_EXACT_FISHER_PARAMS),  # finite, ascending
    "fisher_rank": optional(integer(0, MAX_EXACT_FISHER_PARAMS)),
    "fisher_eigenvalue_floor": optional(finite(lo=0.0)),
    "wall_exact_fisher_s": finite(lo=0.0),
}
CANDIDATE_FIELDS = {
    "fraction": finite(0.0, 1.0, positive=True),  # shrink^j: on the figure's log axis
    "kl": nullable,
    "surrogate": nullable,
    "improvement": nullable,
    "expected_improvement": nullable,
}


def parse_records(raw: bytes) -> list[UpdateRecord]:
    """records.json: a list of complete, consistent update records."""
    data = load_json(raw, "records.json")
    if not isinstance(data, list):
        refuse("records.json", f"must be a JSON list, got {show(data)}")
    if len(data) > MAX_RECORDS:
        refuse("records.json", f"has more than {MAX_RECORDS:,} updates")
    rules = _record_rules()
    records, timesteps = [], 0
    for index, item in enumerate(data):
        record = _record(item, index, rules, f"records.json, update {index + 1}")
        if record.total_timesteps < timesteps:
            refuse(
                f"records.json, update {index + 1}",
                f"total_timesteps {record.total_timesteps} is less than the update before's",
            )
        timesteps = record.total_timesteps
        records.append(record)
    return records


def parse_record(item, update: int, where: str | None = None) -> UpdateRecord:
    """One record (a parsed JSON object) checked as in records.json; it must be ``update``."""
    return _record(item, update, _record_rules(), where or f"update {update + 1}")


def _record_rules() -> dict:
    """A check per UpdateRecord field: the explicit rule, or one from its annotation."""
    explicit = RECORD_FIELDS | OPTIONAL_RECORD_FIELDS
    return {
        f.name: explicit.get(f.name, by_annotation(f.type))
        for f in dataclasses.fields(UpdateRecord)
    }


def _record(item, index: int, rules: dict, where: str) -> UpdateRecord:
    if not isinstance(item, dict):
        refuse(where, f"must be a JSON object, got {show(item)}")
    values = {}
    for name, rule in rules.items():
        if name not in item:
            if name in RECORD_FIELDS:
                refuse(where, f"field {name!r} is missing")
            continue  # added since the first format: the dataclass default
        if rule is not None:
            values[name] = rule(item[name], where, name)
    values["candidates"] = candidates = _candidates(item["candidates"], where)
    n = len(candidates)
    accepted_index = item["accepted_index"]
    if accepted_index is not None:
        accepted_index = integer(0, n - 1)(accepted_index, where, "accepted_index")
    values["accepted_index"] = accepted_index
    if values["update"] != index:
        refuse(
            where,
            f"field 'update' must be {index} (updates are numbered 0, 1, … in "
            f"order), got {values['update']}",
        )
    if values["accepted"] != (accepted_index is not None):
        refuse(where, "fields 'accepted' and 'accepted_index' disagree")
    if values["backtracks"] >= n or (
        accepted_index is not None and values["backtracks"] != accepted_index
    ):
        refuse(
            where,
            f"field 'backtracks' ({values['backtracks']}) does not match the line "
            f"search ({n} candidates, accepted {show(accepted_index)})",
        )
    k = values["cg_iterations"]
    if len(values["cg_residuals"]) != k + 1:
        refuse(
            where,
            f"field 'cg_residuals' must have cg_iterations + 1 = {k + 1} entries, "
            f"got {len(values['cg_residuals'])}",
        )
    if len(values["cg_curvatures"]) not in (k, k + 1):
        refuse(
            where,
            f"field 'cg_curvatures' must have {k} or {k + 1} entries, "
            f"got {len(values['cg_curvatures'])}",
        )
    if len(values["episode_lengths"]) != len(values["episode_returns"]):
        refuse(where, "fields 'episode_returns' and 'episode_lengths' differ in length")
    if len(values.get("cg_ritz_values", ())) > k:
        refuse(where, f"field 'cg_ritz_values' must have at most cg_iterations = {k} entries")
    _check_exact_fields(values, k, where)
    return UpdateRecord.from_dict(values)


def _check_exact_fields(values: dict, k: int, where: str) -> None:
    """The exact-Fisher lists: present exactly when computed, one entry per CG iterate."""
    computed = values.get("exact_fisher_status") == "computed"
    errors = values.get("cg_exact_errors", [])
    for name in ("cg_exact_errors", "cg_exact_errors_fnorm", "cg_exact_cosines"):
        entries = len(values.get(name, []))
        if entries != (k + 1 if computed else 0):
            expected = f"cg_iterations + 1 = {k + 1}" if computed else "no"
            refuse(where, f"field {name!r} must have {expected} entries, got {entries}")
    if computed and values["cg_exact_cosines"][0] is not None:
        refuse(where, "field 'cg_exact_cosines' must start with null (x_0 = 0 has no direction)")
    if any(e < 0 for e in errors):
        refuse(where, "field 'cg_exact_errors' must hold non-negative numbers")
    eigenvalues = np.asarray(values.get("fisher_eigenvalues", []), np.float64)
    if eigenvalues.size and not computed:
        refuse(where, "field 'fisher_eigenvalues' is set but the exact Fisher was not computed")
    if eigenvalues.size and not (
        np.all(np.isfinite(eigenvalues)) and np.all(np.diff(eigenvalues) >= 0)
    ):
        refuse(where, "field 'fisher_eigenvalues' must be finite numbers in ascending order")


def _candidates(value, where: str) -> list[dict]:
    if not isinstance(value, list):
        refuse(where, f"field 'candidates' must be a list, got {show(value)}")
    if not 1 <= len(value) <= MAX_CANDIDATES:
        refuse(
            where, f"field 'candidates' must have 1 to {MAX_CANDIDATES} entries, got {len(value)}"
        )
    out = []
    for i, candidate in enumerate(value):
        if not isinstance(candidate, dict):
            refuse(
                where,
                f"field 'candidates[{i}]' must be a JSON object, got {show(candidate)}",
            )
        clean = {}
        for name, rule in CANDIDATE_FIELDS.items():
            if name not in candidate:
                refuse(where, f"field 'candidates[{i}].{name}' is missing")
            clean[name] = rule(candidate[name], where, f"candidates[{i}].{name}")
        out.append(clean)
    return out


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
    """config, records and slices of a live run's archive (:meth:`LiveRun.to_bytes`)."""
    files = read_zip(data)
    config = parse_config(files["config.json"])
    records = parse_records(files["records.json"])
    slices = parse_slices(files["slices.npz"], records) if "slices.npz" in files else {}
    return config, records, slices
