"""The update's TensorFlow functions, compiled once per trainer (``tf.function``).

Each is one graph over the policy's and value network's variables: ``prepare`` (π_old,
values), ``natural_gradient`` (g and CG's s ≈ (F + λI)⁻¹ g with the products the step size
needs), ``plain_gradient`` (g and (F + λI)g, for the variants without CG), ``evaluate``
(surrogate and KL of G parameter vectors at once; ``evaluate_grid``, the same through XLA,
for the trust-region slice), ``fit_value`` and ``value_loss``. The
maths they compile is :mod:`trpo_viz.trpo.update`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import tensorflow as tf

from trpo_viz.cg import dot
from trpo_viz.trpo.config import TRPOConfig
from trpo_viz.trpo.policy import unflatten_batch
from trpo_viz.trpo.update import (
    fisher_vector_product,
    policy_gradient,
    step_direction,
    surrogate_and_kl,
)


@dataclass
class CompiledUpdate:
    prepare: Callable
    natural_gradient: Callable
    plain_gradient: Callable
    evaluate: Callable
    evaluate_grid: Callable
    fit_value: Callable
    value_loss: Callable


def compile_update(policy, value, value_optimizer, cfg: TRPOConfig) -> CompiledUpdate:
    """The compiled functions of one trainer (traced on first call)."""
    dist = policy.distribution

    def prepare(obs, next_obs, actions):
        old_dist = policy(obs)
        return {
            "old_dist": old_dist,
            "old_log_prob": dist.log_prob(old_dist, actions),
            "entropy": tf.reduce_mean(dist.entropy(old_dist)),
            "values": value(obs),
            "next_values": value(next_obs),
        }

    # Fisher-vector products and CG run in cfg.fvp_dtype. For float64 they differentiate
    # the KL with respect to float64 copies of the policy's variables, refreshed from the
    # float32 ones at the start of every solve.
    fvp_dtype = tf.as_dtype(cfg.fvp_dtype)
    if fvp_dtype == policy.params[0].dtype:
        fvp_params = policy.params
    else:
        fvp_params = [
            tf.Variable(tf.cast(v, fvp_dtype), name=f"fvp_{i}")  # trainable: tapes watch it
            for i, v in enumerate(policy.params)
        ]

    def gradient_and_fvp(obs, actions, advantages, old_log_prob, fvp_obs, fvp_old_dist):
        """g (in the FVP dtype) and v ↦ F v on the FVP's states (undamped)."""
        g = policy_gradient(policy, obs, actions, advantages, old_log_prob)
        if fvp_params is not policy.params:
            for copy, var in zip(fvp_params, policy.params, strict=True):
                copy.assign(tf.cast(var, fvp_dtype))
            fvp_obs = tf.cast(fvp_obs, fvp_dtype)
            # π_old recomputed in float64 at the same θ_old, so that the KL's gradient
            # vanishes there exactly and its Hessian is the Fisher.
            fvp_old_dist = tf.stop_gradient(policy.distribution_params(fvp_params, fvp_obs))
            g = tf.cast(g, fvp_dtype)

        def fvp(v):
            return fisher_vector_product(
                policy, v, fvp_obs, fvp_old_dist, cfg.hvp_mode, params=fvp_params
            )

        return g, fvp

    def natural_gradient(*batch):
        g, fvp = gradient_and_fvp(*batch)
        out = step_direction(fvp, g, cfg.cg_damping, cfg.cg_max_steps, cfg.cg_rtol)
        s = out["x"]
        out["g"] = g
        out["Fs"] = fvp(s) + cfg.cg_damping * s  # damped, as CG and the step size see it
        out["Fg"] = fvp(g) + cfg.cg_damping * g  # for the trust-region picture
        out["sFs"] = dot(s, out["Fs"])
        out["true_residual_norm"] = tf.norm(g - out["Fs"])  # ‖g − (F+λI)s‖ of the result
        return out

    def plain_gradient(*batch):  # the gradient variants: no CG
        g, fvp = gradient_and_fvp(*batch)
        Fg = fvp(g) + cfg.cg_damping * g
        return {"g": g, "Fg": Fg, "gFg": dot(g, Fg)}

    def evaluate(thetas, obs, actions, advantages, old_log_prob, old_dist):
        params = unflatten_batch(thetas, policy.params)
        return surrogate_and_kl(policy, params, obs, actions, advantages, old_log_prob, old_dist)

    def fit_value(obs, returns, minibatches):
        losses = tf.TensorArray(tf.float32, size=tf.shape(minibatches)[0])
        for i in tf.range(tf.shape(minibatches)[0]):
            o, r = tf.gather(obs, minibatches[i]), tf.gather(returns, minibatches[i])
            with tf.GradientTape() as tape:
                loss = tf.reduce_mean(tf.square(value(o) - r))
            grads = tape.gradient(loss, value.params)
            value_optimizer.apply(grads, value.params)
            losses = losses.write(i, loss)
        return losses.stack()

    def value_loss(obs, returns):
        return tf.reduce_mean(tf.square(value(obs) - returns))

    compile_ = lambda f: tf.function(f, reduce_retracing=True)  # noqa: E731
    return CompiledUpdate(
        prepare=compile_(prepare),
        natural_gradient=compile_(natural_gradient),
        plain_gradient=compile_(plain_gradient),
        evaluate=compile_(evaluate),
        # The trust-region slice: the same maths through XLA, which fuses the G batched
        # forward passes' element-wise work (about a third faster on 2 CPU cores; the
        # values differ from ``evaluate``'s in float32's last bits). The line search keeps
        # ``evaluate``, so training is not changed by it.
        evaluate_grid=tf.function(evaluate, jit_compile=True, reduce_retracing=True),
        fit_value=compile_(fit_value),
        value_loss=compile_(value_loss),
    )
