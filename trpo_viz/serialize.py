"""Turning results into JSON-ready values (lists, floats, None for NaN/Inf)."""

from __future__ import annotations

import math

import numpy as np


def to_jsonable(value):
    """Recursively convert numpy arrays/scalars, tuples and dicts; NaN and ±Inf become None."""
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist())
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
