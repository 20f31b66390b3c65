"""What the trainer draws beside its records: the trust-region slice, evaluation, rollouts.

:class:`TrainerPictures` is a mixin of :class:`~trpo_viz.trpo.trainer.TRPOTrainer`: it
reads the last update's batch and step (``self._last``), the policy and the environment
settings, and changes nothing a later update depends on.
"""

from __future__ import annotations

import contextlib
import math

import gymnasium as gym
import numpy as np
import tensorflow as tf

from trpo_viz.trpo.mujoco_render import (  # noqa: F401 - RenderUnavailable re-exported
    RenderUnavailable,
    check_backend,
    render_states,
    render_unavailable_note,
)
from trpo_viz.trpo.rollout import is_mujoco, make_env

_GRID_CHUNK = 64  # parameter vectors evaluated per compiled call in trust_region_slice


class TrainerPictures:
    """The trust-region slice of the last update, evaluation returns and rollout frames."""

    def trust_region_slice(self, alphas, betas) -> dict:
        """Surrogate improvement and KL on the plane θ_old + a·Δ + b·Δ_g of the last update.

        Δ is the last update's full step (β·s for TRPO; the variant's full step for an
        ablation, e.g. pg_lr·g for vanilla-pg; the line-search candidates lie at
        (fraction, 0)). Δ_g is the plain gradient g scaled to *its own* trust-region
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
            s, k = self._evaluate_grid(
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

    def render_rollout(
        self, max_frames: int = 500, deterministic: bool = True, seed=None, size=None, every=1
    ) -> list[np.ndarray]:
        """RGB frames (np.uint8 [H, W, 3]) of one episode with the current policy.

        The episode runs until it ends or has ``max_frames`` states (the reset one
        included); the frames are those of states 0, ``every``, 2·``every``, … (only
        those are drawn).

        MuJoCo tasks are drawn by a separate process (:mod:`trpo_viz.trpo.mujoco_render`:
        in this process, TensorFlow's LLVM would crash Mesa's) at ``size`` (height, width;
        480 × 480 when None); classic-control tasks draw here, at their own size. Raises
        :class:`RenderUnavailable`, whose message is the note to show instead, when the
        task cannot be rendered on this machine (MuJoCo without EGL or OSMesa, no pygame,
        ...); errors of the policy itself propagate unchanged.
        """
        if every < 1:
            raise ValueError(f"every must be at least 1, got {every}")
        env_id = self.config.env_id
        seed = self.config.seed + 20_000 if seed is None else seed
        rng = np.random.default_rng(seed)
        if is_mujoco(env_id):
            check_backend(env_id)  # before stepping an episode that cannot be drawn
            qpos, qvel = self._mujoco_states(max_frames, deterministic, seed, rng)
            return render_states(env_id, qpos[::every], qvel[::every], size)
        env = None
        try:
            env = make_env(env_id, render_mode="rgb_array")
            obs, _ = env.reset(seed=seed)
            frames = [_render(env)]
        except Exception as error:  # noqa: BLE001 - any renderer failure becomes the note
            if env is not None:
                with contextlib.suppress(Exception):
                    env.close()
            note = render_unavailable_note(env_id, f"{type(error).__name__}: {error}")
            raise RenderUnavailable(note) from None
        try:
            for state in range(1, max_frames):
                obs, _, terminated, truncated, _ = env.step(
                    self._eval_policy_action(obs, rng, deterministic)
                )
                if state % every == 0:
                    frames.append(_render(env))
                if terminated or truncated:
                    break
        finally:
            env.close()
        return frames

    def _mujoco_states(self, max_frames, deterministic, seed, rng):
        """MuJoCo's (qpos [T, nq], qvel [T, nv]) along one episode (T ≤ max_frames)."""
        env = make_env(self.config.env_id)
        try:
            obs, _ = env.reset(seed=seed)
            data = env.unwrapped.data
            qpos, qvel = [data.qpos.copy()], [data.qvel.copy()]
            while len(qpos) < max_frames:
                obs, _, terminated, truncated, _ = env.step(
                    self._eval_policy_action(obs, rng, deterministic)
                )
                qpos.append(data.qpos.copy())
                qvel.append(data.qvel.copy())
                if terminated or truncated:
                    break
        finally:
            env.close()
        return np.stack(qpos), np.stack(qvel)


def _render(env: gym.Env) -> np.ndarray:
    frame = env.render()
    if frame is None:
        raise RuntimeError("the environment returned no frame")
    return np.asarray(frame, np.uint8)
