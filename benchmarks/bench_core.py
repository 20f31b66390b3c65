"""Cost of Hessian-free products and CG on an MLP-shaped loss, side by side in one run.

For N parameters it times: one gradient; one HVP in each mode (plain tf.function
and XLA ``jit_compile``); 10 CG iterations through our compiled solver; the same
10 iterations through ``scipy.sparse.linalg.cg`` driving the same HVP via a
``LinearOperator``; and, where it fits, the explicit Hessian + ``numpy.linalg.solve``.
Every figure is the median of several runs after a warm-up; ratios come from the
same run.

    python benchmarks/bench_core.py                 # N = 1e3 … 1e6
    python benchmarks/bench_core.py --sizes 1000,10000 --repeats 5
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere

import numpy as np  # noqa: E402
from scipy.sparse.linalg import LinearOperator  # noqa: E402
from scipy.sparse.linalg import cg as scipy_cg  # noqa: E402

from trpo_viz.cg import ConjugateGradient  # noqa: E402
from trpo_viz.hvp import HessianVectorProduct, explicit_hessian  # noqa: E402
from trpo_viz.quiet import import_tensorflow  # noqa: E402

tf = import_tensorflow()
INPUTS, BATCH, CG_STEPS = 32, 256, 10
EXPLICIT_MAX_N = 10_000  # N HVPs and N² memory: beyond this the explicit route is skipped


class MLP(tf.Module):
    """32 → w → w → 1 tanh network with plain tf.Variables (about w² + 34w parameters)."""

    def __init__(self, width: int, seed: int = 0):
        super().__init__()
        rng = np.random.default_rng(seed)
        sizes = [INPUTS, width, width, 1]
        self.layers = [
            (
                tf.Variable((rng.normal(size=(a, b)) / np.sqrt(a)).astype(np.float32)),
                tf.Variable(np.zeros(b, np.float32)),
            )
            for a, b in zip(sizes[:-1], sizes[1:], strict=True)
        ]

    @property
    def parameters(self):
        return [v for layer in self.layers for v in layer]

    def __call__(self, x):
        for i, (w, b) in enumerate(self.layers):
            x = x @ w + b
            if i < len(self.layers) - 1:
                x = tf.tanh(x)
        return x


def width_for(n_params: int) -> int:
    # w² + (INPUTS + 3)w + 1 = N, solved for w.
    c = INPUTS + 3
    return max(1, round((-c + np.sqrt(c * c + 4 * (n_params - 1))) / 2))


def median_time(fn, repeats: int) -> float:
    fn()  # warm-up (tracing, allocation)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench_size(target: int, repeats: int) -> dict:
    net = MLP(width_for(target))
    rng = np.random.default_rng(1)
    x = tf.constant(rng.normal(size=(BATCH, INPUTS)).astype(np.float32))
    y = tf.constant(rng.normal(size=(BATCH, 1)).astype(np.float32))

    def loss(x, y):
        return tf.reduce_mean((net(x) - y) ** 2)

    params = net.parameters
    hvps = {
        (mode, jit): HessianVectorProduct(loss, params, mode, jit_compile=jit)
        for mode in ("reverse", "forward")
        for jit in (False, True)
    }
    reverse = hvps[("reverse", False)]
    n = reverse.size
    v = tf.constant(rng.normal(size=n).astype(np.float32))
    row = {"N": n}
    row["grad"] = median_time(lambda: reverse.gradient(x, y).numpy(), repeats)
    for (mode, jit), hvp in hvps.items():
        row[f"hvp_{mode}{'_xla' if jit else ''}"] = median_time(
            lambda h=hvp: h(v, x, y).numpy(), repeats
        )

    # Our CG drives the plain reverse HVP in its compiled loop (data bound in a closure).
    solver = ConjugateGradient(lambda p: reverse.graph_fn(p, x, y), record_vectors=False)
    g = reverse.gradient(x, y)
    row["cg10"] = median_time(lambda: solver.solve(g, max_iter=CG_STEPS, rtol=0.0).x, repeats)

    # The HVPs alone in the same compiled-loop setting (power iteration): CG's overhead is
    # CG x10 over this, without the per-call dispatch and copies a standalone HVP pays.
    @tf.function(autograph=False)
    def hvp_loop(v):
        def body(i, v):
            hv = reverse.graph_fn(v, x, y)
            return i + 1, hv / tf.norm(hv)

        return tf.while_loop(lambda i, v: i < CG_STEPS, body, (0, v))[1]

    row["hvp10_loop"] = median_time(lambda: hvp_loop(v).numpy(), repeats)
    recording = ConjugateGradient(lambda p: reverse.graph_fn(p, x, y), record_vectors=True)
    row["cg10_trace"] = median_time(
        lambda: recording.solve(g, max_iter=CG_STEPS, rtol=0.0).x, repeats
    )

    operator = LinearOperator(
        (n, n), matvec=lambda p: reverse(p.astype(np.float32), x, y).numpy(), dtype=np.float32
    )
    g_np = g.numpy()
    row["scipy_cg10"] = median_time(
        lambda: scipy_cg(operator, g_np, rtol=1e-30, atol=0.0, maxiter=CG_STEPS), repeats
    )
    if n <= EXPLICIT_MAX_N:

        def explicit():
            hessian = explicit_hessian(reverse, x, y)
            return np.linalg.solve(hessian + 1e-3 * np.eye(n), g_np)

        row["explicit"] = median_time(explicit, max(1, repeats // 3))
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1000,10000,100000,1000000")
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    rows = [bench_size(int(float(s)), args.repeats) for s in args.sizes.split(",")]

    ms = lambda t: f"{t * 1e3:9.2f}"  # noqa: E731
    print(f"MLP loss, batch {BATCH}, float32, median of {args.repeats} (milliseconds)\n")
    print(
        f"{'N':>9} {'grad':>9} {'hvp rev':>9} {'hvp fwd':>9} {'rev XLA':>9} {'fwd XLA':>9}"
        f" {'hvp loop':>9} {'CG x10':>9} {'+trace':>9} {'scipy x10':>9} {'explicit':>10}"
    )
    for r in rows:
        explicit = ms(r["explicit"]) if "explicit" in r else "       --"
        print(
            f"{r['N']:>9} {ms(r['grad'])} {ms(r['hvp_reverse'])} {ms(r['hvp_forward'])}"
            f" {ms(r['hvp_reverse_xla'])} {ms(r['hvp_forward_xla'])} {ms(r['hvp10_loop'])}"
            f" {ms(r['cg10'])}"
            f" {ms(r['cg10_trace'])} {ms(r['scipy_cg10'])} {explicit:>10}"
        )
    print("\nratios (same run); hvp loop = 10 HVPs in one compiled while_loop, no CG arithmetic")
    print(
        f"{'N':>9} {'rev/grad':>9} {'fwd/grad':>9} {'revXLA/g':>9} {'fwdXLA/g':>9}"
        f" {'CG/10hvp':>9} {'CG/loop':>9} {'CG/scipy':>9}"
    )
    for r in rows:
        best_plain = r["hvp_reverse"]
        print(
            f"{r['N']:>9} {r['hvp_reverse'] / r['grad']:9.2f} {r['hvp_forward'] / r['grad']:9.2f}"
            f" {r['hvp_reverse_xla'] / r['grad']:9.2f} {r['hvp_forward_xla'] / r['grad']:9.2f}"
            f" {r['cg10'] / (CG_STEPS * best_plain):9.2f} {r['cg10'] / r['hvp10_loop']:9.2f}"
            f" {r['cg10'] / r['scipy_cg10']:9.2f}"
        )


if __name__ == "__main__":
    main()
