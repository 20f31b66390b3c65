"""TRPO (Schulman et al. 2015) in TensorFlow 2, one inspectable update at a time.

One call of :meth:`TRPOTrainer.step` is one update:

1. ``rollout``: n_envs × n_steps transitions with π_old (numpy forward, no TF per step).
2. ``advantages``: Â by GAE(γ, λ) (time-limit truncations bootstrap V(s_final)),
   normalised to zero mean and unit std over the batch.
3. ``surrogate``  L(θ) = mean_t [ π_θ(a_t|s_t) / π_old(a_t|s_t) · Â_t ],
   ``policy_gradient``  g = ∇_θ L(θ_old).
4. ``fisher_vector_product``  F v = ∇²_θ mean_t KL(π_old(·|s_t) ‖ π_θ(·|s_t)) |θ_old · v
   (a Hessian-vector product of the mean KL, on an optional subsample of the batch),
   ``step_direction``  s ≈ (F + λI)⁻¹ g by conjugate gradient (cg_max_steps steps).
5. ``step_size``  β = √(2δ / sᵀ(F + λI)s): the full step Δ = β·s reaches the edge of
   the quadratic trust region ½ ΔᵀFΔ = δ (δ = max_kl).
6. ``line_search``  θ = θ_old + shrink^j · Δ for j = 0 … max_backtracks; accept the first
   candidate with mean KL(π_old ‖ π_θ) ≤ δ and L(θ) − L(θ_old) > 0; if none is accepted
   (or anything is NaN/Inf) the parameters stay bit-identical to θ_old.
7. ``fit_value``  value_epochs epochs of Adam on minibatches of (V(s_t) − R̂_t)²,
   with targets R̂ = Â (unnormalised) + V_old(s).

Every quantity is recorded in an :class:`~trpo_viz.trpo.record.UpdateRecord`.
"""

from __future__ import annotations

import io
import json
import math
import os
import time
import zipfile
from pathlib import Path

import gymnasium as gym
import numpy as np
import tensorflow as tf

from trpo_viz.cg import CGResult, cg_loop, dot
from trpo_viz.hvp import gradient, hessian_vector_product
from trpo_viz.trpo.archive import TRAINER_FILES, ArchiveError, read_dir, read_zip, refuse
from trpo_viz.trpo.config import TRPOConfig
from trpo_viz.trpo.numerics import (
    explained_variance,
    operator_norm_estimate,
    relative_variance,
    residual_orthogonality,
    rounding_floor,
)
from trpo_viz.trpo.policy import (
    ValueFunction,
    get_flat,
    make_policy,
    set_flat,
    unflatten_batch,
)
from trpo_viz.trpo.record import LineSearchCandidate, UpdateRecord
from trpo_viz.trpo.rollout import Normalizer, RolloutCollector, gae_advantages, make_env
from trpo_viz.trpo.saved_run import check_trainer_arrays, read_trainer_files

_GRID_CHUNK = 64  # parameter vectors evaluated per compiled call in trust_region_slice


class TrainingFinished(RuntimeError):
    """``step`` was called on a run that has reached its total timesteps."""


def set_num_threads(n: int) -> None:
    """Limit TensorFlow's CPU thread pools (call before any TF op runs)."""
    tf.config.threading.set_intra_op_parallelism_threads(n)
    tf.config.threading.set_inter_op_parallelism_threads(n)


# --- the maths, one named function each --------------------------------------------------------


def surrogate(policy, params, obs, actions, advantages, old_log_prob):
    """L(θ) = mean(ratio · Â), ratio = π_θ(a|s)/π_old(a|s); params may carry a leading G axis."""
    dist = policy.distribution_params(params, obs)
    ratio = tf.exp(policy.distribution.log_prob(dist, actions) - old_log_prob)
    return tf.reduce_mean(ratio * advantages, axis=-1)


