"""Reading untrusted stored data back: records and slices from the database or an archive."""

from __future__ import annotations

import io
import json

import numpy as np

from trpo_viz.runs.schema import StoreError
from trpo_viz.trpo.record import UpdateRecord

SLICE_ARRAYS = ("alphas", "betas", "improvement", "kl", "quadratic_form", "candidates")


def record_from_json(text: str, update: int) -> UpdateRecord:
    """An :class:`UpdateRecord` from stored JSON; :class:`StoreError` if it is not one."""
    try:
        data = json.loads(text)
        if not isinstance(data, dict):
            raise TypeError("not an object")
        record = UpdateRecord.from_dict(data)
    except (TypeError, ValueError, KeyError) as error:
        raise StoreError(f"stored update {update} is damaged ({error})") from None
    if record.update != update:
        raise StoreError(f"stored update {update} says it is update {record.update}")
    return record


def slice_to_npz(plane: dict) -> bytes:
    """One compact trust-region slice (see :func:`trpo_viz.trpo.live.compact_slice`) as npz."""
    arrays = {key: np.asarray(plane[key]) for key in SLICE_ARRAYS}
    arrays["max_kl"] = np.float64(plane["max_kl"])
    accepted = plane["accepted"]
    arrays["accepted"] = np.asarray(accepted if accepted is not None else [np.nan, np.nan],
                                    np.float64)
    extra = {k: np.asarray(v) for k, v in plane.items()
             if k not in arrays and isinstance(v, np.ndarray)}
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays, **extra)
    return buffer.getvalue()


def slice_from_npz(data: bytes) -> dict:
    """The inverse of :func:`slice_to_npz`; :class:`StoreError` for anything else."""
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as arrays:
            plane = {name: arrays[name] for name in arrays.files}
        missing = [k for k in (*SLICE_ARRAYS, "max_kl", "accepted") if k not in plane]
        if missing:
            raise ValueError(f"missing {', '.join(missing)}")
        plane["max_kl"] = float(plane["max_kl"])
        accepted = np.asarray(plane["accepted"], np.float64).ravel()
        plane["accepted"] = (None if accepted.size != 2 or np.isnan(accepted).any()
                             else tuple(accepted.tolist()))
    except (OSError, ValueError, TypeError, KeyError) as error:
        raise StoreError(f"a stored trust-region slice is damaged ({error})") from None
    return plane
