"""One TRPO update on sb3-contrib's own weights and batch: ours against sb3-contrib's.

sb3-contrib (its own venv, see benchmarks/TRPO.md) builds the zoo's TRPO for a task, trains
``--warm`` updates, collects one more batch and saves the batch (normalised observations,
actions, log-probabilities, GAE advantages) and its policy's weights before and after
``train()``. Ours then loads those weights into its policy and takes one step on the same
batch (advantages normalised as sb3-contrib does, with the unbiased std) through the
trainer's compiled natural gradient, step size and line search, and the two steps are
compared block by block: norms and cosines.

    python benchmarks/compare_sb3_step.py --env Hopper-v5 --seed 0 --warm 0 20 \\
        --sb3-python /work/venv-sb3/bin/python

prints the comparison with our default δ and λ and with ``--also KL DAMPING`` pairs (e.g.
``--also 0.01 0.1``: the zoo's values untranslated). The value function is not compared
(its minibatches are shuffled by each library's own RNG).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SB3_PYTHON = "/work/venv-sb3/bin/python"
# sb3's actor parameters in the order of our GaussianPolicy.params (weights transposed).
SB3_NAMES = ["mlp_extractor.policy_net.0.weight", "mlp_extractor.policy_net.0.bias",
             "mlp_extractor.policy_net.2.weight", "mlp_extractor.policy_net.2.bias",
             "action_net.weight", "action_net.bias", "log_std"]


def sb3_side(env_id: str, seed: int, warm: int, out: Path) -> None:
    """In sb3-contrib's venv: the zoo's TRPO, ``warm`` updates, then one batch and train()."""
    import torch as th
    from sb3_contrib import TRPO
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import VecNormalize

    sys.path.insert(0, str(Path(__file__).parent))
    from bench_sb3 import ZOO_TRPO

    th.set_num_threads(1)
    spec = ZOO_TRPO[env_id]
    env = make_vec_env(env_id, n_envs=spec["n_envs"], seed=seed)
    if spec["normalize"]:
        env = VecNormalize(env, gamma=spec["kwargs"].get("gamma", 0.99))
    model = TRPO("MlpPolicy", env, seed=seed, device="cpu", verbose=0, **spec["kwargs"])
    batch = spec["n_envs"] * model.n_steps
    _, callback = model._setup_learn(batch * (warm + 1), None)
    callback.on_training_start(locals(), globals())
    for update in range(warm + 1):
        model.collect_rollouts(model.env, callback, model.rollout_buffer, model.n_steps)
        if update < warm:
            model.train()
    before = {n: p.detach().numpy().copy() for n, p in model.policy.named_parameters()}
    model.train()  # flattens the buffer in place: [n_envs · n_steps, ...] afterwards
    after = {n: p.detach().numpy().copy() for n, p in model.policy.named_parameters()}
    buf = model.rollout_buffer
    np.savez(out, obs=buf.observations.reshape(batch, -1),
             actions=buf.actions.reshape(batch, -1),
             old_log_prob=buf.log_probs.reshape(batch), advantages=buf.advantages.reshape(batch),
             **{"before/" + n: v for n, v in before.items()},
             **{"after/" + n: v for n, v in after.items()})


def our_step(data, env_id: str, max_kl: float | None, damping: float | None) -> dict:
    """Our update from sb3-contrib's weights on sb3-contrib's batch."""
    import dataclasses

    import tensorflow as tf

    from trpo_viz.trpo.config import default_config
    from trpo_viz.trpo.policy import get_flat
    from trpo_viz.trpo.trainer import TRPOTrainer
    from trpo_viz.trpo.update import first_acceptable, line_search_fractions, step_size

    config = default_config(env_id)
    config = dataclasses.replace(config, max_kl=config.max_kl if max_kl is None else max_kl,
                                 cg_damping=config.cg_damping if damping is None else damping)
    trainer = TRPOTrainer(config)
    try:
        weights = [data["before/" + n].T if n.endswith("weight") else data["before/" + n]
                   for n in SB3_NAMES]
        for var, value in zip(trainer.policy.params, weights, strict=True):
            var.assign(value.astype(np.float32))
        obs = tf.constant(data["obs"], tf.float32)
        actions = tf.constant(data["actions"], tf.float32)
        old_dist = trainer.policy(obs)
        old_log_prob = trainer.policy.distribution.log_prob(old_dist, actions)
        advantages = data["advantages"].astype(np.float64)
        advantages = (advantages - advantages.mean()) / (advantages.std(ddof=1) + 1e-8)
        advantages = tf.constant(advantages, tf.float32)
        out = trainer._natural_gradient(obs, actions, advantages, old_log_prob, obs, old_dist)
        full = (step_size(float(out["sFs"]), config.max_kl) * out["x"].numpy()).astype(np.float32)
        theta = get_flat(trainer.policy.params)
        fractions = line_search_fractions(config.line_search_shrink, config.max_backtracks)
        thetas = np.concatenate([theta[None], theta + fractions[:, None] * full])
        surrogates, kls = (t.numpy().astype(float) for t in trainer._evaluate(
            tf.constant(thetas), obs, actions, advantages, old_log_prob, old_dist))
        accepted = first_acceptable(kls[1:], surrogates[1:] - surrogates[0], config.max_kl)
        step = thetas[accepted + 1] - theta if accepted is not None else np.zeros_like(theta)
        return {"step": step, "max_kl": config.max_kl, "damping": config.cg_damping,
                "log_prob_gap": float(np.max(np.abs(old_log_prob.numpy()
                                                    - data["old_log_prob"])))}
    finally:
        trainer.close()


def report(data, ours: dict) -> None:
    sizes = [data["before/" + n].size for n in SB3_NAMES]
    theirs = np.concatenate([(data["after/" + n] - data["before/" + n]).T.ravel()
                             if n.endswith("weight") else
                             (data["after/" + n] - data["before/" + n]).ravel()
                             for n in SB3_NAMES])
    mine = ours["step"]

    def cosine(a, b):
        return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-300))

    print(f"  ours with δ = {ours['max_kl']:g}, λ = {ours['damping']:g} (log-prob of the batch "
          f"agrees to {ours['log_prob_gap']:.1e}): step norm ratio ours/sb3 "
          f"{np.linalg.norm(mine) / np.linalg.norm(theirs):.4f}, cosine {cosine(mine, theirs):.6f}")
    start = 0
    for name, size in zip(SB3_NAMES, sizes, strict=True):
        a, b = mine[start:start + size], theirs[start:start + size]
        start += size
        print(f"    {name:<34} norm ratio {np.linalg.norm(a) / np.linalg.norm(b):7.4f}   "
              f"cosine {cosine(a, b):.6f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="Hopper-v5")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--warm", type=int, nargs="+", default=[0, 20],
                        help="sb3-contrib updates before the compared one")
    parser.add_argument("--also", type=float, nargs=2, action="append", default=[],
                        metavar=("KL", "DAMPING"), help="also compare ours with these δ, λ")
    parser.add_argument("--sb3-python", default=DEFAULT_SB3_PYTHON)
    parser.add_argument("--side", choices=("sb3",), help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side == "sb3":
        sb3_side(args.env, args.seed, args.warm[0], Path(args.out))
        return 0
    if not Path(args.sb3_python).exists():
        parser.error(f"--sb3-python {args.sb3_python} does not exist (see benchmarks/TRPO.md)")
    sys.path.insert(0, str(ROOT))
    from trpo_viz.quiet import import_tensorflow

    import_tensorflow()
    with tempfile.TemporaryDirectory() as tmp:
        for warm in args.warm:
            out = Path(tmp) / f"sb3_{warm}.npz"
            subprocess.run([args.sb3_python, __file__, "--side", "sb3", "--env", args.env,
                            "--seed", str(args.seed), "--warm", str(warm), "--out", str(out)],
                           check=True, cwd=ROOT)
            data = np.load(out)
            print(f"{args.env} seed {args.seed}, update {warm + 1} (after {warm} sb3-contrib "
                  "updates), on sb3-contrib's weights and batch:")
            for max_kl, damping in [(None, None), *args.also]:
                report(data, our_step(data, args.env, max_kl, damping))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
