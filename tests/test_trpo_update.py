"""The maths of one trust-region step, against independent references."""

import math

import numpy as np
import pytest
import tensorflow as tf

import trpo_viz.trpo.trainer as trainer_module
from trpo_viz.hvp import flatten, unflatten
from trpo_viz.trpo import TRPOTrainer, default_config
from trpo_viz.trpo.policy import (
    Categorical,
    CategoricalPolicy,
    DiagGaussian,
    GaussianPolicy,
    get_flat,
)
from trpo_viz.trpo.trainer import fisher_vector_product, kl, policy_gradient, surrogate


def _analytic_fisher(policy, obs):
    """Fisher from the Jacobian of the distribution parameters (no KL, no HVP involved).

    Categorical: F = mean_s Jᵀ (diag p − p pᵀ) J with J = ∂logits/∂θ.
    Gaussian: F = mean_s J_μᵀ diag(σ⁻²) J_μ, plus 2 on each log-std diagonal entry.
    """
    with tf.GradientTape() as tape:
        out = policy(obs)
    jac = tape.jacobian(out, policy.params)  # list of [B, k, *shape]
    b, k = out.shape
    J = np.concatenate([j.numpy().reshape(b, k, -1) for j in jac], axis=2)  # [B, k, n]
    out = out.numpy().astype(np.float64)
    n = J.shape[2]
    F = np.zeros((n, n))
    for s in range(b):
        if isinstance(policy, CategoricalPolicy):
            p = np.exp(out[s] - out[s].max())
            p /= p.sum()
            F += J[s].T @ (np.diag(p) - np.outer(p, p)) @ J[s]
        else:
            a = k // 2
            inv_var = np.exp(-2 * out[s, a:])
            F += J[s, :a].T @ np.diag(inv_var) @ J[s, :a]
    F /= b
    if isinstance(policy, GaussianPolicy):
        a = policy.log_std.shape[0]
        F[-a:, -a:] += 2 * np.eye(a)
    return F


@pytest.mark.parametrize("kind", ["categorical", "gaussian"])
@pytest.mark.parametrize("mode", ["reverse", "forward"])
def test_fisher_vector_product_equals_explicit_fisher(kind, mode):
    rng = np.random.default_rng(0)
    if kind == "categorical":
        policy = CategoricalPolicy(3, 4, hidden_sizes=(5,), rng=rng)
    else:
        policy = GaussianPolicy(3, 2, hidden_sizes=(5,), log_std_init=-0.3, rng=rng)
    # Move the output layer off its tiny initial scale so the test is not near-trivial.
    for var in policy.params:
        var.assign(var + 0.3 * rng.standard_normal(var.shape).astype(np.float32))
    obs = tf.constant(rng.standard_normal((16, 3)).astype(np.float32))
    old_dist = tf.constant(policy(obs).numpy())
    F = _analytic_fisher(policy, obs)
    fvp = tf.function(lambda v: fisher_vector_product(policy, v, obs, old_dist, mode))
    for _ in range(3):
        v = rng.standard_normal(F.shape[0]).astype(np.float32)
        np.testing.assert_allclose(fvp(tf.constant(v)).numpy(), F @ v, rtol=2e-4, atol=2e-5)

    # Also against the explicit Hessian of the mean KL by nested tapes.
    theta = tf.Variable(get_flat(policy.params))
    with tf.GradientTape() as outer:
        with tf.GradientTape() as inner:
            value = kl(policy, unflatten(theta, policy.params), obs, old_dist)
        grad = inner.gradient(value, theta)
    H = outer.jacobian(grad, theta).numpy()
    np.testing.assert_allclose(H, F, rtol=1e-3, atol=2e-5)


