"""The trust-region slice: the plain compiled graph against XLA, side by side.

Every update a worker trains also evaluates the surrogate and the KL on a 17 × 17 grid of
policies (the slice the TRPO page draws): 290 forward passes of the whole batch. This
times that grid, one trainer per task after two real updates, through the trainer's two
compiled evaluators of the same maths: ``evaluate`` (a ``tf.function`` graph, what the
line search uses) and ``evaluate_grid`` (the same function with ``jit_compile=True``, what
the slice uses), and, for reference, the graph before both shared one forward pass
(``surrogate`` and ``kl`` each running the policy: "2 passes"). They alternate, round by
round, so drift in the machine's speed hits all. Also printed: XLA's first call (tracing
and compiling) and the largest difference between grids, relative to the grid's largest
value.

    python benchmarks/bench_slice.py --envs CartPole-v1 Hopper-v5 --rounds 15
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def timed(function) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def two_pass_evaluator(policy):
    """The graph before ``surrogate_and_kl``: one forward pass for L, another for the KL."""
    import tensorflow as tf

    from trpo_viz.trpo.policy import unflatten_batch
    from trpo_viz.trpo.update import kl, surrogate

    def evaluate(thetas, obs, actions, advantages, old_log_prob, old_dist):
        params = unflatten_batch(thetas, policy.params)
        return (surrogate(policy, params, obs, actions, advantages, old_log_prob),
                kl(policy, params, obs, old_dist))

    return tf.function(evaluate, reduce_retracing=True)


def bench_task(env_id: str, rounds: int) -> dict:
    from trpo_viz.trpo.config import default_config
    from trpo_viz.trpo.live import SLICE_ALPHAS, SLICE_BETAS
    from trpo_viz.trpo.trainer import TRPOTrainer

    config = default_config(env_id)
    trainer = TRPOTrainer(config)
    try:
        for _ in range(2):
            trainer.step()
        grid = trainer._evaluate_grid
        evaluators = {"2 passes": two_pass_evaluator(trainer.policy), "graph": trainer._evaluate,
                      "xla": grid}

        def slice_with(evaluator):
            trainer._evaluate_grid = evaluator
            return trainer.trust_region_slice(SLICE_ALPHAS, SLICE_BETAS)

        first = {name: timed(lambda e=e: slice_with(e)) for name, e in evaluators.items()}
        times = {name: [] for name in evaluators}
        for _ in range(rounds):
            for name, evaluator in evaluators.items():
                times[name].append(timed(lambda e=evaluator: slice_with(e)))
        grids = {name: slice_with(e) for name, e in evaluators.items()}

        def difference(a, b):
            return max(float(np.max(np.abs(grids[a][k] - grids[b][k]))
                             / np.max(np.abs(grids[a][k])))
                       for k in ("improvement", "kl"))

        trainer._evaluate_grid = grid
        return {"env": env_id, "batch": config.batch_size, "first": first,
                "median": {k: statistics.median(v) for k, v in times.items()},
                "ratios": [x / g for g, x in zip(times["2 passes"], times["xla"], strict=True)],
                "shared_difference": difference("2 passes", "graph"),
                "difference": difference("graph", "xla")}
    finally:
        trainer.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", nargs="+", default=["CartPole-v1", "Hopper-v5"])
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    from trpo_viz.quiet import import_tensorflow

    import_tensorflow()
    from trpo_viz.trpo.live import SLICE_GRID

    print(f"Trust-region slice, {SLICE_GRID}² "
          f"points + θ_old, median of {args.rounds} alternating rounds (ms)")
    print(f"{'task':<14} {'batch':>6} {'2 passes':>9} {'graph':>8} {'XLA':>8} "
          f"{'XLA/2 passes':>13} {'range':>11} {'1st XLA':>8} {'graph vs 2':>11} "
          f"{'XLA vs graph':>13}")
    for env_id in args.envs:
        r = bench_task(env_id, args.rounds)
        ratios = sorted(r["ratios"])
        print(f"{r['env']:<14} {r['batch']:>6} {1e3 * r['median']['2 passes']:>9.1f} "
              f"{1e3 * r['median']['graph']:>8.1f} {1e3 * r['median']['xla']:>8.1f} "
              f"{statistics.median(ratios):>13.2f} {ratios[0]:>5.2f}-{ratios[-1]:<5.2f} "
              f"{1e3 * r['first']['xla']:>8.0f} {r['shared_difference']:>11.1e} "
              f"{r['difference']:>13.1e}")
    print("max rel diff: the largest |difference| of the two grids (improvement, KL) over the "
          "grid's largest |value|; 1st XLA: its first call, tracing and compiling included")


if __name__ == "__main__":
    main()
