"""Peak resident memory of a block of code, TensorFlow's allocations included.

``tracemalloc`` sees only Python's allocator; TensorFlow and LAPACK allocate elsewhere.
The process's resident set size sees everything. On Linux the kernel keeps its
high-water mark (VmHWM in /proc/self/status), and writing ``5`` to
/proc/self/clear_refs resets it to the current RSS, so

    peak extra bytes = VmHWM after the block − VmRSS before it

is exact at page granularity (4 KiB), with no sampling. Memory the allocator already
holds from earlier work is reused without raising RSS, so a block that fits in memory
freed before it reads as (close to) 0: this measures the *additional* memory a block
needs in this process, not what it would need alone. Elsewhere (no /proc, or no
permission) :func:`measure` reports None and callers fall back on a model.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")
_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def _status_kib(field: str) -> int | None:
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak() -> bool:
    try:
        _CLEAR_REFS.write_text("5")
    except OSError:
        return False
    return True


def peak_rss_available() -> bool:
    """Whether this platform lets :func:`measure` see peak memory."""
    return _status_kib("VmHWM") is not None and _reset_peak()


def measure(fn: Callable[[], T]) -> tuple[T, float, int | None]:
    """Run ``fn()`` once: (its result, wall seconds, peak extra resident bytes or None)."""
    before = _status_kib("VmRSS") if _reset_peak() else None
    start = time.perf_counter()
    result = fn()
    seconds = time.perf_counter() - start
    peak = _status_kib("VmHWM") if before is not None else None
    extra = None if peak is None else max(0, peak - before) * 1024
    return result, seconds, extra
