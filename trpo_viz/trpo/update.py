"""The maths of one TRPO update, one named function each (see :mod:`trpo_viz.trpo.trainer`).

Every function here is traceable (``tf.function``) or plain numpy; the trainer compiles
them together. ``params`` may carry a leading G axis (G parameter vectors evaluated at
once: line-search candidates, trust-region grids).
"""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

from trpo_viz.cg import CGResult, cg_loop
from trpo_viz.hvp import gradient, hessian_vector_product
from trpo_viz.trpo.numerics import (
    operator_norm_estimate,
    residual_orthogonality,
    rounding_floor,
)


def surrogate(policy, params, obs, actions, advantages, old_log_prob):
    """L(θ) = mean(ratio · Â), ratio = π_θ(a|s)/π_old(a|s); params may carry a leading G axis."""
    dist = policy.distribution_params(params, obs)
    return surrogate_of(policy, dist, actions, advantages, old_log_prob)


def surrogate_of(policy, dist, actions, advantages, old_log_prob):
    """L(θ) from π_θ's distribution parameters ``dist`` on the batch's states."""
    ratio = tf.exp(policy.distribution.log_prob(dist, actions) - old_log_prob)
    return tf.reduce_mean(ratio * advantages, axis=-1)


def kl(policy, params, obs, old_dist):
    """Mean over states of KL(π_old(·|s) ‖ π_θ(·|s)); params may carry a leading G axis."""
    return kl_of(policy, old_dist, policy.distribution_params(params, obs))


def kl_of(policy, old_dist, new_dist):
    """Mean KL(π_old ‖ π_θ) from both distributions' parameters on the batch's states."""
    return tf.reduce_mean(policy.distribution.kl(old_dist, new_dist), axis=-1)


def surrogate_and_kl(policy, params, obs, actions, advantages, old_log_prob, old_dist):
    """(L(θ), mean KL(π_old ‖ π_θ)) from one forward pass of the policy (params may carry a
    leading G axis: line-search candidates, trust-region grids)."""
    dist = policy.distribution_params(params, obs)
    return (surrogate_of(policy, dist, actions, advantages, old_log_prob),
            kl_of(policy, old_dist, dist))


def policy_gradient(policy, obs, actions, advantages, old_log_prob):
    """g = ∇_θ L(θ) at the policy's current parameters (flat)."""
    return gradient(
        lambda: surrogate(policy, policy.params, obs, actions, advantages, old_log_prob),
        policy.params,
    )


def fisher_vector_product(policy, vector, obs, old_dist, mode="reverse", params=None):
    """F v: the Hessian of the mean KL(π_old ‖ π_θ) at θ = θ_old, times v (no damping).

    ``params`` (default ``policy.params``) are the variables θ the Hessian is taken over:
    float64 copies of the policy's parameters give F v in float64 (with obs, old_dist
    and v in float64 too).
    """
    params = policy.params if params is None else params
    return hessian_vector_product(
        lambda o, d: kl(policy, params, o, d),
        params,
        vector,
        obs,
        old_dist,
        mode=mode,
    )


def step_direction(fvp, g, damping, max_iter, rtol):
    """s ≈ (F + λI)⁻¹ g by conjugate gradient (the natural-gradient direction).

    "converged" means the *recursively updated* residual reached ‖r_k‖ ≤ rtol·‖g‖. In
    float32 the recursion keeps shrinking ‖r_k‖ below what the iterate attains, so the
    caller also records the true residual ‖g − (F+λI)s‖ of the returned s (from the
    product (F+λI)s it needs for the step size anyway).
    """
    # λ and rtol as tensors of g's dtype: cg_loop's tf.cast of a Python float goes through
    # float32, which would perturb λ by ~5e-8 relative in a float64 solve.
    return cg_loop(
        fvp,
        g,
        damping=tf.constant(damping, g.dtype),
        max_iter=max_iter,
        rtol=tf.constant(rtol, g.dtype),
        record_vectors=True,  # the residuals, for their orthogonality (a few vectors)
        true_residual=False,
    )