def kl(policy, params, obs, old_dist):
    """Mean over states of KL(π_old(·|s) ‖ π_θ(·|s)); params may carry a leading G axis."""
    new_dist = policy.distribution_params(params, obs)
    return tf.reduce_mean(policy.distribution.kl(old_dist, new_dist), axis=-1)


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
    """Adam (PyTorch's update form) over a list of plain ``tf.Variable``s; state is variables."""

    def __init__(self, variables, lr, beta1=0.9, beta2=0.999, eps=1e-5):
        super().__init__(name="adam")
        self.lr, self.beta1, self.beta2, self.eps = lr, beta1, beta2, eps
        self.m = [tf.Variable(tf.zeros_like(v), name="m") for v in variables]
        self.v = [tf.Variable(tf.zeros_like(v), name="v") for v in variables]
        self.t = tf.Variable(0.0, name="t")

    def apply(self, grads, variables):
        self.t.assign_add(1.0)
        b1, b2 = self.beta1, self.beta2
        step = self.lr / (1.0 - b1**self.t)
        denom_scale = tf.sqrt(1.0 - b2**self.t)
        for g, m, v, var in zip(grads, self.m, self.v, variables, strict=True):
            m.assign(b1 * m + (1.0 - b1) * g)
            v.assign(b2 * v + (1.0 - b2) * tf.square(g))
            var.assign_sub(step * m / (tf.sqrt(v) / denom_scale + self.eps))

    @property
    def state(self):
        return [*self.m, *self.v, self.t]


# --- the trainer ---------------------------------------------------------------------------------


