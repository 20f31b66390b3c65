"""Failure modes other TRPO implementations shipped, one test each."""

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

import trpo_viz.trpo.compiled as compiled_module
from trpo_viz.hvp import unflatten
from trpo_viz.trpo import TRPOTrainer, default_config
from trpo_viz.trpo.config import LOG_STD_MAX, LOG_STD_MIN
from trpo_viz.trpo.policy import (
    DiagGaussian,
    GaussianPolicy,
    get_flat,
    mlp_forward_numpy,
)
from trpo_viz.trpo.record import WALL_TIME_FIELDS
from trpo_viz.trpo.saved_run import parse_record
from trpo_viz.trpo.update import fisher_vector_product, policy_gradient

ROOT = Path(__file__).resolve().parents[1]


def _small(env_id="CartPole-v1", **overrides):
    base = dict(n_envs=2, n_steps=128, value_batch_size=64, value_epochs=1, hidden_sizes=(8,))
    base.update(overrides)
    return default_config(env_id, **base)


def _params_bytes(trainer) -> bytes:
    return b"".join(v.numpy().tobytes() for v in trainer.policy.params)


# --- sᵀFs ≤ 0 or non-finite: no step, parameters bit-identical, the record says why ----------


def _negative_fvp(policy, vector, *args, **kwargs):
    return -vector  # F = −I: every direction has negative curvature


def _nan_fvp(policy, vector, *args, **kwargs):
    return vector * np.nan


@pytest.mark.parametrize(
    "fvp, name, status",
    [
        (_negative_fvp, "trpo", "non_positive_curvature"),  # CG stops at once: s = 0
        (_negative_fvp, "gradient", "non_positive_curvature"),  # gᵀ(F+λI)g < 0
        (_negative_fvp, "npg", "non_positive_curvature"),  # no line search to save it
        (_nan_fvp, "trpo", "non_finite_curvature"),
        (_nan_fvp, "no-kl-check", "non_finite_curvature"),
    ],
)
def test_bad_curvature_takes_no_step(monkeypatch, fvp, name, status):
    monkeypatch.setattr(compiled_module, "fisher_vector_product", fvp)
    trainer = TRPOTrainer(_small(variant=name))
    before = _params_bytes(trainer)
    record = trainer.step()
    assert _params_bytes(trainer) == before
    assert not record.accepted and record.step_status == status
    assert record.kl == 0.0 and record.actual_improvement == 0.0
    if fvp is _negative_fvp and name == "gradient":
        assert record.sFs < 0
    assert np.all(np.isfinite(get_flat(trainer.policy.params)))
    data = json.loads(json.dumps(record.to_dict()))
    assert data["step_scale"] is None  # β = √(2δ/sᵀFs) is undefined, saved as null
    assert parse_record(data, 0).step_status == status  # a valid record
    trainer.step()  # and training goes on
    trainer.close()


def test_non_finite_gradient_takes_no_step(monkeypatch):
    real = compiled_module.policy_gradient
    monkeypatch.setattr(compiled_module, "policy_gradient", lambda *a: real(*a) * np.nan)
    trainer = TRPOTrainer(_small(exact_fisher=True))
    before = _params_bytes(trainer)
    record = trainer.step()
    assert _params_bytes(trainer) == before
    assert record.step_status == "non_finite_gradient" and not record.accepted
    assert record.exact_fisher_status == "non_finite"
    parse_record(json.loads(json.dumps(record.to_dict())), 0)
    trainer.close()


# --- every policy variable gets a Fisher component; log σ bounded -----------------------------


