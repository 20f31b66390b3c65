"""Krylov tools: Lanczos spectra without H, SLQ densities, the solver line-up, the cost lab.

Prints four tables:

1. Lanczos (k = 30, full reorthogonalisation) on the n = 1,000 ``@logistic_regression``
   preset: cold (objective compiled, graph traced, first run) and warm times, and the
   extreme Ritz values against ``numpy.linalg.eigvalsh`` of the explicit H. Target: ≤ 2 s.
2. Stochastic Lanczos quadrature: the preset (against the exact spectrum) and the MLP
   Fisher loss of the cost lab at N ≈ 10⁵.
3. The solver line-up on the preset at θ = 0, g = 1, with one HVP budget.
4. The cost lab: explicit H + dense solve vs k CG iterations on HVPs, with fitted slopes.

    python benchmarks/bench_krylov.py
    python benchmarks/bench_krylov.py --sizes 100,1000,3000 --skip-slq
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere

import numpy as np  # noqa: E402

from trpo_viz.quiet import import_tensorflow  # noqa: E402

tf = import_tensorflow()

from trpo_viz.cost import CostLab, MLPLoss  # noqa: E402
from trpo_viz.hessian_operator import ObjectiveHessian  # noqa: E402
from trpo_viz.hvp import HessianVectorProduct  # noqa: E402
from trpo_viz.slq import slq_density  # noqa: E402
from trpo_viz.spectrum import Lanczos, estimate_spectrum  # noqa: E402

PRESET = "@logistic_regression"


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def timed_cpu(fn):
    """(result, wall seconds, CPU seconds of this process): on a machine other jobs load,
    the CPU time is what the work itself costs."""
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - wall, time.process_time() - cpu


def lanczos_table(n: int, k: int, repeats: int) -> None:
    theta = np.zeros(n)

    def cold():
        op = ObjectiveHessian(PRESET, n=n)
        with op.at(theta):
            return op, estimate_spectrum(op.lanczos, n, k)

    (op, estimate), cold_seconds, cold_cpu = timed_cpu(cold)
    with op.at(theta):
        warm, warm_cpu = [], []
        for seed in range(repeats):
            _, seconds, cpu = timed_cpu(
                lambda s=seed: estimate_spectrum(op.lanczos, n, k, seed=s)
            )
            warm.append(seconds)
            warm_cpu.append(cpu)
        hessian, explicit_seconds = timed(op.explicit)
    eigenvalues, eig_seconds = timed(lambda: np.linalg.eigvalsh(hessian))
    print(f"\n1. Lanczos, k = {k}, on {PRESET} n = {n} at θ = 0 ({estimate.hvps} HVPs)")
    print(f"   cold (compile objective + trace + run): {cold_seconds:6.3f} s wall, "
          f"{cold_cpu:6.3f} s CPU   target ≤ 2 s")
    print(f"   warm (median of {repeats} seeds):            {statistics.median(warm):6.3f} s wall, "
          f"{statistics.median(warm_cpu):6.3f} s CPU")
    print(f"   exact: form H {explicit_seconds:.3f} s ({n} HVPs) + eigvalsh {eig_seconds:.3f} s")
    print("   rank   largest Ritz       exact    |error|     bound   smallest Ritz       exact"
          "    |error|     bound")
    top, bottom = eigenvalues[::-1], eigenvalues
    for i in range(3):
        print(
            f"   {i + 1:4d} {estimate.largest[i]:14.8g} {top[i]:11.8g} "
            f"{abs(estimate.largest[i] - top[i]):10.2e} {estimate.largest_residual_bounds[i]:9.2e}"
            f" {estimate.smallest[i]:15.8g} {bottom[i]:11.8g} "
            f"{abs(estimate.smallest[i] - bottom[i]):10.2e} "
            f"{estimate.smallest_residual_bounds[i]:9.2e}"
        )
    exact_kappa = eigenvalues[-1] / eigenvalues[0]
    print(f"   κ estimate θ_max/θ_min = {estimate.condition_estimate:.4g} "
          f"(a lower bound), exact κ = {exact_kappa:.4g}")
    return op, eigenvalues


def slq_table(op, eigenvalues, n: int, mlp_n: int, k: int, starts: int) -> None:
    print(f"\n2. Stochastic Lanczos quadrature, k = {k}, {starts} Rademacher starts")
    print("   problem                         N    HVPs   seconds   mean est.    tr(H)/N"
          "   L1(exact)")
    with op.at(np.zeros(n)):
        density, seconds = timed(
            lambda: slq_density(op.lanczos, n, k, starts, eigenvalues=eigenvalues)
        )
    l1 = np.trapezoid(np.abs(density.density - density.exact_density), density.grid)
    print(f"   {PRESET:24s} {n:9d} {density.hvps:7d} {seconds:9.3f} {density.moment(1):11.5g}"
          f" {eigenvalues.mean():10.5g} {l1:11.3f}")
    loss = MLPLoss(mlp_n)
    hvp = HessianVectorProduct(loss, loss.parameters)
    lanczos = Lanczos(hvp)
    lanczos.run(hvp.size, 2, dtype=tf.float32)  # trace
    density, seconds = timed(
        lambda: slq_density(lanczos, hvp.size, k, starts, dtype=tf.float32)
    )
    print(f"   {'MLP Fisher (float32)':24s} {hvp.size:9d} {density.hvps:7d} {seconds:9.3f} "
          f"{density.moment(1):11.5g} {'--':>10s} {'--':>11s}")
    print("   L1(exact) = ∫|φ̂ − φ_σ|, φ_σ the exact spectrum with the same Gaussian broadening"
          f" (σ = {density.sigma:.3g} for the MLP row).")


def lineup_table(op, n: int, budget: int) -> None:
    with op.at(np.zeros(n)):
        hessian = op.explicit()
        suite = op.suite
        g = np.ones(n)
        suite.lineup(g, 5, hessian=hessian)  # trace every solver
        lineup, seconds = timed(lambda: suite.lineup(g, budget, rtol=1e-10, hessian=hessian))
    print(f"\n3. Solver line-up on {PRESET} n = {n}, θ = 0, g = 1, budget {budget} HVPs "
          f"({seconds:.2f} s for all)")
    print("   method                    HVPs  iterations  stop            rel. error  A-norm err.")
    for trace in lineup.traces.values():
        a_norm = trace.a_norm_errors[-1] if trace.a_norm_errors is not None else float("nan")
        print(f"   {trace.label:24s} {trace.total_hvps:5d} {trace.iterations:11d}  "
              f"{trace.stop_reason:14s} {trace.relative_errors[-1]:10.2e} {a_norm:12.2e}")
    print(f"   PCG: {lineup.traces['pcg'].note}")


def cost_table(sizes: list[int], iters: int) -> None:
    lab = CostLab()
    rows, fits = lab.run(sizes, iters)
    budget = lab.memory_budget / 2**20
    print(f"\n4. Cost lab: explicit H + numpy.linalg.solve vs {iters} CG iterations on HVPs "
          f"(MLP Fisher loss, float32, memory budget {budget:.0f} MiB); seconds wall (CPU)")
    print("          N     explicit s (CPU)    form s   solve s  explicit MiB  model MiB"
          "       CG s (CPU)   HVP ms  CG MiB (model)")

    def opt(value, width):
        return f"{value:{width}.3f}" if value is not None else f"{'--':>{width}s}"

    for r in rows:
        mib = f"{r.explicit_bytes / 2**20:12.1f}" + ("" if r.explicit_bytes_measured else "*")
        print(f"   {r.n:8d} {opt(r.explicit_seconds, 10)} ({opt(r.explicit_cpu_seconds, 7)}) "
              f"{opt(r.explicit_form_seconds, 9)} {opt(r.explicit_solve_seconds, 9)} {mib:13s}"
              f" {r.explicit_bytes_model / 2**20:10.1f} {r.hvp_cg_seconds:10.3f} "
              f"({r.hvp_cg_cpu_seconds:6.3f}) {r.hvp_seconds * 1e3:8.2f} "
              f"{r.hvp_cg_bytes / 2**20:10.2f}")
    print("   * modelled (explicit route skipped: over the budget)")

    def slope(fit):
        return f"{fit.slope:.2f} over N = {fit.n_range[0]}…{fit.n_range[1]}" if fit else "--"

    for clock, label in (("wall", "wall"), ("cpu", "CPU")):
        f = fits if clock == "wall" else lab.run(sizes, iters, clock="cpu")[1]
        print(f"   slopes ({label} time, log-log): explicit {slope(f.explicit_time)}; "
              f"CG {slope(f.hvp_cg_time)}")
        if f.crossover_n is not None:
            where = "extrapolated" if f.crossover_extrapolated else "inside the measured range"
            print(f"   fitted {label} times cross at N ≈ {f.crossover_n:.3g} ({where})")
    print(f"   slope of the explicit route's measured memory: {slope(fits.explicit_memory)}")
    faster = ", ".join(str(n) for n in fits.explicit_faster_at) or "none"
    print(f"   measured N where the explicit route beat {iters} CG iterations: {faster}")
    for note in fits.notes:
        print(f"   note: {note}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=1000, help="preset size")
    parser.add_argument("--k", type=int, default=30, help="Lanczos steps")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--mlp-n", type=int, default=100_000, help="SLQ on the MLP loss")
    parser.add_argument("--starts", type=int, default=4, help="SLQ random starts")
    parser.add_argument("--budget", type=int, default=100, help="line-up HVP budget")
    parser.add_argument("--sizes", default="100,300,1000,2000,4000,10000,100000,1000000")
    parser.add_argument("--iters", type=int, default=10, help="cost lab CG iterations")
    parser.add_argument("--skip-slq", action="store_true")
    parser.add_argument("--skip-cost", action="store_true")
    args = parser.parse_args()
    load = Path("/proc/loadavg").read_text().split()[:3] if Path("/proc/loadavg").exists() else []
    print(f"load average at start: {' '.join(load) or 'n/a'}")
    op, eigenvalues = lanczos_table(args.n, args.k, args.repeats)
    if not args.skip_slq:
        slq_table(op, eigenvalues, args.n, args.mlp_n, args.k, args.starts)
    lineup_table(op, args.n, args.budget)
    if not args.skip_cost:
        cost_table([int(float(s)) for s in args.sizes.split(",")], args.iters)


if __name__ == "__main__":
    main()