class TRPOTrainer:
    """Runs TRPO one update at a time: ``record = trainer.step()``."""

    def __init__(self, config: TRPOConfig):
        config.validate()
        self.config = config
        self.rng = np.random.default_rng(config.seed)
        tf.random.set_seed(config.seed)  # nothing here draws from TF's RNG; belt and braces
        probe = make_env(config.env_id)
        self.observation_space, self.action_space = probe.observation_space, probe.action_space
        probe.close()
        obs_dim = int(np.prod(self.observation_space.shape))
        self.policy = make_policy(self.observation_space, self.action_space, config, self.rng)
        self.value = ValueFunction(obs_dim, config.hidden_sizes, config.activation, self.rng)
        self.value_optimizer = Adam(self.value.params, config.value_lr)
        self.normalizer = Normalizer(
            self.observation_space.shape,
            config.n_envs,
            config.gamma,
            config.normalize_obs,
            config.normalize_reward,
            config.clip_obs,
            config.clip_reward,
        )
        self.collector = RolloutCollector(
            config.env_id, config.n_envs, self.normalizer, config.seed
        )
        self.records: list[UpdateRecord] = []
        self.total_timesteps = 0
        self._last: dict | None = None  # the last update's batch and step, for the slice
        self._sync_numpy_policy()
        self._compile()

    # --- compiled pieces ---

    def _compile(self):
        policy, value, cfg = self.policy, self.value, self.config
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
        self._fvp_params = fvp_params

        def natural_gradient(obs, actions, advantages, old_log_prob, fvp_obs, fvp_old_dist):
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

            out = step_direction(fvp, g, cfg.cg_damping, cfg.cg_max_steps, cfg.cg_rtol)
            s = out["x"]
            out["g"] = g
            out["Fs"] = fvp(s) + cfg.cg_damping * s  # damped, as CG and the step size see it
            out["Fg"] = fvp(g) + cfg.cg_damping * g  # for the trust-region picture
            out["sFs"] = dot(s, out["Fs"])
            out["true_residual_norm"] = tf.norm(g - out["Fs"])  # ‖g − (F+λI)s‖ of the result
            return out

        def evaluate(thetas, obs, actions, advantages, old_log_prob, old_dist):
            params = unflatten_batch(thetas, policy.params)
            return (
                surrogate(policy, params, obs, actions, advantages, old_log_prob),
                kl(policy, params, obs, old_dist),
            )

        def fit_value(obs, returns, minibatches):
            losses = tf.TensorArray(tf.float32, size=tf.shape(minibatches)[0])
            for i in tf.range(tf.shape(minibatches)[0]):
                o, r = tf.gather(obs, minibatches[i]), tf.gather(returns, minibatches[i])
                with tf.GradientTape() as tape:
                    loss = tf.reduce_mean(tf.square(value(o) - r))
                grads = tape.gradient(loss, value.params)
                self.value_optimizer.apply(grads, value.params)
                losses = losses.write(i, loss)
            return losses.stack()

        def value_loss(obs, returns):
            return tf.reduce_mean(tf.square(value(obs) - returns))

        compile_ = lambda f: tf.function(f, reduce_retracing=True)  # noqa: E731
        self._prepare = compile_(prepare)
        self._natural_gradient = compile_(natural_gradient)
        self._evaluate = compile_(evaluate)
        self._fit_value = compile_(fit_value)
        self._value_loss = compile_(value_loss)

    def _sync_numpy_policy(self):
        """Copy the policy weights for the numpy forward used when acting."""
        self._policy_numpy = [v.numpy() for v in self.policy.params]

    def _act(self, obs):
        return self.policy.act_numpy(self._policy_numpy, obs, self.rng)

    # --- one update ---

    @property
    def done(self) -> bool:
        return self.total_timesteps >= self.config.total_timesteps

    def train(self, callback=None) -> list[UpdateRecord]:
        """Update until ``config.total_timesteps``; ``callback(record)`` after each update."""
        while not self.done:
            record = self.step()
            if callback is not None:
                callback(record)
        return self.records

    def step(self) -> UpdateRecord:
        """One update on a whole batch of n_envs · n_steps transitions.

        A run is finished once ``total_timesteps`` reaches ``config.total_timesteps``: the
        last batch is not cut short, so a run takes ⌈total / batch⌉ updates and may end up
        to one batch short of a batch past the limit. Calling ``step`` on a finished run
        raises :class:`TrainingFinished` and trains nothing.
        """
        cfg = self.config
        if self.done:
            raise TrainingFinished(
                f"finished: {self.total_timesteps:,} timesteps reached "
                f"(total timesteps {cfg.total_timesteps:,})"
            )
        t_start = time.perf_counter()

        # 1. rollout
        batch = self.collector.collect(self._act, cfg.n_steps)
        self.total_timesteps += cfg.n_envs * cfg.n_steps
        t_rollout = time.perf_counter()

        # 2. advantages
        n = cfg.n_envs * cfg.n_steps
        obs = tf.constant(batch.obs.reshape(n, -1))
        actions = tf.constant(batch.actions.reshape(n, *batch.actions.shape[2:]))
        next_obs = tf.constant(batch.next_obs.reshape(n, -1))
        prep = self._prepare(obs, next_obs, actions)
        values = prep["values"].numpy().reshape(cfg.n_steps, cfg.n_envs)
        next_values = prep["next_values"].numpy().reshape(cfg.n_steps, cfg.n_envs)
        advantages, returns = gae_advantages(
            batch.rewards,
            values,
            next_values,
            batch.terminated,
            batch.truncated,
            cfg.gamma,
            cfg.gae_lambda,
        )
        advantages, returns = advantages.reshape(n), returns.reshape(n)  # float64
        ev = explained_variance(values.reshape(n), returns)
        returns_relative_variance = relative_variance(returns)
        if cfg.normalize_advantage:
            advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
        advantages = tf.constant(advantages, tf.float32)
        returns = returns.astype(np.float32)
        old_dist, old_log_prob = prep["old_dist"], prep["old_log_prob"]

        # 3-5. policy gradient, natural-gradient direction by CG, step size
        fvp_obs, fvp_old_dist = obs, old_dist
        if cfg.fvp_subsample < 1.0:
            m = max(1, int(round(cfg.fvp_subsample * n)))
            idx = tf.constant(np.sort(self.rng.choice(n, m, replace=False)))
            fvp_obs, fvp_old_dist = tf.gather(obs, idx), tf.gather(old_dist, idx)
        out = self._natural_gradient(obs, actions, advantages, old_log_prob, fvp_obs, fvp_old_dist)
        cg = CGResult.from_tensors(out)
        g = out["g"].numpy().astype(np.float64)
        sFs = float(out["sFs"])
        beta = step_size(sFs, cfg.max_kl)
        full_step = (beta * cg.x).astype(np.float32)
        expected_improvement = float(g @ full_step)
        t_cg = time.perf_counter()

        # 6. line search: all candidates (and θ_old itself, row 0) in one compiled call
        theta_old = get_flat(self.policy.params)
        fractions = line_search_fractions(cfg.line_search_shrink, cfg.max_backtracks)
        thetas = np.concatenate([theta_old[None], theta_old + fractions[:, None] * full_step])
        surrogates, kls = (
            t.numpy().astype(float)
            for t in self._evaluate(
                tf.constant(thetas), obs, actions, advantages, old_log_prob, old_dist
            )
        )
        surrogate_before = surrogates[0]
        improvements = surrogates[1:] - surrogate_before
        accepted_index = None
        if np.all(np.isfinite(full_step)) and np.isfinite(surrogate_before):
            accepted_index = first_acceptable(kls[1:], improvements, cfg.max_kl)
        if accepted_index is not None:
            set_flat(self.policy.params, thetas[accepted_index + 1])
            self._sync_numpy_policy()
        t_line_search = time.perf_counter()

        # 7. value function
        returns_t = tf.constant(returns)
        value_loss_before = float(self._value_loss(obs, returns_t))
        losses = self._fit_value(obs, returns_t, tf.constant(self._value_minibatches(n)))
        value_loss = float(losses[-1]) if losses.shape[0] else value_loss_before
        t_end = time.perf_counter()

        self._last = dict(
            obs=obs,
            actions=actions,
            advantages=advantages,
            old_log_prob=old_log_prob,
            old_dist=old_dist,
            theta_old=theta_old,
            full_step=full_step,
            direction=cg.x,  # s, in the FVP/CG dtype
            g=g,
            damping=cfg.cg_damping,
            fractions=fractions,
            F_step=beta * out["Fs"].numpy(),
            Fg=out["Fg"].numpy(),
            accepted_index=accepted_index,
            max_kl=cfg.max_kl,
        )
        accepted = accepted_index is not None
        j = accepted_index
        record = UpdateRecord(
            update=len(self.records),
            total_timesteps=self.total_timesteps,
            episode_returns=batch.episode_returns,
            episode_lengths=batch.episode_lengths,
            max_kl=cfg.max_kl,
            kl=float(kls[j + 1]) if accepted else 0.0,
            surrogate_before=float(surrogate_before),
            surrogate_after=float(surrogates[j + 1]) if accepted else float(surrogate_before),
            expected_improvement=expected_improvement,
            actual_improvement=float(improvements[j]) if accepted else 0.0,
            candidates=[
                LineSearchCandidate(
                    fraction=float(f),
                    kl=float(k),
                    surrogate=float(s),
                    improvement=float(imp),
                    expected_improvement=float(f) * expected_improvement,
                )
                for f, k, s, imp in zip(
                    fractions, kls[1:], surrogates[1:], improvements, strict=True
                )
            ],
            accepted_index=accepted_index,
            accepted=accepted,
            backtracks=accepted_index if accepted else cfg.max_backtracks,
            step_fraction=float(fractions[j]) if accepted else 0.0,
            gradient_norm=float(np.linalg.norm(g)),
            step_norm=float(np.linalg.norm(full_step)),
            sFs=sFs,
            step_scale=beta,
            cg_iterations=cg.iterations,
            cg_stop_reason=cg.stop_reason,
            cg_residuals=[float(r) for r in cg.residual_norms],
            cg_curvatures=[float(c) for c in cg.curvatures],
            cg_true_residual=cg.true_residual_norm,
            cg_dtype=cfg.fvp_dtype,
            **cg_diagnostics(cg, float(np.linalg.norm(g)), cfg.fvp_dtype),
            entropy=float(prep["entropy"]),
            value_loss=value_loss,
            value_loss_before=value_loss_before,
            explained_variance=ev,
            returns_relative_variance=returns_relative_variance,
            wall_rollout_s=t_rollout - t_start,
            wall_fvp_cg_s=t_cg - t_rollout,
            wall_line_search_s=t_line_search - t_cg,
            wall_value_fit_s=t_end - t_line_search,
            wall_s=t_end - t_start,
        )
        self.records.append(record)
        return record

    def _value_minibatches(self, n: int) -> np.ndarray:
        """[value_epochs · n // mb, mb] indices: a fresh shuffle per epoch, remainder dropped."""
        mb = min(self.config.value_batch_size, n)
        per_epoch = n // mb
        rows = [
            self.rng.permutation(n)[: per_epoch * mb].reshape(per_epoch, mb)
            for _ in range(self.config.value_epochs)
        ]
        return np.concatenate(rows) if rows else np.zeros((0, mb), np.int64)

    # --- the trust-region picture ---

    def trust_region_slice(self, alphas, betas) -> dict:
        """Surrogate improvement and KL on the plane θ_old + a·Δ + b·Δ_g of the last update.

        Δ is the accepted update's full natural step (β·s; the line-search candidates lie
        at (fraction, 0)). Δ_g is the plain gradient g scaled to *its own* trust-region
        length, √(2δ / gᵀ(F+λI)g)·g, so b = 1 also lies on the quadratic trust-region
        boundary. The returned ``quadratic_form`` M (2×2, with the damped Fisher F+λI used
        by CG and the step size) gives the quadratic KL model ½[a b]M[a b]ᵀ; its level
        set = δ is the trust-region ellipse in this plane. ``quadratic_form_undamped`` is
        the same with F alone, M − λ·[[‖Δ‖², ΔᵀΔ_g], [ΔᵀΔ_g, ‖Δ_g‖²]]: the second-order
        model of the KL itself (the damping's share of M is λ‖·‖² over the quadratic form).

        Returns a dict of numpy arrays/floats: ``alphas`` [na], ``betas`` [nb],
        ``improvement`` and ``kl`` [nb, na] (L(θ) − L(θ_old) and mean KL(π_old ‖ π_θ)),
        ``linear_improvement`` and ``quadratic_kl`` [nb, na] (the models TRPO solves),
        ``quadratic_form`` and ``quadratic_form_undamped`` [2, 2], ``damping`` λ,
        ``max_kl``, ``candidates`` [k, 2] (a, b) of the
        line-search candidates, ``accepted`` (a, b) or None, ``natural_step``,
        ``gradient_step`` (the two directions, flat), ``g_dot`` [gᵀΔ, gᵀΔ_g].
        """
        if self._last is None:
            raise RuntimeError("trust_region_slice needs at least one update (call step())")
        last = self._last
        alphas = np.asarray(alphas, np.float32)
        betas = np.asarray(betas, np.float32)
        step = last["full_step"]
        g = last["g"]
        scale = math.sqrt(2 * last["max_kl"] / float(g @ last["Fg"]))  # g's own TR length
        g_step, F_gstep = (g * scale).astype(np.float32), last["Fg"] * scale
        F_step = last["F_step"]
        cross = float(step @ F_gstep)
        M = np.array([[step @ F_step, cross], [cross, g_step @ F_gstep]], np.float64)
        basis = np.stack([step, g_step]).astype(np.float64)  # rows Δ and Δ_g
        M_undamped = M - last["damping"] * (basis @ basis.T)

        a_grid, b_grid = np.meshgrid(alphas, betas)  # [nb, na]
        coords = np.stack([a_grid.ravel(), b_grid.ravel()], axis=1)
        thetas = last["theta_old"] + coords[:, :1] * step + coords[:, 1:] * g_step
        thetas = np.concatenate([last["theta_old"][None], thetas]).astype(np.float32)
        surrogates, kls = self._evaluate_many(thetas)
        improvement = (surrogates[1:] - surrogates[0]).reshape(a_grid.shape)
        quadratic_kl = 0.5 * np.einsum("gi,ij,gj->g", coords, M, coords).reshape(a_grid.shape)
        g_dot = np.array([g @ step, g @ g_step])
        fractions = last["fractions"]
        accepted = last["accepted_index"]
        return {
            "alphas": alphas,
            "betas": betas,
            "improvement": improvement,
            "kl": kls[1:].reshape(a_grid.shape),
            "linear_improvement": (coords @ g_dot).reshape(a_grid.shape),
            "quadratic_kl": quadratic_kl,
            "quadratic_form": M,
            "quadratic_form_undamped": M_undamped,
            "damping": float(last["damping"]),
            "max_kl": float(last["max_kl"]),
            "candidates": np.stack([fractions, np.zeros_like(fractions)], axis=1),
            "accepted": None if accepted is None else (float(fractions[accepted]), 0.0),
            "natural_step": step,
            "gradient_step": g_step,
            "g_dot": g_dot,
        }

    def _evaluate_many(self, thetas: np.ndarray):
        """(surrogate, KL) for each row of thetas, in fixed-size compiled chunks."""
        last = self._last
        n_rows = len(thetas)
        padded = np.concatenate([thetas, np.repeat(thetas[:1], (-n_rows) % _GRID_CHUNK, axis=0)])
        surrogates, kls = [], []
        for start in range(0, len(padded), _GRID_CHUNK):
            s, k = self._evaluate(
                tf.constant(padded[start : start + _GRID_CHUNK]),
                last["obs"],
                last["actions"],
                last["advantages"],
                last["old_log_prob"],
                last["old_dist"],
            )
            surrogates.append(s.numpy())
            kls.append(k.numpy())
        return np.concatenate(surrogates)[:n_rows], np.concatenate(kls)[:n_rows]

    # --- evaluation and rendering ---

    def _eval_policy_action(self, obs_raw, rng, deterministic):
        obs = self.normalizer.observation(np.asarray(obs_raw, np.float32)[None])
        action = self.policy.act_numpy(self._policy_numpy, obs, rng, deterministic)[0]
        if isinstance(self.action_space, gym.spaces.Box):
            action = np.clip(action, self.action_space.low, self.action_space.high)
        return action

    def evaluate(self, n_episodes: int = 20, deterministic: bool = True, seed: int | None = None):
        """Undiscounted returns of ``n_episodes`` fresh episodes (normaliser frozen)."""
        seed = self.config.seed + 10_000 if seed is None else seed
        rng = np.random.default_rng(seed)
        env = make_env(self.config.env_id)
        returns = []
        for episode in range(n_episodes):
            obs, _ = env.reset(seed=seed + episode)
            total, done = 0.0, False
            while not done:
                obs, reward, terminated, truncated, _ = env.step(
                    self._eval_policy_action(obs, rng, deterministic)
                )
                total += float(reward)
                done = terminated or truncated
            returns.append(total)
        env.close()
        return returns

    def render_rollout(self, max_frames: int = 500, deterministic: bool = True, seed=None):
        """RGB frames (np.uint8 [H, W, 3]) of one episode with the current policy."""
        os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
        seed = self.config.seed + 20_000 if seed is None else seed
        rng = np.random.default_rng(seed)
        env = make_env(self.config.env_id, render_mode="rgb_array")
        obs, _ = env.reset(seed=seed)
        frames = [np.asarray(env.render(), np.uint8)]
        while len(frames) < max_frames:
            obs, _, terminated, truncated, _ = env.step(
                self._eval_policy_action(obs, rng, deterministic)
            )
            frames.append(np.asarray(env.render(), np.uint8))
            if terminated or truncated:
                break
        env.close()
        return frames

    # --- persistence ---

    def _state_files(self, records: bool = True) -> dict[str, bytes]:
        """config.json, state.json, arrays.npz and (``records``) records.json as bytes.

        ``records=False`` is a checkpoint's cost: the weights, not the whole history
        (a run store keeps the records in rows of their own).
        """
        arrays = {f"policy/{i}": v.numpy() for i, v in enumerate(self.policy.params)}
        arrays |= {f"value/{i}": v.numpy() for i, v in enumerate(self.value.params)}
        arrays |= {f"adam/{i}": v.numpy() for i, v in enumerate(self.value_optimizer.state)}
        arrays |= {f"normalizer/{k}": np.asarray(v) for k, v in self.normalizer.state().items()}
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        state = {
            "total_timesteps": self.total_timesteps,
            "rng_state": self.rng.bit_generator.state,
        }
        files = {
            "config.json": json.dumps(self.config.to_dict(), indent=1).encode(),
            "state.json": json.dumps(state).encode(),
            "arrays.npz": buffer.getvalue(),
        }
        if records:
            files["records.json"] = json.dumps([r.to_dict() for r in self.records]).encode()
        return files

    @classmethod
    def _from_state_files(cls, files: dict[str, bytes]) -> TRPOTrainer:
        """A trainer from its saved files, each validated first (:mod:`~trpo_viz.trpo.saved_run`).

        A damaged or foreign file raises :class:`~trpo_viz.trpo.archive.ArchiveError`.
        """
        saved = read_trainer_files(files)
        config = saved.config
        try:
            trainer = cls(config)
        except gym.error.Error as error:
            refuse("config.json", f"environment {config.env_id!r} cannot be made here ({error})")
        try:
            check_trainer_arrays(saved.arrays, trainer)  # shapes match this config's networks
        except ArchiveError:
            trainer.close()
            raise
        arrays = saved.arrays
        for prefix, variables in (
            ("policy", trainer.policy.params),
            ("value", trainer.value.params),
            ("adam", trainer.value_optimizer.state),
        ):
            for i, var in enumerate(variables):
                var.assign(arrays[f"{prefix}/{i}"])
        trainer.normalizer.load_state(
            {k.split("/", 1)[1]: v for k, v in arrays.items() if k.startswith("normalizer/")}
        )
        trainer.total_timesteps = saved.total_timesteps
        trainer.rng.bit_generator.state = saved.rng_state
        trainer.records = saved.records
        trainer._sync_numpy_policy()
        # Environment states cannot be saved: start fresh episodes, seeded by the update count.
        seed = config.seed + 1_000_003 * (len(trainer.records) + 1)
        trainer.collector.reset(seed, update_normalizer=False)
        return trainer

    def save(self, path_dir) -> Path:
        """Write config.json, records.json, state.json and arrays.npz into ``path_dir``."""
        path = Path(path_dir)
        path.mkdir(parents=True, exist_ok=True)
        for name, data in self._state_files().items():
            (path / name).write_bytes(data)
        return path

    @classmethod
    def load(cls, path_dir) -> TRPOTrainer:
        """The run saved by :meth:`save` (:class:`~trpo_viz.trpo.archive.ArchiveError` if bad)."""
        return cls._from_state_files(read_dir(path_dir))

    def to_bytes(self) -> bytes:
        """The saved run as one zip archive in memory (for a download button)."""
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for name, data in self._state_files().items():
                archive.writestr(name, data)
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> TRPOTrainer:
        """The run of :meth:`to_bytes` (:class:`~trpo_viz.trpo.archive.ArchiveError` if bad)."""
        return cls._from_state_files(read_zip(data, required=TRAINER_FILES, optional=()))

    def close(self) -> None:
        """Close the environments and drop the compiled functions (the trainer cannot step again).

        ``fit_value`` closes over the trainer, so the trainer, its compiled functions and
        their traced graphs form a reference cycle, which only Python's cyclic collector
        frees (never, once a ``gc.freeze()`` has moved it to the permanent generation).
        Without the functions, the last reference to a closed trainer frees all of it.
        """
        self.collector.close()
        self._prepare = self._natural_gradient = self._evaluate = None
        self._fit_value = self._value_loss = None
        self._last = None