@pytest.mark.parametrize("env_id", ["CartPole-v1", "Pendulum-v1"])
def test_every_policy_variable_receives_a_nonzero_fvp_component(env_id):
    trainer = TRPOTrainer(_small(env_id))
    trainer.step()
    policy, last = trainer.policy, trainer._last
    if env_id == "Pendulum-v1":
        assert policy.params[-1] is policy.log_std  # the FVP is taken over log σ too
    rng = np.random.default_rng(0)
    v = tf.constant(rng.standard_normal(len(last["theta_old"])).astype(np.float32))
    Fv = fisher_vector_product(policy, v, last["obs"], policy(last["obs"]))
    blocks = unflatten(Fv, policy.params)
    for var, block in zip(policy.params, blocks, strict=True):
        assert float(tf.norm(block)) > 1e-8, f"{var.name} gets no Fisher component"
    if env_id == "Pendulum-v1":
        # KL's Hessian in log σ is 2 (per action dimension), whatever the state: F e = 2 e.
        e = np.zeros(len(last["theta_old"]), np.float32)
        e[-1] = 1.0
        Fe = fisher_vector_product(policy, tf.constant(e), last["obs"], policy(last["obs"]))
        assert float(Fe[-1]) == pytest.approx(2.0, rel=1e-5)
        assert np.abs(Fe.numpy()[:-1]).max() < 1e-5
    trainer.close()


@pytest.mark.parametrize("log_std", [-1e3, -200.0, -50.0, 50.0, 1e3])
def test_log_std_is_bounded_so_sigma_never_underflows(log_std):
    rng = np.random.default_rng(1)
    policy = GaussianPolicy(3, 2, hidden_sizes=(4,), rng=rng)
    policy.log_std.assign(tf.fill([2], np.float32(log_std)))
    obs = tf.constant(rng.standard_normal((5, 3)).astype(np.float32))
    dist = policy(obs)
    _, clipped = DiagGaussian.split(dist)
    assert np.all((clipped.numpy() >= LOG_STD_MIN) & (clipped.numpy() <= LOG_STD_MAX))
    variance = tf.exp(2 * clipped).numpy()
    assert variance.dtype == np.float32
    assert np.all(variance >= np.finfo(np.float32).tiny) and np.all(np.isfinite(1 / variance))
    actions = tf.constant(rng.standard_normal((5, 2)).astype(np.float32))
    assert np.all(np.isfinite(DiagGaussian.log_prob(dist, actions).numpy()))
    other = tf.concat([DiagGaussian.split(dist)[0] + 0.1, clipped], axis=-1)
    assert np.all(np.isfinite(DiagGaussian.kl(dist, other).numpy()))
    params = [v.numpy() for v in policy.params]
    assert np.all(np.isfinite(policy.act_numpy(params, obs.numpy(), rng)))
    # Inside the bounds the clip is the identity: nothing changes for ordinary values.
    policy.log_std.assign([-0.5, 1.5])
    np.testing.assert_array_equal(DiagGaussian.split(policy(obs))[1].numpy()[0], [-0.5, 1.5])


def test_log_std_init_outside_the_bounds_is_refused():
    with pytest.raises(ValueError, match="log_std_init must lie in"):
        default_config("Pendulum-v1", log_std_init=-30.0).validate()


# --- advantages normalised once and used; the line search's KL is over the whole batch --------


@pytest.mark.parametrize("normalize", [True, False])
def test_advantages_are_normalised_once_and_used(normalize):
    trainer = TRPOTrainer(_small(normalize_advantage=normalize, fvp_subsample=0.5))
    trainer.step()
    last, policy = trainer._last, trainer.policy
    gae = last["gae_advantages"]
    expected = (gae - gae.mean()) / (gae.std(ddof=1) + 1e-8) if normalize else gae
    np.testing.assert_allclose(last["advantages"].numpy(), expected, rtol=1e-6, atol=1e-6)
    if normalize:
        assert abs(float(np.mean(last["advantages"]))) < 1e-6
        # the sample std (n − 1) is 1
        assert float(np.std(last["advantages"], ddof=1)) == pytest.approx(1.0, rel=1e-5)

    # The gradient the update used is that of the surrogate with these advantages (at θ_old).
    from trpo_viz.trpo.policy import set_flat

    theta_now = get_flat(policy.params)
    set_flat(policy.params, last["theta_old"])
    args = (last["obs"], last["actions"])
    used = policy_gradient(policy, *args, last["advantages"], last["old_log_prob"]).numpy()
    other = (gae if normalize else (gae - gae.mean()) / (gae.std(ddof=1) + 1e-8)).astype(np.float32)
    not_used = policy_gradient(policy, *args, tf.constant(other), last["old_log_prob"]).numpy()
    set_flat(policy.params, theta_now)
    np.testing.assert_allclose(used, last["g"], rtol=1e-5, atol=1e-7)
    cosine = used @ not_used / np.linalg.norm(used) / np.linalg.norm(not_used)
    assert cosine < 0.999 or not 0.99 < np.linalg.norm(not_used) / np.linalg.norm(used) < 1.01
    trainer.close()


