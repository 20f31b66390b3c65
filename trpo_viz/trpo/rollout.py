"""Vector-env rollouts (numpy policy, no TensorFlow per step), running normalisers, and GAE.

Environments run in a ``gymnasium.vector.SyncVectorEnv`` with ``AutoresetMode.SAME_STEP``:
when an episode ends at step t, ``step`` returns the reward/terminated/truncated of that
step, the *reset* observation of the next episode, and the true last observation in
``info["final_obs"]``. Each transition therefore records its own true next state
``next_obs[t]`` - which GAE needs to bootstrap V(s_final) on a time-limit truncation.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import gymnasium as gym
import numpy as np

# Headless rendering (SDL_VIDEODRIVER=dummy for pygame, MUJOCO_GL=egl for MuJoCo) is set
# up when trpo_viz is imported, before gymnasium can import either: trpo_viz/__init__.py.


def batch_moments(x: np.ndarray):
    """``(x.mean(axis=0), x.var(axis=0))``, bit for bit, for float32 and float64 ``x``.

    The same ufunc calls, in the same order and dtypes, as NumPy's ``_mean`` and ``_var``
    (``numpy/_core/_methods.py``: a pairwise sum, a division by the count as ``intp``
    cast back to x's dtype, the centred squares summed), without their Python-level
    bookkeeping. The normalisers call this twice per environment step: on Hopper that
    bookkeeping was about 12 % of a rollout (cProfile). Other dtypes take NumPy's own path.
    """
    if x.dtype not in (np.float32, np.float64):
        return x.mean(axis=0), x.var(axis=0)
    n = np.intp(x.shape[0])
    mean = np.add.reduce(x, axis=0, keepdims=True)
    np.true_divide(mean, n, out=mean, casting="unsafe")
    centred = x - mean
    np.multiply(centred, centred, out=centred)
    var = np.add.reduce(centred, axis=0, keepdims=True)
    np.true_divide(var, n, out=var, casting="unsafe")
    return mean[0], var[0]


def clip(x: np.ndarray, low, high) -> np.ndarray:
    """``np.clip(x, low, high)`` as its ufunc computes it (max, then min; NaN stays NaN),
    without ``np.clip``'s Python-level dispatch: three calls per environment step."""
    return np.minimum(np.maximum(x, low), high)


class RunningMeanStd:
    """Running mean and variance over a stream of batches (parallel Welford / Chan et al.)."""

    def __init__(self, shape=()):
        self.mean = np.zeros(shape, np.float64)
        self.var = np.ones(shape, np.float64)
        self.count = 1e-4

    def update(self, x: np.ndarray) -> None:
        (batch_mean, batch_var), n = batch_moments(x), x.shape[0]
        delta = batch_mean - self.mean
        total = self.count + n
        self.mean = self.mean + delta * n / total
        m2 = self.var * self.count + batch_var * n + delta**2 * self.count * n / total
        self.var = m2 / total
        self.count = total

    def state(self) -> dict:
        return {"mean": self.mean, "var": self.var, "count": np.float64(self.count)}

    def load_state(self, state: dict) -> None:
        self.mean = np.asarray(state["mean"], np.float64)
        self.var = np.asarray(state["var"], np.float64)
        self.count = float(state["count"])


class Normalizer:
    """VecNormalize-style observation and reward normalisation (either may be off)."""

    def __init__(
        self,
        obs_shape,
        n_envs,
        gamma,
        normalize_obs,
        normalize_reward,
        clip_obs,
        clip_reward,
        eps=1e-8,
    ):
        self.normalize_obs, self.normalize_reward = normalize_obs, normalize_reward
        self.clip_obs, self.clip_reward, self.gamma, self.eps = clip_obs, clip_reward, gamma, eps
        self.obs_rms = RunningMeanStd(obs_shape)
        self.return_rms = RunningMeanStd(())
        self.discounted_return = np.zeros(n_envs)

    def observation(self, obs: np.ndarray, update: bool = False) -> np.ndarray:
        if not self.normalize_obs:
            return obs.astype(np.float32)
        if update:
            self.obs_rms.update(obs)
        z = (obs - self.obs_rms.mean) / np.sqrt(self.obs_rms.var + self.eps)
        return clip(z, -self.clip_obs, self.clip_obs).astype(np.float32)

    def reward(self, reward: np.ndarray, done: np.ndarray) -> np.ndarray:
        """Scale rewards by the running std of the discounted return (no mean shift)."""
        if not self.normalize_reward:
            return reward.astype(np.float32)
        self.discounted_return = self.discounted_return * self.gamma + reward
        self.return_rms.update(self.discounted_return)
        scaled = reward / np.sqrt(self.return_rms.var + self.eps)
        self.discounted_return[done] = 0.0
        return clip(scaled, -self.clip_reward, self.clip_reward).astype(np.float32)

    def state(self) -> dict:
        return {
            **{f"obs_{k}": v for k, v in self.obs_rms.state().items()},
            **{f"ret_{k}": v for k, v in self.return_rms.state().items()},
        }

    def load_state(self, state: dict) -> None:
        self.obs_rms.load_state({k[4:]: v for k, v in state.items() if k.startswith("obs_")})
        self.return_rms.load_state({k[4:]: v for k, v in state.items() if k.startswith("ret_")})


@dataclass
class Batch:
    """One rollout: arrays are [n_steps, n_envs, ...]; observations already normalised."""

    obs: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray  # what the learner sees (normalised if configured)
    next_obs: np.ndarray  # true next state of each transition (final obs at episode ends)
    terminated: np.ndarray
    truncated: np.ndarray
    episode_returns: list[float] = field(default_factory=list)  # raw returns, finished episodes
    episode_lengths: list[int] = field(default_factory=list)


def make_env(env_id: str, render_mode: str | None = None, **kwargs) -> gym.Env:
    """``gym.make(env_id, render_mode=..., **kwargs)`` (kwargs: the task's own options)."""
    if is_mujoco(env_id):
        route_mujoco_warnings()
    return gym.make(env_id, render_mode=render_mode, **kwargs)


def route_mujoco_warnings() -> None:
    """Send MuJoCo's warnings to Python's ``warnings`` (shown once) instead of its log file.

    Without a handler MuJoCo appends each warning to MUJOCO_LOG.TXT in the working
    directory and prints it: with mujoco 4.0, every HalfCheetah-v5 made does so (its
    model uses the deprecated ``settotalmass``). A handler set by someone else is kept.
    """
    import mujoco

    if mujoco.get_mju_user_warning() is None:
        mujoco.set_mju_user_warning(_mujoco_warning)


def _mujoco_warning(message: str) -> None:
    warnings.warn(f"MuJoCo: {message}", RuntimeWarning, stacklevel=1)


def is_mujoco(env_id: str) -> bool:
    """Whether ``env_id`` is one of gymnasium's MuJoCo tasks (without importing MuJoCo)."""
    try:
        entry_point = gym.spec(env_id).entry_point
    except Exception:  # noqa: BLE001 - gymnasium raises several error types for unknown ids
        return False
    return isinstance(entry_point, str) and entry_point.startswith("gymnasium.envs.mujoco")


class _NoStepInfo(gym.Wrapper):
    """Drops each step's ``info``. The collector reads only ``final_obs``, which the vector
    env adds itself; merging every step's info dict (five entries on MuJoCo tasks) into
    the batch's was about 7 % of a Hopper rollout (cProfile)."""

    def step(self, action):
        obs, reward, terminated, truncated, _ = self.env.step(action)
        return obs, reward, terminated, truncated, {}


def make_vector_env(env_id: str, n_envs: int) -> gym.vector.SyncVectorEnv:
    return gym.vector.SyncVectorEnv(
        [lambda: _NoStepInfo(make_env(env_id)) for _ in range(n_envs)],
        autoreset_mode=gym.vector.AutoresetMode.SAME_STEP,
    )


class RolloutCollector:
    """Steps a vector env with a numpy policy and keeps episodes running across batches."""

    def __init__(self, env_id: str, n_envs: int, normalizer: Normalizer, seed: int):
        self.envs = make_vector_env(env_id, n_envs)
        self.n_envs = n_envs
        self.normalizer = normalizer
        self.action_space = self.envs.single_action_space
        self.is_box = isinstance(self.action_space, gym.spaces.Box)
        self.reset(seed)

    def reset(self, seed: int, update_normalizer: bool = True) -> None:
        raw_obs, _ = self.envs.reset(seed=[seed + i for i in range(self.n_envs)])
        self.obs = self.normalizer.observation(raw_obs, update=update_normalizer)
        self.episode_return = np.zeros(self.n_envs)
        self.episode_length = np.zeros(self.n_envs, np.int64)

    def collect(self, act, n_steps: int) -> Batch:
        """Run ``n_steps`` steps in every env; ``act(obs [n_envs, d]) -> actions``."""
        obs_dim = self.obs.shape[1:]
        obs = np.zeros((n_steps, self.n_envs, *obs_dim), np.float32)
        next_obs = np.zeros_like(obs)
        rewards = np.zeros((n_steps, self.n_envs), np.float32)
        terminated = np.zeros((n_steps, self.n_envs), bool)
        truncated = np.zeros((n_steps, self.n_envs), bool)
        actions = None
        returns, lengths = [], []
        for t in range(n_steps):
            action = act(self.obs)
            if actions is None:
                actions = np.zeros((n_steps, *action.shape), action.dtype)
            obs[t], actions[t] = self.obs, action
            env_action = action
            if self.is_box:  # sample unclipped (log-probs), act clipped (SB3 does the same)
                env_action = clip(action, self.action_space.low, self.action_space.high)
            raw_obs, reward, term, trunc, info = self.envs.step(env_action)
            done = term | trunc
            self.episode_return += reward
            self.episode_length += 1
            rewards[t] = self.normalizer.reward(reward, done)
            terminated[t], truncated[t] = term, trunc
            self.obs = self.normalizer.observation(raw_obs, update=True)
            next_obs[t] = self.obs
            for i in np.flatnonzero(done):
                final = np.asarray(info["final_obs"][i], np.float32)[None]
                next_obs[t, i] = self.normalizer.observation(final)[0]
                returns.append(float(self.episode_return[i]))
                lengths.append(int(self.episode_length[i]))
                self.episode_return[i], self.episode_length[i] = 0.0, 0
        return Batch(obs, actions, rewards, next_obs, terminated, truncated, returns, lengths)

    def close(self) -> None:
        self.envs.close()


def gae_advantages(rewards, values, next_values, terminated, truncated, gamma, lam):
    """Generalised advantage estimation over [T, n_envs] arrays.

        δ_t = r_t + γ·V(s_{t+1})·(1 − terminated_t) − V(s_t)
        A_t = δ_t + γλ·(1 − done_t)·A_{t+1},     done_t = terminated_t or truncated_t

    ``next_values[t]`` is V of the true next state (the final observation when the
    episode ended), so a time-limit truncation bootstraps V(s_final) while a true
    termination bootstraps 0; either way the advantage trace is cut at the episode end.
    The last step of the batch bootstraps from V(s_T) like any other non-final step.

    Everything is computed in float64: the values arrive as float32 (the value network's
    output), and NumPy 2 keeps ``γ * float32_array`` in float32 (NEP 50), which would
    round γ·V(s') to float32 (an absolute error of about 4e-6 at V ≈ 100) before it meets
    the float64 rewards.

    Returns float64 (advantages, returns) with returns = advantages + values (the value
    targets).
    """
    rewards = np.asarray(rewards, np.float64)
    values = np.asarray(values, np.float64)
    next_values = np.asarray(next_values, np.float64)
    not_terminal = 1.0 - np.asarray(terminated, np.float64)
    continues = 1.0 - (np.asarray(terminated) | np.asarray(truncated)).astype(np.float64)
    deltas = rewards + gamma * next_values * not_terminal - values
    advantages = np.zeros_like(deltas)
    running = np.zeros(deltas.shape[1:])
    for t in reversed(range(len(deltas))):
        running = deltas[t] + gamma * lam * continues[t] * running
        advantages[t] = running
    return advantages, advantages + values
