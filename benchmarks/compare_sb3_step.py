"""One TRPO update on sb3-contrib's weights and data: ours against sb3-contrib's, stage by stage.

sb3-contrib (its own venv, see benchmarks/TRPO.md) builds the zoo's TRPO for a task, trains
``--warm`` updates, collects one more batch and saves that batch, the raw environment stream
beneath its VecNormalize, the normaliser's statistics, and its policy's and value net's
weights (with the value net's Adam state) before and after ``train()``. Ours then runs each
stage of its own update on sb3-contrib's inputs and compares the outputs:

* the policy step: our weights set to sb3's, one step on the same batch (advantages
  normalised as sb3-contrib does, with the unbiased std) through the trainer's compiled
  natural gradient, step size and line search; the two steps compared block by block
  (norms and cosines);
* the normaliser: our ``Normalizer`` started from VecNormalize's statistics and fed the raw
  stream, against the normalised observations and rewards sb3 learned from;
* V(s), GAE and the value targets, with sb3's value weights (our time-limit bootstrap goes
  through V(s_final) in next_values; sb3 adds γ·V(s_final) to the reward);
* the critic: the trainer's compiled ``fit_value`` from sb3's weights and Adam state, on
  sb3's returns in sb3's minibatch order (replayed from NumPy's global RNG).

    python benchmarks/compare_sb3_step.py --env Hopper-v5 --seed 0 --warm 0 20 250 \\
        --sb3-python /work/venv-sb3/bin/python

prints the comparison with our default δ and λ and with ``--also KL DAMPING`` pairs (e.g.
``--also 0.01 0.1``: the zoo's values untranslated). What the two runs still do differently
is only what each draws at random: the initial weights, the actions' noise, the
environments' resets and the critic's shuffles.
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


VALUE_NAMES = ["mlp_extractor.value_net.0.weight", "mlp_extractor.value_net.0.bias",
               "mlp_extractor.value_net.2.weight", "mlp_extractor.value_net.2.bias",
               "value_net.weight", "value_net.bias"]


def ours_layout(data, prefix: str, names) -> list[np.ndarray]:
    """sb3's tensors ``prefix + name`` in our variables' layout: weights transposed, biases flat."""
    return [data[prefix + n].T if n.endswith("weight") else data[prefix + n].reshape(-1)
            for n in names]


def sb3_change(data, names) -> np.ndarray:
    """What sb3-contrib's ``train()`` did to ``names``, flat in our parameter order."""
    return np.concatenate([(after - before).ravel() for after, before in
                           zip(ours_layout(data, "after/", names),
                               ours_layout(data, "before/", names), strict=True)])