def test_line_search_kl_is_the_mean_over_the_whole_batch():
    trainer = TRPOTrainer(_small(fvp_subsample=0.1, seed=2))
    record = trainer.step()
    assert record.accepted
    last, policy = trainer._last, trainer.policy
    obs = last["obs"].numpy().astype(np.float64)
    like = [v.numpy().astype(np.float64) for v in policy.params]

    def logits(theta):
        sizes = [v.size for v in like]
        parts = np.split(np.asarray(theta, np.float64), np.cumsum(sizes)[:-1])
        params = [p.reshape(v.shape) for p, v in zip(parts, like, strict=True)]
        z = mlp_forward_numpy(params, obs, "tanh")
        return z - z.max(axis=1, keepdims=True)

    def categorical_kl(z_old, z_new):
        log_p = z_old - np.log(np.exp(z_old).sum(1, keepdims=True))
        log_q = z_new - np.log(np.exp(z_new).sum(1, keepdims=True))
        return (np.exp(log_p) * (log_p - log_q)).sum(1)

    per_state = categorical_kl(logits(last["theta_old"]), logits(get_flat(policy.params)))
    whole = per_state.mean()
    subsample = per_state[last["fvp_index"]].mean()
    assert record.kl == pytest.approx(whole, rel=1e-4)
    assert abs(subsample - whole) > 1e-2 * whole  # the subsample's KL would be another number
    trainer.close()


# --- same seed, same first 20 updates: in one process and across processes --------------------

TINY = dict(
    n_envs=2, n_steps=32, value_batch_size=32, value_epochs=1, hidden_sizes=(8,),
    fvp_subsample=0.5, normalize_obs=True, total_timesteps=20 * 64, seed=11,
)  # fmt: skip

RUN_TWENTY = """
import hashlib, json, sys
from trpo_viz.trpo import TRPOTrainer, default_config
from trpo_viz.trpo.record import WALL_TIME_FIELDS
out = {}
for env_id in ("CartPole-v1", "Pendulum-v1"):
    trainer = TRPOTrainer(default_config(env_id, **json.loads(sys.argv[1])))
    records = [trainer.step().to_dict() for _ in range(20)]
    for r in records:
        for name in WALL_TIME_FIELDS:
            r.pop(name)
    params = b"".join(v.numpy().tobytes() for v in trainer.policy.params + trainer.value.params)
    out[env_id] = {"records": records, "params": hashlib.sha256(params).hexdigest()}
print(json.dumps(out))
"""


def _twenty_updates(env_id):
    trainer = TRPOTrainer(default_config(env_id, **TINY))
    records = [trainer.step().to_dict() for _ in range(20)]
    for r in records:
        for name in WALL_TIME_FIELDS:
            r.pop(name)
    params = b"".join(v.numpy().tobytes() for v in trainer.policy.params + trainer.value.params)
    trainer.close()
    return {"records": records, "params": hashlib.sha256(params).hexdigest()}


def test_same_seed_gives_the_same_first_20_updates_in_and_across_processes():
    here = {env_id: _twenty_updates(env_id) for env_id in ("CartPole-v1", "Pendulum-v1")}
    again = {env_id: _twenty_updates(env_id) for env_id in ("CartPole-v1", "Pendulum-v1")}
    assert json.dumps(here) == json.dumps(again)
    assert sum(r["accepted"] for r in here["CartPole-v1"]["records"]) >= 10  # it trained
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", RUN_TWENTY, json.dumps(TINY)], cwd=ROOT, env=env,
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    there = json.loads(done.stdout.strip().splitlines()[-1])
    for env_id in here:
        assert there[env_id]["params"] == here[env_id]["params"], env_id
        for update, (a, b) in enumerate(
            zip(json.loads(json.dumps(here[env_id]["records"])), there[env_id]["records"],
                strict=True)
        ):  # fmt: skip
            assert a == b, f"{env_id}: update {update} differs across processes"
