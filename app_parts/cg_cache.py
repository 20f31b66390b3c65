"""The CG explorer's caches: compiled problems and the costly solves, shared by all sessions.

Kept out of the page so that the page reads as the screen it draws. Streamlit keys each
cache by its function, so the entries are shared by all sessions and reruns.
"""

from __future__ import annotations

import gc

import numpy as np
import streamlit as st

from trpo_viz.explorer import MAX_EXPLICIT_N, CompiledProblem
from trpo_viz.hessian_operator import ObjectiveHessian
from trpo_viz.problem_cache import ProblemCache
from trpo_viz.slq import DEFAULT_STARTS, slq_density
from trpo_viz.spectrum import EXACT_COMPARE_N, estimate_spectrum


@st.cache_resource(show_spinner=False)
def problem_cache() -> ProblemCache:
    """Compiled problems shared by all sessions, bounded in number and in estimated memory.

    An evicted problem's traced graphs are collected and their memory handed back to the
    OS at once (see ``trpo_viz.problem_cache``), frozen or not: ``release_memory``
    unfreezes, collects and refreezes. The same cache (and budget) holds the line-up's
    Hessian operators.
    """
    return ProblemCache()


@st.cache_resource(max_entries=32, show_spinner=False)
def freeze_traced_graphs(key: tuple) -> bool:
    """Once per problem, after its first solve: move its traced graphs out of the GC's way.

    Streamlit collects garbage after every script run (``runner.postScriptGC``): with 16
    problems cached and not frozen that costs about 85 ms per run, frozen 0 ms. Frozen
    garbage is collected when the cache evicts (``trpo_viz.heap.release_memory``).
    """
    gc.collect()
    gc.freeze()
    return True


def compiled_problem(text: str, dtype: str, hvp: str, n: int | None = None) -> CompiledProblem:
    """f, its HVP and the CG solver, traced once per (text, n, dtype, HVP mode) for all
    sessions (n None: from f)."""
    return problem_cache().get(
        (text, n, dtype, hvp), lambda: CompiledProblem(text, n=n, dtype=dtype, hvp_mode=hvp)
    )


def objective_hessian(text: str, n: int, dtype: str, hvp: str) -> ObjectiveHessian:
    """H(θ) as an operator with its compiled line-up solvers and Lanczos, once per problem
    (in the problem cache: a count bound alone does not bound compiled graphs' memory)."""
    return problem_cache().get(
        ("operator", text, n, dtype, hvp),
        lambda: ObjectiveHessian(text, n=n, dtype=dtype, hvp_mode=hvp),
    )


@st.cache_data(max_entries=32, show_spinner=False)
def solver_lineup(text: str, n: int, dtype: str, hvp: str, theta: tuple, g: tuple, x0: tuple | None,
                  damping: float, rtol: float, budget: int):
    """CG, Jacobi-PCG, MINRES and steepest descent on (H+λI)x = g, with the exact references
    where H can be formed; cached per inputs (the solves cost up to 4 × budget HVPs)."""
    op = objective_hessian(text, n, dtype, hvp)
    with op.at(theta):
        hessian = op.explicit() if op.n <= MAX_EXPLICIT_N else None
        return op.suite.lineup(np.array(g), budget, damping=damping, rtol=rtol,
                               x0=None if x0 is None else np.array(x0), hessian=hessian)


@st.cache_data(max_entries=32, show_spinner=False)
def lanczos_spectrum(text: str, n: int, dtype: str, hvp: str, theta: tuple, k: int):
    """k Lanczos steps on H(θ) (extremes, κ estimate) and an SLQ density, compared with the
    exact spectrum where n ≤ EXACT_COMPARE_N; cached per inputs."""
    op = objective_hessian(text, n, dtype, hvp)
    with op.at(theta):
        hessian = op.explicit() if op.n <= EXACT_COMPARE_N else None
        estimate = estimate_spectrum(op.lanczos, op.n, k, dtype=op.dtype, hessian=hessian)
        eigenvalues = None if hessian is None else np.linalg.eigvalsh(hessian)
        density = slq_density(op.lanczos, op.n, min(k, op.n), starts=DEFAULT_STARTS,
                              dtype=op.dtype, eigenvalues=eigenvalues)
    return estimate, density, eigenvalues


def as_key(vector) -> tuple | None:
    """A vector as a hashable cache key (None stays None)."""
    return None if vector is None else tuple(float(v) for v in vector)