def test_kl_formulas_match_numpy():
    rng = np.random.default_rng(2)
    p_logits, q_logits = rng.standard_normal((2, 5, 3)).astype(np.float32)
    p = np.exp(p_logits) / np.exp(p_logits).sum(-1, keepdims=True)
    q = np.exp(q_logits) / np.exp(q_logits).sum(-1, keepdims=True)
    expected = (p * np.log(p / q)).sum(-1)
    np.testing.assert_allclose(Categorical.kl(p_logits, q_logits).numpy(), expected, rtol=1e-5)

    mu0, mu1, ls0, ls1 = rng.standard_normal((4, 5, 2))
    s0, s1 = np.exp(ls0), np.exp(ls1)
    expected = (np.log(s1 / s0) + (s0**2 + (mu0 - mu1) ** 2) / (2 * s1**2) - 0.5).sum(-1)
    old = np.concatenate([mu0, ls0], -1).astype(np.float32)
    new = np.concatenate([mu1, ls1], -1).astype(np.float32)
    np.testing.assert_allclose(DiagGaussian.kl(old, new).numpy(), expected, rtol=1e-4)
    # log-prob of a diagonal Gaussian against scipy
    from scipy.stats import norm

    a = rng.standard_normal((5, 2)).astype(np.float32)
    expected = norm.logpdf(a, mu0, s0).sum(-1)
    np.testing.assert_allclose(DiagGaussian.log_prob(old, a).numpy(), expected, rtol=1e-4)


def test_policy_gradient_matches_finite_differences():
    rng = np.random.default_rng(3)
    policy = CategoricalPolicy(3, 2, hidden_sizes=(4,), rng=rng)
    obs = tf.constant(rng.standard_normal((20, 3)).astype(np.float32))
    actions = tf.constant(rng.integers(0, 2, 20))
    adv = tf.constant(rng.standard_normal(20).astype(np.float32))
    old_log_prob = Categorical.log_prob(policy(obs), actions)
    g = policy_gradient(policy, obs, actions, adv, old_log_prob).numpy()
    theta = get_flat(policy.params).astype(np.float64)

    def L(t):
        params = unflatten(tf.constant(t, tf.float64), policy.params)
        params = [tf.cast(p, tf.float64) for p in params]
        return float(
            surrogate(
                policy,
                params,
                tf.cast(obs, tf.float64),
                actions,
                tf.cast(adv, tf.float64),
                tf.cast(old_log_prob, tf.float64),
            )
        )

    eps = 1e-5
    fd = np.array(
        [(L(theta + eps * e) - L(theta - eps * e)) / (2 * eps) for e in np.eye(len(theta))]
    )
    np.testing.assert_allclose(g, fd, rtol=1e-3, atol=1e-5)


def _small(env_id="CartPole-v1", **overrides):
    base = dict(n_envs=2, n_steps=256, value_batch_size=128, value_epochs=2)
    base.update(overrides)
    return default_config(env_id, **base)


@pytest.mark.parametrize("env_id", ["CartPole-v1", "Pendulum-v1"])
def test_accepted_steps_respect_trust_region_and_improve(env_id):
    trainer = TRPOTrainer(_small(env_id, max_kl=0.02))
    for _ in range(4):
        theta_old = get_flat(trainer.policy.params)
        record = trainer.step()
        fractions = [c.fraction for c in record.candidates]
        np.testing.assert_allclose(fractions, 0.8 ** np.arange(10), rtol=1e-6)
        if record.accepted:
            assert record.kl <= record.max_kl * (1 + 1e-6)
            assert record.actual_improvement > 0
            assert record.surrogate_after > record.surrogate_before
            # the accepted candidate is the first acceptable one
            for c in record.candidates[: record.accepted_index]:
                assert not (c.kl <= record.max_kl and c.improvement > 0)
            moved = np.linalg.norm(get_flat(trainer.policy.params) - theta_old)
            assert moved == pytest.approx(record.step_fraction * record.step_norm, rel=1e-3)
        # the full step reaches the quadratic trust-region boundary: ½ β² sᵀFs = δ
        assert 0.5 * record.step_scale**2 * record.sFs == pytest.approx(record.max_kl, rel=1e-4)
        assert record.surrogate_before == pytest.approx(0.0, abs=1e-5)  # normalised advantages
        assert record.cg_iterations <= trainer.config.cg_max_steps
        assert len(record.cg_residuals) == record.cg_iterations + 1
    assert any(r.accepted for r in trainer.records)


def test_rejected_line_search_leaves_parameters_bit_identical():
    trainer = TRPOTrainer(_small(max_kl=1e-20, max_backtracks=0))
    before = [v.numpy().copy() for v in trainer.policy.params]
    record = trainer.step()
    assert not record.accepted and record.accepted_index is None
    assert record.kl == 0.0 and record.backtracks == 0
    assert record.candidates[0].kl > record.max_kl or record.candidates[0].improvement <= 0
    for b, v in zip(before, trainer.policy.params, strict=True):
        assert b.tobytes() == v.numpy().tobytes()


