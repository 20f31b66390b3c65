"""Our TRPO against sb3-contrib's, same task, budget, zoo hyperparameters, one CPU thread each.

    python benchmarks/bench_trpo.py --envs CartPole-v1 Pendulum-v1 --seeds 0 1 2 \
        --sb3-python /work/bench-venv/bin/python

Each run is a fresh subprocess (this same file in ``--worker`` mode): ours with the
project's interpreter, sb3-contrib's with ``--sb3-python`` (a separate venv holding
torch + sb3-contrib, which are not project dependencies). Runs go one at a time. Wall
time is training only; the evaluation is 20 deterministic episodes afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# rl-baselines3-zoo hyperparams/trpo.yml (sb3-contrib side; ours reads the same values
# from trpo_viz.trpo.config.default_config).
ZOO_TRPO = {
    "CartPole-v1": dict(
        n_envs=2,
        n_timesteps=100_000,
        normalize=False,
        kwargs=dict(
            n_steps=512,
            batch_size=512,
            cg_damping=1e-3,
            gae_lambda=0.98,
            gamma=0.99,
            learning_rate=1e-3,
            n_critic_updates=20,
        ),
    ),
    "Pendulum-v1": dict(
        n_envs=2,
        n_timesteps=100_000,
        normalize=False,
        kwargs=dict(n_steps=1024, gamma=0.9, n_critic_updates=15, use_sde=True, sde_sample_freq=4),
    ),
    "Acrobot-v1": dict(n_envs=2, n_timesteps=100_000, normalize=True, kwargs=dict(n_steps=1024)),
    "MountainCarContinuous-v0": dict(
        n_envs=2,
        n_timesteps=50_000,
        normalize=True,
        kwargs=dict(use_sde=True, sde_sample_freq=4),
    ),
}


def worker_ours(env_id: str, seed: int, steps: int | None) -> dict:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.path.insert(0, str(ROOT))
    from trpo_viz.trpo import TRPOTrainer, default_config
    from trpo_viz.trpo.trainer import set_num_threads

    set_num_threads(1)
    config = default_config(env_id, seed=seed)
    if steps:
        config.total_timesteps = steps
    trainer = TRPOTrainer(config)
    start = time.perf_counter()
    trainer.train()
    wall = time.perf_counter() - start
    returns = trainer.evaluate(20, deterministic=True)
    return _result(returns, wall, trainer.total_timesteps, len(trainer.records))


def worker_sb3(env_id: str, seed: int, steps: int | None) -> dict:
    import numpy as np
    import torch
    from sb3_contrib import TRPO
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.evaluation import evaluate_policy
    from stable_baselines3.common.vec_env import VecNormalize

    torch.set_num_threads(1)
    spec = ZOO_TRPO[env_id]
    total = steps or spec["n_timesteps"]
    env = make_vec_env(env_id, n_envs=spec["n_envs"], seed=seed)
    if spec["normalize"]:
        env = VecNormalize(env, gamma=spec["kwargs"].get("gamma", 0.99))
    model = TRPO("MlpPolicy", env, seed=seed, device="cpu", verbose=0, **spec["kwargs"])
    start = time.perf_counter()
    model.learn(total_timesteps=total)
    wall = time.perf_counter() - start
    eval_env = make_vec_env(env_id, n_envs=1, seed=seed + 10_000)
    if spec["normalize"]:
        eval_env = VecNormalize(eval_env, training=False, norm_reward=False)
        eval_env.obs_rms = env.obs_rms
    returns, _ = evaluate_policy(
        model, eval_env, n_eval_episodes=20, deterministic=True, return_episode_rewards=True
    )
    n_updates = int(np.ceil(total / (spec["n_envs"] * model.n_steps)))
    return _result([float(r) for r in returns], wall, model.num_timesteps, n_updates)


def _result(returns, wall, timesteps, updates) -> dict:
    return {
        "eval_mean_return": sum(returns) / len(returns),
        "eval_returns": returns,
        "wall_s": wall,
        "timesteps": timesteps,
        "updates": updates,
        "steps_per_s": timesteps / wall,
        "s_per_update": wall / updates,
    }


def run_worker(python: str, side: str, env_id: str, seed: int, steps: int | None) -> dict:
    command = [python, __file__, "--worker", side, "--env", env_id, "--seed", str(seed)]
    if steps:
        command += ["--steps", str(steps)]
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "TF_CPP_MIN_LOG_LEVEL": "3",
    }
    out = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"{side} {env_id} seed {seed} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", nargs="+", default=["CartPole-v1", "Pendulum-v1"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=None, help="override the zoo budget")
    parser.add_argument("--sb3-python", default="/work/bench-venv/bin/python")
    parser.add_argument("--skip-sb3", action="store_true")
    parser.add_argument("--json", default=None, help="also write all results here")
    parser.add_argument("--worker", choices=("ours", "sb3"), help=argparse.SUPPRESS)
    parser.add_argument("--env", help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        worker = worker_ours if args.worker == "ours" else worker_sb3
        print(json.dumps(worker(args.env, args.seed, args.steps)))
        return 0

    results = []
    for env_id in args.envs:
        print(
            f"\n{env_id}  (budget {args.steps or ZOO_TRPO[env_id]['n_timesteps']} steps, "
            "1 CPU thread each, eval = mean of 20 deterministic episodes)"
        )
        header = (
            f"{'seed':>4} | {'ours eval':>9} {'sb3 eval':>9} | {'ours s':>7} {'sb3 s':>7} "
            f"{'ratio':>6} | {'ours st/s':>9} {'sb3 st/s':>9} | {'ours s/upd':>10} "
            f"{'sb3 s/upd':>10}"
        )
        print(header)
        print("-" * len(header))
        for seed in args.seeds:
            ours = run_worker(sys.executable, "ours", env_id, seed, args.steps)
            sb3 = (
                None
                if args.skip_sb3
                else run_worker(args.sb3_python, "sb3", env_id, seed, args.steps)
            )
            results.append({"env": env_id, "seed": seed, "ours": ours, "sb3": sb3})
            s = sb3 or {k: float("nan") for k in ours if k != "eval_returns"}
            print(
                f"{seed:>4} | {ours['eval_mean_return']:>9.1f} {s['eval_mean_return']:>9.1f} | "
                f"{ours['wall_s']:>7.1f} {s['wall_s']:>7.1f} "
                f"{ours['wall_s'] / s['wall_s']:>6.2f} | {ours['steps_per_s']:>9.0f} "
                f"{s['steps_per_s']:>9.0f} | {ours['s_per_update']:>10.3f} "
                f"{s['s_per_update']:>10.3f}",
                flush=True,
            )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
