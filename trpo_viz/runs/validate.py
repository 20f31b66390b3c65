"""Reading untrusted stored data back: records and slices from the database.

A database file is as untrusted as an uploaded archive, so stored rows go through the
same checks as a saved run's files (:mod:`trpo_viz.trpo.saved_run`); a damaged row is a
:class:`StoreError` naming the update, never a crash in a figure.
"""

from __future__ import annotations

import io

import numpy as np

from trpo_viz.runs.schema import StoreError
from trpo_viz.trpo.archive import ArchiveError, load_json, read_npz
from trpo_viz.trpo.record import UpdateRecord
from trpo_viz.trpo.saved_run import parse_record, parse_slice

SLICE_ARRAYS = ("alphas", "betas", "improvement", "kl", "quadratic_form", "candidates")
MAX_SLICE_ARRAYS = 32
_ARCHIVE_PREFIX = "not a trpo-viz run file: "


def _damaged(error: ArchiveError) -> StoreError:
    return StoreError(f"the run store is damaged: {str(error).removeprefix(_ARCHIVE_PREFIX)}")


def record_from_json(text: str | bytes, update: int) -> UpdateRecord:
    """An :class:`UpdateRecord` from a stored row; :class:`StoreError` if it is not a valid one."""
    raw = text.encode() if isinstance(text, str) else bytes(text)
    try:
        return parse_record(load_json(raw, f"stored update {update + 1}"), update,
                            f"stored update {update + 1}")
    except ArchiveError as error:
        raise _damaged(error) from None


def slice_to_npz(plane: dict) -> bytes:
    """One compact trust-region slice (see :func:`trpo_viz.trpo.live.compact_slice`) as npz."""
    arrays = {key: np.asarray(value) for key, value in plane.items()
              if key not in ("max_kl", "accepted", "damping") and isinstance(value, np.ndarray)}
    arrays["max_kl"] = np.float64(plane["max_kl"])
    if "damping" in plane:
        arrays["damping"] = np.float64(plane["damping"])
    accepted = plane["accepted"]
    arrays["accepted"] = np.asarray(accepted if accepted is not None else [np.nan, np.nan],
                                    np.float64)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


def slice_from_npz(data: bytes, record: UpdateRecord) -> dict:
    """The inverse of :func:`slice_to_npz`, checked against the update's record."""
    where = f"stored slice of update {record.update + 1}"
    try:
        return parse_slice(read_npz(bytes(data), where, MAX_SLICE_ARRAYS), record, where)
    except ArchiveError as error:
        raise _damaged(error) from None