def sb3_side(env_id: str, seed: int, warm: int, out: Path) -> None:
    """In sb3-contrib's venv: the zoo's TRPO, ``warm`` updates, then one batch and train().

    Besides the batch and the weights it saves what the rest of the pipeline needs: the raw
    environment stream of the batch (observations, rewards, dones, time-limit flags, final
    observations, recorded below VecNormalize), VecNormalize's statistics before the batch,
    the normalised rewards before sb3's time-limit bootstrap, the value net's weights and
    Adam state before and after train(), and the critic's minibatch permutations (drawn
    from NumPy's global RNG, replayed from its state before train()).
    """
    import torch as th
    from sb3_contrib import TRPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import VecEnvWrapper, VecNormalize

    sys.path.insert(0, str(Path(__file__).parent))
    from bench_sb3 import ZOO_TRPO

    class Recorder(VecEnvWrapper):
        """Below VecNormalize: the raw stream (copies; VecNormalize rewrites the infos)."""

        def __init__(self, venv):
            super().__init__(venv)
            self.steps, self.recording, self.last_raw = [], False, None

        def reset(self):
            self.last_raw = self.venv.reset().copy()
            return self.last_raw

        def step_wait(self):
            obs, rewards, dones, infos = self.venv.step_wait()
            if self.recording:
                final = np.zeros_like(obs)
                for i, done in enumerate(dones):
                    if done:
                        final[i] = infos[i]["terminal_observation"]
                self.steps.append(dict(
                    raw_obs=obs.copy(), raw_rewards=rewards.copy(), dones=dones.copy(),
                    truncated=np.array([bool(info.get("TimeLimit.truncated", False))
                                        for info in infos]), raw_final=final))
            self.last_raw = obs.copy()
            return obs, rewards, dones, infos

    class Seen(BaseCallback):
        """The normalised rewards as collect_rollouts gets them, before its bootstrap."""

        def __init__(self):
            super().__init__()
            self.rewards = []

        def _on_step(self):
            self.rewards.append(np.array(self.locals["rewards"], copy=True))
            return True

    th.set_num_threads(1)
    spec = ZOO_TRPO[env_id]
    recorder = Recorder(make_vec_env(env_id, n_envs=spec["n_envs"], seed=seed))
    env = recorder
    if spec["normalize"]:
        env = VecNormalize(recorder, gamma=spec["kwargs"].get("gamma", 0.99))
    model = TRPO("MlpPolicy", env, seed=seed, device="cpu", verbose=0, **spec["kwargs"])
    batch = spec["n_envs"] * model.n_steps
    seen = Seen()
    _, callback = model._setup_learn(batch * (warm + 1), seen)
    callback.on_training_start(locals(), globals())
    for update in range(warm + 1):
        if update == warm:  # the compared batch
            norm = {}
            if spec["normalize"]:
                norm = {"norm/obs_mean": env.obs_rms.mean, "norm/obs_var": env.obs_rms.var,
                        "norm/obs_count": env.obs_rms.count, "norm/ret_mean": env.ret_rms.mean,
                        "norm/ret_var": env.ret_rms.var, "norm/ret_count": env.ret_rms.count,
                        "norm/returns": env.returns}
                norm = {k: np.array(v, np.float64, copy=True) for k, v in norm.items()}
            start_raw_obs = recorder.last_raw.copy()
            recorder.recording, seen.rewards = True, []
        model.collect_rollouts(model.env, callback, model.rollout_buffer, model.n_steps)
        if update < warm:
            model.train()
    stream = {k: np.stack([s[k] for s in recorder.steps]) for k in recorder.steps[0]}
    buf = model.rollout_buffer
    shaped = dict(buf_obs=buf.observations.copy(), buf_rewards=buf.rewards.copy(),
                  buf_values=buf.values.copy(), buf_advantages=buf.advantages.copy(),
                  buf_returns=buf.returns.copy(), seen_rewards=np.stack(seen.rewards),
                  last_obs=np.array(model._last_obs, copy=True))
    params = dict(model.policy.named_parameters())
    adam = {}
    for name in VALUE_NAMES:
        state = model.policy.optimizer.state.get(params[name], {})
        zeros = np.zeros(tuple(params[name].shape), np.float32)
        adam["adam_m/" + name] = state["exp_avg"].numpy().copy() if state else zeros
        adam["adam_v/" + name] = state["exp_avg_sq"].numpy().copy() if state else zeros
        adam["adam_t/" + name] = np.float64(float(state["step"]) if state else 0.0)
    replay = np.random.RandomState()
    replay.set_state(np.random.get_state())
    perms = np.stack([replay.permutation(batch) for _ in range(1 + model.n_critic_updates)])
    before = {n: p.detach().numpy().copy() for n, p in model.policy.named_parameters()}
    model.train()  # flattens the buffer in place: [n_envs · n_steps, ...] afterwards
    after = {n: p.detach().numpy().copy() for n, p in model.policy.named_parameters()}
    np.savez(out, obs=buf.observations.reshape(batch, -1),
             actions=buf.actions.reshape(batch, -1),
             old_log_prob=buf.log_probs.reshape(batch), advantages=buf.advantages.reshape(batch),
             returns=buf.returns.reshape(batch), critic_perms=perms[1:],
             critic_batch=np.int64(model.batch_size), gamma=np.float64(model.gamma),
             gae_lambda=np.float64(model.gae_lambda), start_raw_obs=start_raw_obs,
             **stream, **shaped, **norm, **adam,
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
        for var, value in zip(trainer.policy.params, ours_layout(data, "before/", SB3_NAMES),
                              strict=True):
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


def our_pipeline(data, env_id: str) -> dict:
    """The rest of our update on sb3-contrib's stream: normaliser, values, GAE, critic.

    Each stage gets sb3-contrib's inputs, so a difference shows where it arises:
    our ``Normalizer`` from VecNormalize's statistics before the batch, fed the raw stream;
    our ``ValueFunction`` with sb3's value weights; our ``gae_advantages`` (time-limit
    truncations bootstrapped through next_values, where sb3 adds γ·V(s_final) to the
    reward); the trainer's compiled ``fit_value`` from sb3's weights and Adam state, on
    sb3's returns in sb3's minibatch order.
    """
    import tensorflow as tf

    from trpo_viz.trpo.config import default_config
    from trpo_viz.trpo.rollout import Normalizer, gae_advantages
    from trpo_viz.trpo.trainer import TRPOTrainer

    config = default_config(env_id)
    raw_obs, raw_rewards, dones = data["raw_obs"], data["raw_rewards"], data["dones"]
    truncated, raw_final = data["truncated"], data["raw_final"]
    n_steps, n_envs = dones.shape
    sb3_obs = data["buf_obs"]  # [n_steps, n_envs, obs_dim], normalised by VecNormalize
    normalize = "norm/obs_mean" in data.files
    out = {}

    # 1. the normaliser: our Normalizer from VecNormalize's state, fed the raw stream
    norm = Normalizer(sb3_obs.shape[2:], n_envs, float(data["gamma"]), normalize, normalize,
                      config.clip_obs, config.clip_reward)
    if normalize:
        norm.obs_rms.load_state({"mean": data["norm/obs_mean"], "var": data["norm/obs_var"],
                                 "count": data["norm/obs_count"]})
        norm.return_rms.load_state({"mean": data["norm/ret_mean"], "var": data["norm/ret_var"],
                                    "count": data["norm/ret_count"]})
        norm.discounted_return = data["norm/returns"].copy()
    rewards = np.zeros((n_steps, n_envs))
    next_obs = np.zeros_like(sb3_obs)
    for t in range(n_steps):
        rewards[t] = norm.reward(raw_rewards[t], dones[t])
        next_obs[t] = norm.observation(raw_obs[t], update=True)
        for i in np.flatnonzero(dones[t]):
            next_obs[t, i] = norm.observation(raw_final[t, i][None])[0]
    continuing = ~dones[:-1]
    out["obs_gap"] = float(np.max(np.abs(next_obs[:-1][continuing] - sb3_obs[1:][continuing])))
    out["reward_gap"] = float(np.max(np.abs(rewards - data["seen_rewards"]))
                              / np.max(np.abs(data["seen_rewards"])))
    out["episode_ends"] = int(dones.sum())
    out["truncations"] = int(truncated.sum())

    trainer = TRPOTrainer(config)
    try:
        value_weights = ours_layout(data, "before/", VALUE_NAMES)
        for var, value in zip(trainer.value.params, value_weights, strict=True):
            var.assign(value.astype(np.float32))

        # 2. V(s) of the batch, and 3. GAE from our rewards and V(next state)
        flat = lambda x: tf.constant(x.reshape(n_steps * n_envs, -1), tf.float32)  # noqa: E731
        values = trainer.value(flat(sb3_obs)).numpy().reshape(n_steps, n_envs)
        next_values = trainer.value(flat(next_obs)).numpy().reshape(n_steps, n_envs)
        out["value_gap"] = float(np.max(np.abs(values - data["buf_values"]))
                                 / np.max(np.abs(data["buf_values"])))
        terminated = dones & ~truncated
        advantages, returns = gae_advantages(rewards, values, next_values, terminated, truncated,
                                             float(data["gamma"]), float(data["gae_lambda"]))
        scale = np.std(data["buf_advantages"])
        out["advantage_gap"] = float(np.max(np.abs(advantages - data["buf_advantages"])) / scale)
        out["return_gap"] = float(np.max(np.abs(returns - data["buf_returns"]))
                                  / np.std(data["buf_returns"]))

        # 4. the critic: our compiled fit_value from sb3's weights and Adam state, on sb3's
        #    returns in sb3's minibatch order
        opt = trainer.value_optimizer
        for variables, key in ((opt.m, "adam_m/"), (opt.v, "adam_v/")):
            for var, value in zip(variables, ours_layout(data, key, VALUE_NAMES), strict=True):
                var.assign(value.astype(np.float32))
        opt.t.assign(float(data["adam_t/" + VALUE_NAMES[0]]))
        batch, mb = data["obs"].shape[0], int(data["critic_batch"])
        minibatches = data["critic_perms"][:, : batch // mb * mb].reshape(-1, mb)
        trainer._fit_value(tf.constant(data["obs"], tf.float32),
                           tf.constant(data["returns"], tf.float32), tf.constant(minibatches))
        mine = np.concatenate([(var.numpy() - w).ravel() for var, w in
                               zip(trainer.value.params, value_weights, strict=True)])
        theirs = sb3_change(data, VALUE_NAMES)
        out["critic_ratio"] = float(np.linalg.norm(mine) / np.linalg.norm(theirs))
        out["critic_cosine"] = float(mine @ theirs / (np.linalg.norm(mine)
                                                      * np.linalg.norm(theirs)))
        out["critic_epochs"] = minibatches.shape[0] * mb // batch
    finally:
        trainer.close()
    return out


def report_pipeline(p: dict) -> None:
    print(f"  the rest of the update ({p['episode_ends']} episode ends in the batch, "
          f"{p['truncations']} of them time limits):")
    print(f"    normalised observations   max |ours − sb3|            {p['obs_gap']:.2e}")
    print(f"    normalised rewards        max |ours − sb3| / max |r|  {p['reward_gap']:.2e}")
    print(f"    V(s) of the batch         max |ours − sb3| / max |V|  {p['value_gap']:.2e}")
    print(f"    GAE advantages            max |ours − sb3| / std A    {p['advantage_gap']:.2e}")
    print(f"    value targets (returns)   max |ours − sb3| / std R    {p['return_gap']:.2e}")
    print(f"    critic ({p['critic_epochs']} epochs of Adam): change in the value net, norm ratio "
          f"ours/sb3 {p['critic_ratio']:.4f}, cosine {p['critic_cosine']:.6f}")


def report(data, ours: dict) -> None:
    sizes = [data["before/" + n].size for n in SB3_NAMES]
    theirs = sb3_change(data, SB3_NAMES)
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


def prepare_ours(parser: argparse.ArgumentParser, sb3_python: str) -> None:
    """Before our side runs: sb3-contrib's interpreter exists, the project and TF import."""
    if not Path(sb3_python).exists():
        parser.error(f"--sb3-python {sb3_python} does not exist (see benchmarks/TRPO.md)")
    sys.path.insert(0, str(ROOT))
    from trpo_viz.quiet import import_tensorflow

    import_tensorflow()


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
    prepare_ours(parser, args.sb3_python)
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
            report_pipeline(our_pipeline(data, args.env))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
