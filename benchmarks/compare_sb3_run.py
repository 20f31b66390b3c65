"""Many TRPO updates in a row, ours against sb3-contrib's, on the same actions: what carries over.

``compare_sb3_step.py`` checks one update at a time, each of our stages started from
sb3-contrib's state. This script checks what that cannot: the state each side carries from
one batch to the next (the environments' episodes running across batches, VecNormalize's
running statistics and discounted returns, the value net's Adam moments, the policy itself)
over ``--updates`` consecutive updates.

sb3-contrib (its own venv, see benchmarks/TRPO.md) trains the zoo's TRPO for a task and
records, per update, the actions it sampled (unclipped, as its rollout buffer holds them),
the normalised observations it acted on, and its critic's minibatch order (replayed from
NumPy's global RNG); then its weights and VecNormalize's statistics at the end. Ours then
trains the same number of updates through ``TRPOTrainer.step()`` itself, from sb3's
initial weights, with two things replaced: the action noise (each step's action is sb3's)
and the critic's shuffles (sb3's order). Everything else is ours: our vector env (seeded
as sb3 seeds its envs), our normaliser, collector, GAE, natural gradient, line search and
critic. With the same actions the environments take the same path, so after every update:

* our normalised observations must equal sb3's (each update's batch);
* our finished episodes' raw returns must equal sb3's Monitor returns, in the same order;
* at the end our normaliser's statistics must equal VecNormalize's;
* our policy and value net, against sb3's: their distance, relative to how far sb3's has
  moved from the start. Both sides compute in float32 with different summation orders,
  and TRPO's update (25 CG steps on an ill-conditioned Fisher) amplifies differences
  from one update to the next, so the distance grows even between two runs of the same
  code. The control says how fast: ours a second time, from sb3's initial weights nudged
  by one float32 unit in the last place. A real difference between the two algorithms
  shows as ours − sb3 leaving the control behind; rounding alone keeps them together.

    python benchmarks/compare_sb3_run.py --env Hopper-v5 --seed 0 --updates 100 \\
        --sb3-python /work/venv-sb3/bin/python
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from compare_sb3_step import (  # noqa: E402 - the script's own folder, as a sibling module
    DEFAULT_SB3_PYTHON,
    ROOT,
    SB3_NAMES,
    VALUE_NAMES,
    ours_layout,
    prepare_ours,
)

REPORT_AT = (1, 2, 5, 10, 25, 50, 100, 200, 500)  # updates shown in the table (and the last)


def flat(arrays) -> np.ndarray:
    return np.concatenate([np.asarray(a, np.float64).ravel() for a in arrays])


def sb3_side(env_id: str, seed: int, updates: int, out: Path) -> None:
    """In sb3-contrib's venv: the zoo's TRPO, ``updates`` updates, recording what ours replays."""
    import torch as th
    from bench_sb3 import ZOO_TRPO
    from sb3_contrib import TRPO
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import VecNormalize

    th.set_num_threads(1)
    spec = ZOO_TRPO[env_id]
    env = make_vec_env(env_id, n_envs=spec["n_envs"], seed=seed)
    if spec["normalize"]:
        env = VecNormalize(env, gamma=spec["kwargs"].get("gamma", 0.99))
    model = TRPO("MlpPolicy", env, seed=seed, device="cpu", verbose=0, **spec["kwargs"])
    batch = spec["n_envs"] * model.n_steps

    def weights(prefix):
        named = {n: p.detach().numpy().copy() for n, p in model.policy.named_parameters()}
        return {f"{prefix}/{n}": v for n, v in named.items()}

    saved = weights("init")
    actions, observations, perms, policy_after, value_after = [], [], [], [], []
    _, callback = model._setup_learn(batch * updates, None)
    callback.on_training_start(locals(), globals())
    for _ in range(updates):
        model.collect_rollouts(model.env, callback, model.rollout_buffer, model.n_steps)
        buf = model.rollout_buffer
        actions.append(buf.actions.copy())  # [n_steps, n_envs, act_dim], before train() flattens
        observations.append(buf.observations.copy())
        replay = np.random.RandomState()
        replay.set_state(np.random.get_state())
        # train(): one permutation for the policy step (get(None)), one per critic epoch
        perms.append(np.stack([replay.permutation(batch)
                               for _ in range(1 + model.n_critic_updates)])[1:])
        model.train()
        params = dict(model.policy.named_parameters())
        policy_after.append(flat(ours_layout(
            {n: params[n].detach().numpy() for n in SB3_NAMES}, "", SB3_NAMES)))
        value_after.append(flat(ours_layout(
            {n: params[n].detach().numpy() for n in VALUE_NAMES}, "", VALUE_NAMES)))
    norm = {}
    if spec["normalize"]:
        norm = {"norm/obs_mean": env.obs_rms.mean, "norm/obs_var": env.obs_rms.var,
                "norm/obs_count": env.obs_rms.count, "norm/ret_mean": env.ret_rms.mean,
                "norm/ret_var": env.ret_rms.var, "norm/ret_count": env.ret_rms.count}
        norm = {k: np.array(v, np.float64, copy=True) for k, v in norm.items()}
    # Monitor's returns per env; ours lists episodes as they end, env by env within a step
    episode_returns = env.env_method("get_episode_rewards")
    ends = [np.cumsum(lengths) for lengths in env.env_method("get_episode_lengths")]
    order = sorted((int(end), i, float(ret)) for i, (rets, env_ends) in
                   enumerate(zip(episode_returns, ends, strict=True))
                   for ret, end in zip(rets, env_ends, strict=True))
    np.savez(out, env_id=np.str_(env_id), seed=np.int64(seed), updates=np.int64(updates),
             actions=np.stack(actions), observations=np.stack(observations),
             critic_perms=np.stack(perms), policy_after=np.stack(policy_after),
             value_after=np.stack(value_after), n_steps=np.int64(model.n_steps),
             episode_returns=np.array([r for _, _, r in order]), **norm, **saved)


def our_run(data, env_id: str, seed: int, updates: int, nudge: bool = False) -> dict:
    """``TRPOTrainer.step()`` ``updates`` times from sb3's initial weights, on sb3's actions.

    ``nudge``: start from sb3's weights moved by one float32 unit in the last place each
    (``np.nextafter`` towards +∞), the control: how far rounding alone carries one run of
    ours from another on the same data.
    """
    from trpo_viz.trpo.config import default_config
    from trpo_viz.trpo.policy import get_flat
    from trpo_viz.trpo.trainer import TRPOTrainer

    config = default_config(env_id, seed=seed)
    trainer = TRPOTrainer(config)
    n_steps, n_envs = int(data["n_steps"]), config.n_envs
    assert n_steps == config.n_steps and data["actions"].shape[2] == n_envs
    out = {"draws": random_draws(data, trainer)}  # first: it reads our own initial weights
    for variables, names in ((trainer.policy.params, SB3_NAMES),
                             (trainer.value.params, VALUE_NAMES)):
        for var, value in zip(variables, ours_layout(data, "init/", names), strict=True):
            value = value.astype(np.float32)
            var.assign(np.nextafter(value, np.float32(np.inf)) if nudge else value)
    trainer._sync_numpy_policy()
    state = {"update": 0, "t": 0, "obs_gap": 0.0}

    def act(obs):  # sb3's action for this step; check we see the observation sb3 acted on
        u, t = state["update"], state["t"]
        state["obs_gap"] = max(state["obs_gap"],
                               float(np.max(np.abs(obs - data["observations"][u, t]))))
        state["t"] += 1
        return data["actions"][u, t].astype(np.float32)

    def value_minibatches(n):  # sb3's shuffles, mapped from its env-major flattening
        sb3_index = data["critic_perms"][state["update"]]  # [epochs, n]
        ours = (sb3_index % n_steps) * n_envs + sb3_index // n_steps
        mb = config.value_batch_size
        return ours[:, : n // mb * mb].reshape(-1, mb)

    trainer._act, trainer._value_minibatches = act, value_minibatches
    thetas, values, obs_gaps, backtracks, returns = [], [], [], [], []
    try:
        for u in range(updates):
            state["update"], state["t"], state["obs_gap"] = u, 0, 0.0
            record = trainer.step()
            returns.extend(record.episode_returns)
            thetas.append(get_flat(trainer.policy.params).astype(np.float64))
            values.append(flat(v.numpy() for v in trainer.value.params))
            obs_gaps.append(state["obs_gap"])
            backtracks.append(record.backtracks)
        out["normalizer"] = trainer.normalizer.state()
    finally:
        trainer.close()
    return out | {"thetas": np.array(thetas), "values": np.array(values),
                  "obs_gaps": obs_gaps, "backtracks": backtracks, "returns": returns}


def compare(data, ours: dict, nudged: dict) -> list[dict]:
    """Per update: ours against sb3-contrib, and ours against ours nudged (the control).

    Distances are relative to how far sb3's policy (value net) has moved from the start.
    """
    theta0 = flat(ours_layout(data, "init/", SB3_NAMES))
    value0 = flat(ours_layout(data, "init/", VALUE_NAMES))
    rows = []
    for u in range(len(ours["thetas"])):
        moved = np.linalg.norm(data["policy_after"][u] - theta0)
        value_moved = np.linalg.norm(data["value_after"][u] - value0)
        rows.append(dict(
            update=u + 1, obs_gap=max(ours["obs_gaps"][u], nudged["obs_gaps"][u]),
            policy_gap=np.linalg.norm(ours["thetas"][u] - data["policy_after"][u]) / moved,
            policy_control=np.linalg.norm(ours["thetas"][u] - nudged["thetas"][u]) / moved,
            value_gap=np.linalg.norm(ours["values"][u] - data["value_after"][u]) / value_moved,
            value_control=np.linalg.norm(ours["values"][u] - nudged["values"][u]) / value_moved,
            backtracks=ours["backtracks"][u]))
    sb3_returns, returns = data["episode_returns"], ours["returns"]
    common = min(len(returns), len(sb3_returns))
    last = rows[-1]
    last["episode_count"], last["episodes_compared"] = (len(returns), len(sb3_returns)), common
    last["return_gap"] = float(np.max(np.abs(np.array(returns[:common])
                                             - sb3_returns[:common]))) if common else 0.0
    if "norm/obs_mean" in data:
        last["norm_gap"] = {  # relative: max |ours − sb3| / max |sb3|
            k[5:]: float(np.max(np.abs(np.asarray(ours["normalizer"][k[5:]]) - data[k]))
                         / np.max(np.abs(data[k])))
            for k in data if k.startswith("norm/")}
    return rows


def random_draws(data, trainer, batches: int = 10) -> dict:
    """What each side draws at random, measured: initial weights and the action noise.

    Initial weights: each layer's singular values (orthogonal initialisation makes all of
    them the layer's gain), the largest |bias| and |log σ|; ours from a fresh trainer,
    sb3's from its model before training. Action noise: ε = (a − μ(s)) / σ for the actions
    of the first ``batches`` batches, sb3's through its policy at the time (μ recomputed
    with our numpy forward from sb3's weights), ours drawn by our policy on the same
    observations; each against N(0, 1) by a Kolmogorov-Smirnov test.
    """
    from scipy import stats

    from trpo_viz.trpo.policy import mlp_forward_numpy, set_flat

    def layers(arrays):
        weights = [w for w in arrays if w.ndim == 2]
        return ([np.linalg.svd(w, compute_uv=False) for w in weights],
                max((float(np.max(np.abs(b))) for b in arrays if b.ndim == 1), default=0.0))

    ours_init = [v.numpy() for v in (*trainer.policy.params, *trainer.value.params)]
    sb3_init = [*ours_layout(data, "init/", SB3_NAMES), *ours_layout(data, "init/", VALUE_NAMES)]
    out = {"init": {side: layers(arrays) for side, arrays in
                    (("ours", ours_init), ("sb3", sb3_init))}}
    policy = trainer.policy
    theta_init = np.concatenate([a.ravel() for a in ours_layout(data, "init/", SB3_NAMES)])
    eps = {"ours": [], "sb3": []}
    rng = np.random.default_rng(12345)
    for u in range(min(batches, len(data["actions"]))):
        set_flat(policy.params, theta_init if u == 0 else data["policy_after"][u - 1])
        params = [v.numpy() for v in policy.params]
        obs = data["observations"][u].reshape(-1, data["observations"].shape[-1])
        mean = mlp_forward_numpy(params[:-1], obs, policy.activation)
        std = np.exp(params[-1].astype(np.float64))
        sb3_actions = data["actions"][u].reshape(mean.shape)
        eps["sb3"].append((sb3_actions - mean) / std)
        eps["ours"].append((policy.act_numpy(params, obs, rng) - mean) / std)
    out["noise"] = {}
    for side, values in eps.items():
        e = np.concatenate(values).ravel()
        out["noise"][side] = dict(n=e.size, mean=float(e.mean()), std=float(e.std()),
                                  ks_p=float(stats.kstest(e, "norm").pvalue))
    return out


def report_draws(draws: dict) -> None:
    print("what each side draws at random:")
    ours, sb3 = draws["init"]["ours"], draws["init"]["sb3"]
    print("  initial weights, singular values per layer (min-max), ours | sb3:")
    for i, (a, b) in enumerate(zip(ours[0], sb3[0], strict=True)):
        print(f"    layer {i}: {a.min():.6f}-{a.max():.6f} | {b.min():.6f}-{b.max():.6f}")
    print(f"  largest |bias|, |log σ| at the start: ours {ours[1]:g}, sb3 {sb3[1]:g}")
    for side, n in draws["noise"].items():
        print(f"  action noise ε = (a − μ(s)) / σ, {side}: {n['n']} draws, mean {n['mean']:+.4f}, "
              f"std {n['std']:.4f}, Kolmogorov-Smirnov against N(0, 1) p = {n['ks_p']:.2f}")


def report(rows: list[dict]) -> None:
    print("         distance from sb3-contrib's, relative to how far sb3's has moved:")
    print("         policy: ours − sb3  ours − ours nudged 1 ulp   value net: ours − sb3  "
          "ours − ours nudged   obs: max |ours − sb3|   backtracks")
    shown = [r for r in rows if r["update"] in REPORT_AT or r is rows[-1]]
    for r in shown:
        print(f"update {r['update']:3d}  {r['policy_gap']:14.2e}  {r['policy_control']:24.2e}   "
              f"{r['value_gap']:20.2e}  {r['value_control']:18.2e}   {r['obs_gap']:20.2e}   "
              f"{r['backtracks']:10d}")
    last = rows[-1]
    ours_n, sb3_n = last["episode_count"]
    print(f"episodes finished: ours {ours_n}, sb3 {sb3_n}; raw returns of the first "
          f"{last['episodes_compared']}: max |ours − sb3| {last['return_gap']:.2e}")
    if "norm_gap" in last:
        gaps = ", ".join(f"{k} {v:.1e}" for k, v in last["norm_gap"].items())
        print(f"normaliser at the end, max |ours − VecNormalize| / max |VecNormalize|: {gaps}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="Hopper-v5")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--updates", type=int, default=100)
    parser.add_argument("--sb3-python", default=DEFAULT_SB3_PYTHON)
    parser.add_argument("--sb3-recording", metavar="FILE.npz",
                        help="keep sb3-contrib's recording here, or reuse it if it exists "
                             "(same task, seed and updates)")
    parser.add_argument("--side", choices=("sb3",), help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.updates < 1:
        parser.error("--updates must be at least 1")
    if args.side == "sb3":
        sb3_side(args.env, args.seed, args.updates, Path(args.out))
        return 0
    prepare_ours(parser, args.sb3_python)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(args.sb3_recording or Path(tmp) / "sb3.npz")
        if not out.exists():
            subprocess.run([args.sb3_python, __file__, "--side", "sb3", "--env", args.env,
                            "--seed", str(args.seed), "--updates", str(args.updates),
                            "--out", str(out)], check=True, cwd=ROOT)
        with np.load(out) as stored:  # into memory: an NpzFile reads the zip on every access
            data = {name: stored[name] for name in stored.files}
        recorded = (str(data["env_id"]), int(data["seed"]), int(data["updates"]))
        if recorded != (args.env, args.seed, args.updates):
            parser.error(f"{out} holds {recorded}, not {(args.env, args.seed, args.updates)}")
        print(f"{args.env} seed {args.seed}: {args.updates} updates of ours on sb3-contrib's "
              "actions and critic shuffles, from its initial weights")
        ours = our_run(data, args.env, args.seed, args.updates)
        nudged = our_run(data, args.env, args.seed, args.updates, nudge=True)
        report(compare(data, ours, nudged))
        report_draws(ours["draws"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