def step_size(sFs: float, max_kl: float) -> float:
    """β = √(2δ / sᵀFs): scales s to the edge of the quadratic trust region."""
    return math.sqrt(2.0 * max_kl / sFs) if sFs > 0 else math.nan


def line_search_fractions(shrink: float, max_backtracks: int) -> np.ndarray:
    return (shrink ** np.arange(max_backtracks + 1)).astype(np.float32)


def first_acceptable(kls, improvements, max_kl) -> int | None:
    """Index of the first candidate with KL ≤ δ and improvement > 0 (all finite), else None."""
    for j, (k, imp) in enumerate(zip(kls, improvements, strict=True)):
        if np.isfinite(k) and np.isfinite(imp) and k <= max_kl and imp > 0:
            return j
    return None


def cg_diagnostics(cg: CGResult, g_norm: float, dtype: str) -> dict:
    """How far rounding lets the CG trace be read (see :mod:`trpo_viz.trpo.numerics`).

    ``cg_orthogonality``: max_{j<k} |cos(r_j, r_k)| per iteration; ``cg_rounding_floor``:
    ε·(‖g‖ + ‖F+λI‖·max_k‖x_k‖), with ‖F+λI‖ estimated by CG's own Rayleigh quotients.
    """
    operator_norm = operator_norm_estimate(cg.curvatures, cg.directions)
    max_iterate = float(np.max(np.linalg.norm(cg.iterates.astype(np.float64), axis=1)))
    return {
        "cg_orthogonality": residual_orthogonality(cg.residuals),
        "cg_rounding_floor": rounding_floor(dtype, g_norm, operator_norm, max_iterate),
    }


class Adam(tf.Module):
    """Adam in PyTorch's update form over a list of plain ``tf.Variable``s; state is variables.

    Per step t, for each variable θ with gradient g:

        m ← m + (1 − β₁)(g − m)        v ← β₂ v + (1 − β₂) g²
        θ ← θ − (lr / (1 − β₁ᵗ)) · m / (√v / √(1 − β₂ᵗ) + eps)

    The bias corrections 1 − βᵗ are computed in float64 from the exact β, as PyTorch does
    with Python floats: in float32, β₂ = 0.999 is 0.99900001287, and 1 − β₂ᵗ is off by
    1.3e-5 relative at t = 1 and by about 1e-5 over the first thousand steps.
    """

    def __init__(self, variables, lr, beta1=0.9, beta2=0.999, eps=1e-5):
        super().__init__(name="adam")
        self.lr, self.beta1, self.beta2, self.eps = lr, beta1, beta2, eps
        self.m = [tf.Variable(tf.zeros_like(v), name="m") for v in variables]
        self.v = [tf.Variable(tf.zeros_like(v), name="v") for v in variables]
        self.t = tf.Variable(0.0, name="t")

    def apply(self, grads, variables):
        self.t.assign_add(1.0)
        t = tf.cast(self.t, tf.float64)
        b1, b2 = self.beta1, self.beta2
        step64 = self.lr / (1.0 - tf.pow(tf.constant(b1, tf.float64), t))
        scale64 = tf.sqrt(1.0 - tf.pow(tf.constant(b2, tf.float64), t))
        for g, m, v, var in zip(grads, self.m, self.v, variables, strict=True):
            step, denom_scale = tf.cast(step64, var.dtype), tf.cast(scale64, var.dtype)
            m.assign(m + (1.0 - b1) * (g - m))  # torch's exp_avg.lerp_(grad, 1 − β₁)
            v.assign(b2 * v + (1.0 - b2) * tf.square(g))
            var.assign_sub(step * m / (tf.sqrt(v) / denom_scale + self.eps))

    @property
    def state(self):
        return [*self.m, *self.v, self.t]


