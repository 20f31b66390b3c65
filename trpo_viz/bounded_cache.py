"""A thread-safe LRU cache bounded both in entries and in total cost (for example bytes).

A web server shares compiled objects (the CG explorer's compiled problems) between
sessions. Their sizes differ by three orders of magnitude: a two-variable quadratic
costs about 15 MiB of traced graphs, a 10,000-character expression or the n = 1000
logistic regression several hundred MiB. A bound on the number of entries alone
(``st.cache_resource(max_entries=…)``) therefore bounds nothing useful. This cache
evicts least-recently-used entries until both bounds hold again, and hands evicted
values to ``on_evict`` (outside its lock), for instance to return their memory to the
operating system (:func:`trpo_viz.heap.release_memory`).

The entry used last is never evicted by its own insertion, so one value larger than
``max_cost`` is still served (and dropped as soon as another key is stored).
A value's cost can grow after it is stored (compiled functions are traced on first
use): call :meth:`BoundedCache.update_cost` then.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


@dataclass
class _Entry(Generic[V]):
    value: V
    cost: float


class BoundedCache(Generic[K, V]):
    """Least-recently-used values, at most ``max_entries`` of them costing at most ``max_cost``.

    ``cost(value)`` measures an entry when it is stored and when :meth:`update_cost` is
    called. :meth:`get` builds a missing value once: other threads asking for the same
    key meanwhile wait for that build rather than repeating it; a build that raises
    stores nothing (the exception reaches every caller that built).
    """

    def __init__(
        self,
        max_entries: int,
        max_cost: float,
        cost: Callable[[V], float],
        on_evict: Callable[[list[V]], None] | None = None,
    ):
        if max_entries < 1 or not max_cost > 0:
            raise ValueError("max_entries must be ≥ 1 and max_cost > 0")
        self.max_entries = max_entries
        self.max_cost = max_cost
        self._cost = cost
        self._on_evict = on_evict
        self._entries: OrderedDict[K, _Entry[V]] = OrderedDict()
        self._lock = threading.Lock()
        self._building: dict[K, threading.Lock] = {}

    def get(self, key: K, build: Callable[[], V]) -> V:
        """The value for ``key``, built by ``build()`` (and stored) when missing."""
        with self._lock:
            entry = self._hit(key)
            if entry is not None:
                return entry.value
            key_lock = self._building.setdefault(key, threading.Lock())
        with key_lock:  # one build per key; later callers find its result
            with self._lock:
                entry = self._hit(key)
                if entry is not None:
                    return entry.value
            try:
                built = build()
            finally:
                with self._lock:
                    self._building.pop(key, None)
            self._store(key, built)
            return built

    def update_cost(self, key: K) -> None:
        """Measure ``key``'s value again (it has grown) and evict others if needed."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return
            value = entry.value
        cost = self._cost(value)  # outside the lock: it may trace or walk a graph
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or entry.value is not value:
                return
            entry.cost = cost
            self._entries.move_to_end(key)  # it was just used
            evicted = self._evict(keep=key)
        self._evicted(evicted)

    def clear(self) -> None:
        with self._lock:
            evicted = [entry.value for entry in self._entries.values()]
            self._entries.clear()
        self._evicted(evicted)

    @property
    def total_cost(self) -> float:
        with self._lock:
            return sum(entry.cost for entry in self._entries.values())

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def __contains__(self, key: K) -> bool:
        with self._lock:
            return key in self._entries

    # --- under the lock ---

    def _hit(self, key: K) -> _Entry[V] | None:
        entry = self._entries.get(key)
        if entry is not None:
            self._entries.move_to_end(key)
        return entry

    def _evict(self, keep: K) -> list[V]:
        evicted = []
        total = sum(entry.cost for entry in self._entries.values())
        while len(self._entries) > 1 and (
            len(self._entries) > self.max_entries or total > self.max_cost
        ):
            oldest = next(iter(self._entries))
            if oldest == keep:  # keep is the most recent: only it is left to evict
                break
            entry = self._entries.pop(oldest)
            total -= entry.cost
            evicted.append(entry.value)
        return evicted

    # --- outside the lock ---

    def _store(self, key: K, value: V) -> None:
        cost = self._cost(value)
        with self._lock:
            self._entries[key] = _Entry(value, cost)
            self._entries.move_to_end(key)
            evicted = self._evict(keep=key)
        self._evicted(evicted)

    def _evicted(self, values: list[V]) -> None:
        if values and self._on_evict is not None:
            self._on_evict(values)
