"""Interaction latency of the CG explorer when warm (the page's budget: 0.5 s per change).

    python benchmarks/bench_explorer.py [--repeats 7]

1. core: ``CompiledProblem.solve`` + all figure builders + JSON, for a new θ each
   time, on problems of n = 2, 3, 50, 100 (compiled once, as the page's cache does);
   and the same solve with the Krylov panels (Ritz values, p_k, eigencomponent and H
   heatmaps);
2. page: a full Streamlit script rerun (AppTest) after changing θ, g, λ or the
   iteration limit on the default page, and on an n = 100 problem.

Prints medians (and max) in milliseconds.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from trpo_viz.explorer import CGSettings, CompiledProblem  # noqa: E402
from trpo_viz.figures import cg as figures  # noqa: E402
from trpo_viz.figures import krylov as krylov_figures  # noqa: E402
from trpo_viz.krylov import MAX_HEATMAP_N, krylov_view  # noqa: E402
from trpo_viz.presets import SOURCE_EXPR, rotated_quadratic  # noqa: E402


def chain(n: int) -> str:
    """A smooth, non-quadratic objective in n variables (H depends on θ)."""
    return " + ".join(f"(x{i} - x{i + 1})**2 + 0.1*x{i}**4" for i in range(1, n)) + f" + x{n}**2"


PROBLEMS = {
    "n=2 quadratic κ=100": (rotated_quadratic(100.0), 2),
    "n=3 source post": (SOURCE_EXPR, 3),
    "n=50 chain": (chain(50), 50),
    "n=100 chain": (chain(100), 100),
}


def timed(fn, repeats: int) -> list[float]:
    fn(0)  # warm
    times = []
    for i in range(1, repeats + 1):
        start = time.perf_counter()
        fn(i)
        times.append(time.perf_counter() - start)
    return times


def bench_core(repeats: int) -> list[tuple[str, list[float]]]:
    rows = []
    for name, (text, n) in PROBLEMS.items():
        problem = CompiledProblem(text)
        rng = np.random.default_rng(0)

        def step(i, problem=problem, n=n, rng=rng):
            theta = rng.normal(size=n)
            result = problem.solve(theta, np.ones(n), CGSettings(damping=0.1 * (i % 3)))
            figures.iterates_figure(result).to_json()
            figures.convergence_figure(result).to_json()
            figures.spectrum_figure(result).to_json()
            figures.trace_table(result)
            json.dumps(result.to_dict())

        def krylov(i, problem=problem, n=n, rng=rng):
            """The Krylov panels of the same solve: view, Ritz, p_k, heatmaps."""
            result = problem.solve(rng.normal(size=n), np.ones(n), CGSettings())
            exact = result.reference is not None
            view = krylov_view(result.cg, hessian=result.hessian if exact else None,
                               reference=result.reference, damping=result.settings.damping)
            shown = [krylov_figures.ritz_figure(view),
                     krylov_figures.polynomial_figure(view, view.iterations),
                     krylov_figures.eigencomponent_figure(view)]
            if result.hessian is not None and result.n <= MAX_HEATMAP_N:
                shown.append(krylov_figures.matrix_figure(result.hessian, "H"))
            for fig in shown:
                if fig is not None:
                    fig.to_json()

        rows.append((f"core: solve + figures + JSON, {name}", timed(step, repeats)))
        rows.append((f"core: solve + Krylov panels + JSON, {name}", timed(krylov, repeats)))
    return rows


def bench_page(repeats: int) -> list[tuple[str, list[float]]]:
    from streamlit.testing.v1 import AppTest

    rows = []
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120).run()
    assert not at.exception
    changes = {
        "θ": lambda i: at.text_input(key="theta").set_value(f"3, 1, {5 + i}"),
        "g": lambda i: at.text_input(key="g").set_value(f"3, {12 + i}, 6"),
        "λ": lambda i: at.number_input(key="damping").set_value(0.1 * i),
        "max iterations": lambda i: at.number_input(key="iters").set_value(1 + i % 3),
    }
    for label, change in changes.items():
        def step(i, change=change):
            change(i).run()
            assert not at.exception and not at.error

        rows.append((f"page rerun (AppTest), default n=3, change {label}", timed(step, repeats)))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.query_params.update({"expr": chain(100), "theta": "0.5", "g": "1"})
    at.run()
    assert not at.exception and not at.error, [e.value for e in at.error]

    def step100(i):
        at.text_input(key="theta").set_value(f"{0.5 + 0.01 * i}").run()
        assert not at.exception

    rows.append(("page rerun (AppTest), n=100 chain, change θ", timed(step100, repeats)))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--skip-page", action="store_true")
    args = parser.parse_args()
    rows = bench_core(args.repeats)
    if not args.skip_page:
        rows += bench_page(args.repeats)
    width = max(len(name) for name, _ in rows)
    print(f"{'measurement':<{width}}  {'median ms':>10}  {'max ms':>8}")
    for name, times in rows:
        print(f"{name:<{width}}  {1000 * statistics.median(times):>10.1f}  "
              f"{1000 * max(times):>8.1f}")


if __name__ == "__main__":
    main()
