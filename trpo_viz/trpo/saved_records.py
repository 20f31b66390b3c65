"""records.json of a saved run: every :class:`UpdateRecord` checked field by field.

Every field of the first archive format is required (:data:`RECORD_FIELDS`); fields added
since are optional (:data:`OPTIONAL_RECORD_FIELDS`, or checked by their annotation) and
take the dataclass default when absent. Problems raise
:class:`~trpo_viz.trpo.archive.ArchiveError` naming the update (numbered from 1).
"""

from __future__ import annotations

import dataclasses
import math

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
    refuse,
    show,
)
from trpo_viz.trpo.config import MAX_EXACT_FISHER_PARAMS
from trpo_viz.trpo.record import EXACT_FISHER_STATUSES, UpdateRecord
from trpo_viz.trpo.variants import STEP_STATUSES, VARIANTS

MAX_RECORDS = 100_000
MAX_EPISODES = 100_000  # finished episodes listed in one update
MAX_CANDIDATES = 1_001  # line-search candidates (max_backtracks + 1)
MAX_CG_ITERATIONS = 10_000
MAX_TIMESTEPS = 10**12


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
