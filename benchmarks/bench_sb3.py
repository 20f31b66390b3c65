"""Our TRPO against sb3-contrib's on MuJoCo tasks: same zoo config, budget and seeds, 1 thread each.

    nice -n 19 .venv/bin/python benchmarks/bench_sb3.py --envs InvertedPendulum-v5 \\
        --seeds 0 1 2 --steps 100000 --sb3-python /work/venv-sb3/bin/python --json out.json

Every run is a fresh subprocess (this file in ``--worker`` mode), one at a time, seed by
seed, ours then sb3-contrib's: ours with the project's interpreter and the trainer API
(``TRPOTrainer(default_config(env_id, seed=...))``, ``step()`` until the budget), sb3's
with ``--sb3-python`` (a separate venv holding torch, stable-baselines3 and sb3-contrib,
which are not project dependencies). One CPU thread each: TensorFlow's intra/inter-op
pools 1, ``torch.set_num_threads(1)``, OMP/MKL/OpenBLAS 1; ``--cpu N`` also pins every run
to core N with ``taskset``.

Both sides take rl-baselines3-zoo's ``hyperparams/trpo.yml`` settings (ZOO_TRPO below,
copied by hand for sb3-contrib; ours reads the same values from ``default_config``) and
stop at the first update that reaches the budget (whole batches on both sides).

Reported per run:

* ``final return``: the mean undiscounted return of the last ``--last-n`` (100) training
  episodes, raw rewards (before any normalisation), in the order they ended: ours from
  the update records, sb3's from its Monitor wrappers (merged by end time). The same
  definition for both, and what SB3 logs as ``rollout/ep_rew_mean``.
* ``eval``: the mean of ``--eval-episodes`` deterministic episodes after training
  (observation normaliser frozen), seeds 10_000 + seed + i on both sides.
* ``wall``: seconds of training only (not start-up, not evaluation).
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SB3_PYTHON = "/work/venv-sb3/bin/python"

# rl-baselines3-zoo hyperparams/trpo.yml (commit 22e3ff2), for sb3-contrib. The MuJoCo block
# (&mujoco-defaults, named for the -v4 tasks); InvertedPendulum has no entry: the zoo's
# ``default`` (one env, sb3-contrib's defaults). ``n_timesteps`` is the zoo's budget;
# --steps overrides it (issue 11: InvertedPendulum at 100k, Hopper at 1M).
_MUJOCO = dict(
    n_envs=2,
    n_timesteps=1_000_000,
    normalize=True,
    kwargs=dict(
        batch_size=128, n_steps=1024, gamma=0.99, gae_lambda=0.95, sub_sampling_factor=1,
        cg_max_steps=25, cg_damping=0.1, n_critic_updates=20, learning_rate=1e-3,
    ),
)
ZOO_TRPO = {
    "Hopper-v5": _MUJOCO,
    "Walker2d-v5": _MUJOCO,
    "Ant-v5": _MUJOCO,
    "HalfCheetah-v5": {**_MUJOCO, "kwargs": {**_MUJOCO["kwargs"], "target_kl": 0.04}},
    "Swimmer-v5": {**_MUJOCO, "kwargs": {**_MUJOCO["kwargs"], "gamma": 0.9999}},
    "InvertedPendulum-v5": dict(n_envs=1, n_timesteps=1_000_000, normalize=False, kwargs={}),
}
THREAD_ENV = {
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "TF_NUM_INTRAOP_THREADS": "1",
    "TF_NUM_INTEROP_THREADS": "1",
    "TF_CPP_MIN_LOG_LEVEL": "3",
}


# --- the two workers (each runs in its own process) ---------------------------------------


def worker_ours(env_id: str, seed: int, steps: int, eval_episodes: int) -> dict:
    sys.path.insert(0, str(ROOT))
    from trpo_viz.trpo import TRPOTrainer, default_config
    from trpo_viz.trpo.trainer import set_num_threads

    set_num_threads(1)
    config = default_config(env_id, seed=seed, total_timesteps=steps)
    trainer = TRPOTrainer(config)
    returns: list[float] = []
    start = time.perf_counter()
    while not trainer.done:
        returns += trainer.step().episode_returns
    wall = time.perf_counter() - start
    evaluation = (
        trainer.evaluate(eval_episodes, deterministic=True, seed=10_000 + seed)
        if eval_episodes else []
    )
    result = _result(returns, evaluation, wall, trainer.total_timesteps, len(trainer.records))
    if hasattr(trainer.policy, "log_std"):  # the exploration noise training ended with
        result["log_std"] = [float(v) for v in trainer.policy.log_std.numpy()]
    trainer.close()
    return result


def worker_sb3(env_id: str, seed: int, steps: int, eval_episodes: int) -> dict:
    import numpy as np
    import torch
    from sb3_contrib import TRPO
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import VecNormalize

    torch.set_num_threads(1)
    torch.set_num_interop_threads(1)
    spec = ZOO_TRPO[env_id]
    env = make_vec_env(env_id, n_envs=spec["n_envs"], seed=seed)  # Monitor-wrapped
    if spec["normalize"]:
        env = VecNormalize(env, gamma=spec["kwargs"].get("gamma", 0.99))
    model = TRPO("MlpPolicy", env, seed=seed, device="cpu", verbose=0, **spec["kwargs"])
    start = time.perf_counter()
    model.learn(total_timesteps=steps)
    wall = time.perf_counter() - start
    # Every finished episode's raw return, in the order they ended (Monitor's end times).
    ended = []
    for rewards, times in zip(env.env_method("get_episode_rewards"),
                              env.env_method("get_episode_times"), strict=True):
        ended += list(zip(times, rewards, strict=True))
    returns = [float(r) for _, r in sorted(ended, key=lambda pair: pair[0])]
    evaluation = _evaluate_sb3(model, env, env_id, seed, eval_episodes) if eval_episodes else []
    batch = spec["n_envs"] * model.n_steps
    updates = int(np.ceil(model.num_timesteps / batch))
    result = _result(returns, evaluation, wall, model.num_timesteps, updates)
    if hasattr(model.policy, "log_std"):
        result["log_std"] = [float(v) for v in model.policy.log_std.detach().cpu().numpy()]
    return result


def _evaluate_sb3(model, train_env, env_id, seed, episodes) -> list[float]:
    """Deterministic episodes with the frozen normaliser, seeds 10_000 + seed + i."""
    import gymnasium as gym

    returns = []
    for episode in range(episodes):
        env = gym.make(env_id)
        obs, _ = env.reset(seed=10_000 + seed + episode)
        total, done = 0.0, False
        while not done:
            if hasattr(train_env, "normalize_obs"):
                obs = train_env.normalize_obs(obs)
            action, _ = model.predict(obs, deterministic=True)
            obs, reward, terminated, truncated, _ = env.step(action)
            total += float(reward)
            done = terminated or truncated
        env.close()
        returns.append(total)
    return returns


def _result(returns, evaluation, wall, timesteps, updates) -> dict:
    return {
        "episode_returns": returns,
        "eval_returns": evaluation,
        "wall_s": wall,
        "timesteps": timesteps,
        "updates": updates,
    }


# --- the driver --------------------------------------------------------------------------


def run_worker(python: str, side: str, env_id: str, seed: int, steps: int, eval_episodes: int,
               cpu: int | None) -> dict:
    command = [python, str(Path(__file__).resolve()), "--worker", side, "--env", env_id,
               "--seed", str(seed), "--steps", str(steps), "--eval-episodes", str(eval_episodes)]
    if cpu is not None:
        command = ["taskset", "-c", str(cpu), *command]
    env = {**os.environ, **THREAD_ENV}
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{side} {env_id} seed {seed} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def stored_sb3(paths: list[str], env_id: str, seed: int, steps: int):
    """(path, sb3-contrib's result) for this run from an earlier --json file, or None."""
    for path in paths:
        try:
            results = json.loads(Path(path).read_text())["results"]
        except (OSError, ValueError, KeyError, TypeError):
            continue
        for row in results:
            if (row.get("env"), row.get("seed"), row.get("steps")) == (env_id, seed, steps) \
                    and isinstance(row.get("sb3"), dict):
                return path, row["sb3"]
    return None


def final_return(result: dict, last_n: int) -> float:
    """Mean raw return of the last ``last_n`` training episodes (NaN if none ended)."""
    tail = result["episode_returns"][-last_n:]
    return sum(tail) / len(tail) if tail else float("nan")


def _sigma(result: dict) -> str:
    """Mean σ = exp(log_std) over action dimensions at the end of training ('-' if none)."""
    if "log_std" not in result:
        return "-"
    return f"{sum(math.exp(v) for v in result['log_std']) / len(result['log_std']):.3f}"


def _mean(values) -> float:
    values = list(values)
    return sum(values) / len(values) if values else float("nan")


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return f"{cpu}, {os.cpu_count()} logical CPUs, load average {load}, {platform.platform()}"


def print_table(env_id: str, rows: list[dict], last_n: int) -> None:
    header = (f"{'seed':>4} | {'ours ret':>9} {'sb3 ret':>9} {'diff':>8} | {'ours eval':>9} "
              f"{'sb3 eval':>9} | {'ours s':>8} {'sb3 s':>8} {'ratio':>6} | "
              f"{'ours st/s':>9} {'sb3 st/s':>9} | {'steps':>8} | {'ours σ':>6} {'sb3 σ':>6}")
    print(f"\n{env_id}: final return = mean of the last {last_n} training episodes; eval = "
          "deterministic episodes after training; s = training wall time; ratio = ours / sb3; "
          "σ = the policy's exploration noise at the end, mean over action dimensions of "
          "exp(log_std)")
    print(header)
    print("-" * len(header))
    for row in rows:
        ours, sb3 = row["ours"], row["sb3"]
        o, s = final_return(ours, last_n), final_return(sb3, last_n)
        ow, sw = ours["wall_s"], sb3["wall_s"]
        print(f"{row['seed']:>4} | {o:>9.1f} {s:>9.1f} {o - s:>+8.1f} | "
              f"{_mean(ours['eval_returns']):>9.1f} {_mean(sb3['eval_returns']):>9.1f} | "
              f"{ow:>8.1f} {sw:>8.1f} {ow / sw:>6.2f} | "
              f"{ours['timesteps'] / ow:>9.0f} {sb3['timesteps'] / sw:>9.0f} | "
              f"{ours['timesteps']:>8} | {_sigma(ours):>6} {_sigma(sb3):>6}")
    if len(rows) > 1:
        o = _mean(final_return(r["ours"], last_n) for r in rows)
        s = _mean(final_return(r["sb3"], last_n) for r in rows)
        ow, sw = _mean(r["ours"]["wall_s"] for r in rows), _mean(r["sb3"]["wall_s"] for r in rows)
        print(f"{'mean':>4} | {o:>9.1f} {s:>9.1f} {o - s:>+8.1f} | "
              f"{_mean(_mean(r['ours']['eval_returns']) for r in rows):>9.1f} "
              f"{_mean(_mean(r['sb3']['eval_returns']) for r in rows):>9.1f} | "
              f"{ow:>8.1f} {sw:>8.1f} {ow / sw:>6.2f} |")
    sys.stdout.flush()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", nargs="+", default=["InvertedPendulum-v5"],
                        choices=sorted(ZOO_TRPO))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=None,
                        help="environment steps per run (default: the zoo's budget)")
    parser.add_argument("--sb3-python", default=DEFAULT_SB3_PYTHON,
                        help="python of the venv with sb3-contrib (%(default)s)")
    parser.add_argument("--last-n", type=int, default=100,
                        help="final return = mean of the last N training episodes (%(default)s)")
    parser.add_argument("--eval-episodes", type=int, default=10)
    parser.add_argument("--cpu", type=int, default=None, help="pin every run to this core")
    parser.add_argument("--json", default=None,
                        help="write every result here (rewritten after each run)")
    parser.add_argument("--reuse-sb3", nargs="+", default=[], metavar="JSON",
                        help="take sb3-contrib's result for an (env, seed, steps) from these "
                             "earlier --json files instead of training it again (one thread, "
                             "one seed: sb3-contrib's run is the same every time)")
    parser.add_argument("--worker", choices=("ours", "sb3"), help=argparse.SUPPRESS)
    parser.add_argument("--env", help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        worker = worker_ours if args.worker == "ours" else worker_sb3
        print(json.dumps(worker(args.env, args.seed, args.steps, args.eval_episodes)))
        return 0
    if not Path(args.sb3_python).exists():
        parser.error(f"--sb3-python {args.sb3_python} does not exist (see the module docstring)")

    started = datetime.datetime.now(datetime.UTC)
    info = {"command": " ".join([Path(sys.executable).name, *sys.argv]),
            "started": started.isoformat(timespec="seconds"), "machine": machine(),
            "last_n": args.last_n, "results": []}
    print(f"# {info['started']}  {info['machine']}", flush=True)
    for env_id in args.envs:
        steps = args.steps or ZOO_TRPO[env_id]["n_timesteps"]
        rows = []
        for seed in args.seeds:
            row = {"env": env_id, "seed": seed, "steps": steps}
            for side, python in (("ours", sys.executable), ("sb3", args.sb3_python)):
                stamp = datetime.datetime.now().strftime("%H:%M:%S")
                earlier = stored_sb3(args.reuse_sb3, env_id, seed, steps) if side == "sb3" \
                    else None
                if earlier is not None:
                    print(f"# {stamp} {env_id} seed {seed}: sb3 from {earlier[0]}", flush=True)
                    row[side] = dict(earlier[1], reused_from=earlier[0])
                    continue
                print(f"# {stamp} {env_id} seed {seed}: {side} ...", flush=True)
                row[side] = run_worker(python, side, env_id, seed, steps, args.eval_episodes,
                                       args.cpu)
                print(f"#   {side}: {final_return(row[side], args.last_n):.1f} in "
                      f"{row[side]['wall_s']:.0f} s", flush=True)
            rows.append(row)
            info["results"].append(row)
            if args.json:
                Path(args.json).write_text(json.dumps(info))
        print_table(env_id, rows, args.last_n)
    finished = datetime.datetime.now(datetime.UTC)
    print(f"\n# finished {finished.isoformat(timespec='seconds')} "
          f"({(finished - started).total_seconds() / 60:.0f} min); load average now "
          f"{', '.join(f'{x:.1f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
