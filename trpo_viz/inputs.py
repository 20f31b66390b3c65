"""Parsing and bounding untrusted numeric input, shared by the CLI and the pages."""

from __future__ import annotations

import math

import numpy as np

MAX_VECTOR_CHARS = 200_000


class InputError(ValueError):
    """A user-facing input problem; the message is shown as is."""


def parse_vector(text: str, name: str, n: int | None = None) -> np.ndarray:
    """Parse ``"3, 1, 5"`` into a float64 vector; check its length against ``n``.

    A single number is broadcast to length ``n`` (``"0"`` → zeros), so long
    vectors need not be typed out. NaN and infinities are refused.
    """
    text = (text or "").strip()
    if not text:
        raise InputError(f"{name} is empty: give comma-separated numbers, e.g. 1, 0, 2")
    if len(text) > MAX_VECTOR_CHARS:
        raise InputError(f"{name} is too long ({len(text)} characters; at most {MAX_VECTOR_CHARS})")
    parts = [p.strip() for p in text.strip("()[]").split(",")]
    values = []
    for i, part in enumerate(parts, start=1):
        try:
            value = float(part)
        except ValueError:
            raise InputError(f"{name}: entry {i} ({part[:20]!r}) is not a number") from None
        if not math.isfinite(value):
            raise InputError(f"{name}: entry {i} is {part!r}; only finite numbers are allowed")
        values.append(value)
    vector = np.array(values, dtype=np.float64)
    if n is not None:
        if len(vector) == 1 and n > 1:
            return np.full(n, vector[0])
        if len(vector) != n:
            raise InputError(f"{name} has {len(vector)} entries but the problem has n = {n} "
                             "(a single number is repeated n times)")
    return vector


def format_vector(vector, digits: int = 6) -> str:
    """Comma-separated with ``digits`` significant digits: the inverse of :func:`parse_vector`."""
    return ", ".join(f"{float(v):.{digits}g}" for v in np.asarray(vector).ravel())


def check_range(name: str, value: float, low: float, high: float) -> float:
    if not (isinstance(value, int | float) and math.isfinite(value)) or not low <= value <= high:
        raise InputError(f"{name} must be between {low:g} and {high:g} (got {value!r})")
    return value
