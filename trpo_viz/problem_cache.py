"""The CG explorer's compiled problems, shared by all sessions, bounded in number and memory.

A :class:`~trpo_viz.explorer.CompiledProblem` holds traced TensorFlow functions (f,
∇f, the HVP, the CG solve, the batched HVP of the explicit Hessian), compiled on its
first solve. What they cost differs by orders of magnitude between problems, so the
cache is bounded by an *estimate* of each problem's memory as well as by a count,
and an evicted problem's memory is collected and handed back to the operating system
at once (:func:`trpo_viz.heap.release_memory`).

The estimate (:func:`estimated_bytes`) comes from the size of the problem's HVP graph
(:meth:`~trpo_viz.hvp.HessianVectorProduct.graph_size`), which every other compiled
function contains or calls. Measured on the project's 2-core VM (TensorFlow 2.21;
resident memory kept after a first solve, after ``gc.collect`` and ``malloc_trim``):

=============================================  =========  ================  ========
problem                                        HVP ops    measured          estimate
=============================================  =========  ================  ========
two-variable quadratic (+ sin)                 76         18 MiB            18 MiB
n = 100 chain (bench_explorer.py)              3,508      118–137 MiB       126 MiB
10,000-character expression, n = 40           21,741     503–580 MiB       695 MiB
@logistic_regression, data embedded in graphs  107        1,059 MiB         996 MiB
@logistic_regression, data captured            107        98 MiB            95 MiB
=============================================  =========  ================  ========

(The ranges: with and without the proposed one-loop CG graph.) The estimate errs high
for large graphs, the safe side for a bound. The budget, 256 MiB, leaves the rest of a
1.2 GB host to TensorFlow itself (about 680 MiB resident after the first problem, 390 of
them shared library pages) and to a TRPO run.
"""

from __future__ import annotations

from trpo_viz.bounded_cache import BoundedCache
from trpo_viz.heap import release_memory

MIB = 2**20
MAX_PROBLEMS = 16
MAX_PROBLEM_BYTES = 256 * MIB  # all cached problems together (estimated)

BASE_BYTES = 16 * MIB  # a problem with a tiny graph
BYTES_PER_OP = 32 * 1024  # per operation of the HVP graph
CONSTANT_COPIES = 64  # a constant embedded in the HVP graph is copied into every compiled graph
CAPTURED_COPIES = 5  # data read by reference: the tensor, its source array, working copies


def estimated_bytes(problem) -> int:
    """Estimated resident memory of a compiled problem once it has been solved.

    Traces the problem's HVP if it is not traced yet (its first solve would). A problem
    whose HVP cannot be traced costs little: its solve fails with the same error.
    """
    try:
        size = problem.hvp.graph_size()
    except Exception:  # noqa: BLE001 - the solve reports it, with the page's message
        return BASE_BYTES
    return int(
        BASE_BYTES
        + BYTES_PER_OP * size.ops
        + CONSTANT_COPIES * size.constant_bytes
        + CAPTURED_COPIES * size.captured_bytes
    )


def _release(_evicted: list) -> None:
    release_memory()  # the evicted problems are unreachable once this list is dropped


class ProblemCache:
    """Compiled problems by (expression text, dtype, HVP mode), least recently used out first.

    ``get(key, build)`` returns the cached problem or builds it (once, whichever sessions
    ask meanwhile) and estimates its size, which traces its HVP (its first solve would).
    """

    def __init__(self, max_problems: int = MAX_PROBLEMS, max_bytes: int = MAX_PROBLEM_BYTES):
        self._cache = BoundedCache(max_problems, max_bytes, cost=estimated_bytes,
                                   on_evict=_release)

    def get(self, key, build):
        return self._cache.get(key, build)

    def clear(self) -> None:
        self._cache.clear()

    @property
    def estimated_bytes(self) -> float:
        return self._cache.total_cost

    def __len__(self) -> int:
        return len(self._cache)

    def __contains__(self, key) -> bool:
        return key in self._cache