def test_nan_step_is_rejected(monkeypatch):
    monkeypatch.setattr(trainer_module, "step_size", lambda sFs, max_kl: math.nan)
    trainer = TRPOTrainer(_small())
    before = flatten(trainer.policy.params).numpy().tobytes()
    record = trainer.step()
    assert not record.accepted
    assert flatten(trainer.policy.params).numpy().tobytes() == before
    assert record.to_dict()["step_scale"] is None  # NaN -> None in JSON


def test_trust_region_slice():
    trainer = TRPOTrainer(default_config("CartPole-v1"))
    record = trainer.step()
    alphas = np.linspace(-0.5, 1.5, 25)
    betas = np.linspace(-1.0, 1.0, 25)
    picture = trainer.trust_region_slice(alphas, betas)  # its speed: benchmarks/, not a test
    assert picture["improvement"].shape == (25, 25) and picture["kl"].shape == (25, 25)
    M = picture["quadratic_form"]
    # Δ = β s sits on the quadratic trust-region boundary, and so does the scaled gradient.
    assert 0.5 * M[0, 0] == pytest.approx(record.max_kl, rel=1e-3)
    assert 0.5 * M[1, 1] == pytest.approx(record.max_kl, rel=1e-3)
    assert M[0, 1] == M[1, 0]
    # The natural step maximises the linear model on the ellipse: better than the gradient.
    assert picture["g_dot"][0] >= picture["g_dot"][1] * (1 - 1e-3)
    # Grid values agree with the line search at (fraction, 0).
    one = trainer.trust_region_slice([record.step_fraction], [0.0])
    assert one["kl"][0, 0] == pytest.approx(record.kl, rel=1e-4, abs=1e-9)
    assert one["improvement"][0, 0] == pytest.approx(record.actual_improvement, rel=1e-3)
    origin = trainer.trust_region_slice([0.0], [0.0])
    assert abs(origin["kl"][0, 0]) < 1e-7 and origin["improvement"][0, 0] == 0.0
    assert picture["accepted"] == (pytest.approx(record.step_fraction), 0.0)
    assert picture["candidates"].shape == (10, 2)
    # Quadratic model vs the true KL near the origin.
    small = trainer.trust_region_slice([0.1], [0.1])
    assert small["kl"][0, 0] == pytest.approx(small["quadratic_kl"][0, 0], rel=0.2)


def _adam_reference(grads, lr, beta1=0.9, beta2=0.999, eps=1e-5):
    """PyTorch's Adam in float64 with the exact β, from θ = 0: the iterates θ_1 … θ_T."""
    theta = np.zeros_like(grads[0], np.float64)
    m, v, out = np.zeros_like(theta), np.zeros_like(theta), []
    for t, g in enumerate(grads, start=1):
        g = g.astype(np.float64)
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        theta = theta - lr / (1 - beta1**t) * m / (np.sqrt(v) / math.sqrt(1 - beta2**t) + eps)
        out.append(theta.copy())
    return out


def test_adam_matches_pytorchs_update_rule_in_float64():
    """The value function's Adam against an independent float64 Adam with the exact β.

    From θ = 0 each float32 step is resolved to a few ulp, so the comparison sees the
    bias corrections: with β₂ = 0.999 rounded to float32 (0.99900001287) 1 − β₂ᵗ is off by
    1.3e-5 relative at t = 1, which the first step shows as a 6e-6 relative error.
    (Compared in norm: an entry that crosses zero has no relative precision.)
    """
    from trpo_viz.trpo.update import Adam

    rng = np.random.default_rng(3)
    grads = [(rng.normal(size=50) * 10.0 ** rng.uniform(-3, 1, 50)).astype(np.float32)
             for _ in range(40)]
    var = tf.Variable(tf.zeros(50, tf.float32))
    adam = Adam([var], 3e-4)
    reference = _adam_reference(grads, 3e-4)
    for t, (g, expected) in enumerate(zip(grads, reference, strict=True), start=1):
        adam.apply([tf.constant(g)], [var])
        error = np.linalg.norm(var.numpy() - expected) / np.linalg.norm(expected)
        assert error < 1e-6, f"Adam step {t}: relative error {error:.2e}"
