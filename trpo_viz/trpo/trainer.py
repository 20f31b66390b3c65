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
   candidate with mean KL(π_old ‖ π_θ) ≤ δ (over the whole batch, not the FVP's subsample)
   and L(θ) − L(θ_old) > 0; if none is accepted (or g, sᵀ(F+λI)s or Δ is NaN/Inf, or
   sᵀ(F+λI)s ≤ 0) the parameters stay bit-identical to θ_old and ``step_status`` says why.
7. ``fit_value``  value_epochs epochs of Adam on minibatches of (V(s_t) − R̂_t)²,
   with targets R̂ = Â (unnormalised) + V_old(s).

``config.variant`` removes one piece for an ablation (:mod:`~trpo_viz.trpo.variants`):
``npg`` (no line search), ``no-kl-check`` (no KL condition), ``gradient`` (g for s, no CG),
``vanilla-pg`` (Δ = pg_lr · g, nothing else).

Every quantity is recorded in an :class:`~trpo_viz.trpo.record.UpdateRecord`, with the
Ritz values of F + λI from CG's α, β. With ``config.exact_fisher`` each update also builds
F explicitly at θ_old (:mod:`~trpo_viz.trpo.fisher`) and records CG's distance from the
exact s* = (F + λI)⁻¹ g per iteration, exact TRPO's step and F's eigenvalues; it changes
nothing in the update itself.
"""

from __future__ import annotations

import time

import numpy as np
import tensorflow as tf

from trpo_viz.cg import CGResult
from trpo_viz.hvp import num_parameters
from trpo_viz.trpo.compiled import compile_update
from trpo_viz.trpo.config import TRPOConfig
from trpo_viz.trpo.fisher import ExactFisher, compare_with_exact, final_ritz_values
from trpo_viz.trpo.numerics import explained_variance, relative_variance
from trpo_viz.trpo.persistence import TrainerPersistence
from trpo_viz.trpo.pictures import TrainerPictures
from trpo_viz.trpo.policy import (
    ValueFunction,
    get_flat,
    make_policy,
    set_flat,
)
from trpo_viz.trpo.record import LineSearchCandidate, UpdateRecord
from trpo_viz.trpo.rollout import Normalizer, RolloutCollector, gae_advantages, make_env
from trpo_viz.trpo.update import (  # noqa: F401 - the maths, importable from here as before
    Adam,
    cg_diagnostics,
    first_acceptable,
    fisher_vector_product,
    kl,
    line_search_fractions,
    policy_gradient,
    step_direction,
    step_size,
    surrogate,
)
from trpo_viz.trpo.variants import accepted_candidate, step_status, variant


class TrainingFinished(RuntimeError):
    """``step`` was called on a run that has reached its total timesteps."""


def set_num_threads(n: int) -> None:
    """Limit TensorFlow's CPU thread pools (call before any TF op runs)."""
    tf.config.threading.set_intra_op_parallelism_threads(n)
    tf.config.threading.set_inter_op_parallelism_threads(n)


class TRPOTrainer(TrainerPictures, TrainerPersistence):
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
        # The exact Fisher beside CG (a diagnostic), for policies small enough to afford it.
        self._exact = None
        if config.exact_fisher and num_parameters(self.policy.params) <= (
            config.exact_fisher_max_params
        ):
            self._exact = ExactFisher(self.policy)

    # --- compiled pieces ---

    def _compile(self):
        compiled = compile_update(self.policy, self.value, self.value_optimizer, self.config)
        self._prepare = compiled.prepare
        self._natural_gradient = compiled.natural_gradient
        self._plain_gradient = compiled.plain_gradient
        self._evaluate = compiled.evaluate
        self._evaluate_grid = compiled.evaluate_grid
        self._fit_value = compiled.fit_value
        self._value_loss = compiled.value_loss

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
        gae = advantages
        if cfg.normalize_advantage:  # once per batch, here only
            # the sample std (n − 1), as sb3-contrib and CleanRL (torch.std); scale-free anyway:
            # β rescales the step to δ, so only the records' surrogate values see it
            advantages = (advantages - advantages.mean()) / (advantages.std(ddof=1) + 1e-8)
        advantages = tf.constant(advantages, tf.float32)
        returns = returns.astype(np.float32)
        old_dist, old_log_prob = prep["old_dist"], prep["old_log_prob"]

        # 3-5. policy gradient g, the variant's direction d (CG's s, or g) and full step Δ
        pieces = variant(cfg.variant)
        fvp_obs, fvp_old_dist, fvp_index = obs, old_dist, None
        if cfg.fvp_subsample < 1.0:
            m = max(1, int(round(cfg.fvp_subsample * n)))
            fvp_index = np.sort(self.rng.choice(n, m, replace=False))
            idx = tf.constant(fvp_index)
            fvp_obs, fvp_old_dist = tf.gather(obs, idx), tf.gather(old_dist, idx)
        batch_args = (obs, actions, advantages, old_log_prob, fvp_obs, fvp_old_dist)
        if pieces.natural:  # d = s ≈ (F + λI)⁻¹ g by CG
            out = self._natural_gradient(*batch_args)
            cg = CGResult.from_tensors(out)
            direction, F_direction, curvature = cg.x, out["Fs"].numpy(), float(out["sFs"])
        else:  # d = g
            out = self._plain_gradient(*batch_args)
            cg = None
            direction, F_direction, curvature = out["g"].numpy(), out["Fg"].numpy(), float(
                out["gFg"]
            )
        g = out["g"].numpy().astype(np.float64)
        beta = step_size(curvature, cfg.max_kl) if pieces.trust_region else cfg.pg_lr
        full_step = (beta * direction).astype(np.float32)
        expected_improvement = float(g @ full_step)
        t_cg = time.perf_counter()

        # 6. line search: all candidates (and θ_old itself, row 0) in one compiled call
        theta_old = get_flat(self.policy.params)
        trpo_fractions = line_search_fractions(cfg.line_search_shrink, cfg.max_backtracks)
        fractions = trpo_fractions if pieces.line_search else np.ones(1, np.float32)
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
        step_finite = bool(np.all(np.isfinite(full_step)))
        if step_finite and np.isfinite(surrogate_before):
            accepted_index = accepted_candidate(pieces, kls[1:], improvements, cfg.max_kl)
        status = step_status(
            bool(np.all(np.isfinite(g))), curvature, step_finite, accepted_index is not None, pieces
        )
        t_line_search = time.perf_counter()

        # 6b. the exact natural gradient beside CG, at θ_old (a diagnostic: changes nothing)
        exact = {}
        if cfg.exact_fisher:
            exact = self._compare_with_exact(
                theta_old, fvp_obs, g, cg, direction, trpo_fractions,
                (obs, actions, advantages, old_log_prob, old_dist),
            )  # fmt: skip
        t_exact = time.perf_counter()

        if accepted_index is not None:
            set_flat(self.policy.params, thetas[accepted_index + 1])
            self._sync_numpy_policy()

        # 7. value function
        returns_t = tf.constant(returns)
        value_loss_before = float(self._value_loss(obs, returns_t))
        losses = self._fit_value(obs, returns_t, tf.constant(self._value_minibatches(n)))
        value_loss = float(losses[-1]) if losses.shape[0] else value_loss_before
        t_end = time.perf_counter()

        self._last = dict(
            obs=obs,
            actions=actions,
            advantages=advantages,  # as L(θ) and g use them
            gae_advantages=gae,  # float64, before normalisation
            old_log_prob=old_log_prob,
            old_dist=old_dist,
            theta_old=theta_old,
            full_step=full_step,
            direction=direction,  # d (CG's s, or g), in the FVP/CG dtype
            fvp_index=fvp_index,  # the states of the FVP subsample (None: the whole batch)
            g=g,
            damping=cfg.cg_damping,
            fractions=fractions,
            F_step=beta * F_direction,
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
            backtracks=accepted_index if accepted else len(fractions) - 1,
            step_fraction=float(fractions[j]) if accepted else 0.0,
            gradient_norm=float(np.linalg.norm(g)),
            step_norm=float(np.linalg.norm(full_step)),
            sFs=curvature,
            step_scale=beta,
            variant=cfg.variant,
            step_status=status,
            **self._cg_fields(cg, g),
            **exact,
            entropy=float(prep["entropy"]),
            value_loss=value_loss,
            value_loss_before=value_loss_before,
            explained_variance=ev,
            returns_relative_variance=returns_relative_variance,
            wall_rollout_s=t_rollout - t_start,
            wall_fvp_cg_s=t_cg - t_rollout,
            wall_line_search_s=t_line_search - t_cg,
            wall_value_fit_s=t_end - t_exact,
            wall_exact_fisher_s=t_exact - t_line_search,
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

    def _cg_fields(self, cg: CGResult | None, g: np.ndarray) -> dict:
        """The record's CG fields; a variant without CG has x_0 = 0 and r_0 = g only."""
        dtype = self.config.fvp_dtype
        if cg is None:
            return dict(
                cg_iterations=0, cg_stop_reason="skipped", cg_residuals=[float(np.linalg.norm(g))],
                cg_curvatures=[], cg_dtype=dtype,
            )  # fmt: skip
        return dict(
            cg_iterations=cg.iterations,
            cg_stop_reason=cg.stop_reason,
            cg_residuals=[float(r) for r in cg.residual_norms],
            cg_curvatures=[float(c) for c in cg.curvatures],
            cg_true_residual=cg.true_residual_norm,
            cg_dtype=dtype,
            **cg_diagnostics(cg, float(np.linalg.norm(g)), dtype),
            cg_ritz_values=final_ritz_values(cg.alphas, cg.betas),
        )

    def _compare_with_exact(self, theta_old, fvp_obs, g, cg, direction, fractions, batch) -> dict:
        """The record's exact-Fisher fields (:func:`~trpo_viz.trpo.fisher.compare_with_exact`)."""
        if self._exact is None:
            return {"exact_fisher_status": "too_large"}

        def evaluate(steps):  # with θ_old as row 0, the same shape as the line search's call
            thetas = np.concatenate([theta_old[None], theta_old + steps]).astype(np.float32)
            surrogates, kls = (t.numpy().astype(float) for t in self._evaluate(thetas, *batch))
            return surrogates[1:] - surrogates[0], kls[1:]

        iterates = cg.iterates if cg is not None else np.zeros((1, len(g)))
        return compare_with_exact(
            self._exact.compute(fvp_obs.numpy()), self.config.cg_damping, g, iterates,
            direction, self.config.max_kl, fractions, evaluate,
        )  # fmt: skip

    def close(self) -> None:
        """Close the environments and drop the compiled functions (the trainer cannot step again).

        ``fit_value`` closes over the trainer, so the trainer, its compiled functions and
        their traced graphs form a reference cycle, which only Python's cyclic collector
        frees (never, once a ``gc.freeze()`` has moved it to the permanent generation).
        Without the functions, the last reference to a closed trainer frees all of it.
        """
        self.collector.close()
        self._prepare = self._natural_gradient = self._plain_gradient = self._evaluate = None
        self._evaluate_grid = None
        self._fit_value = self._value_loss = None
        self._last = None
        if self._exact is not None:
            self._exact.close()
