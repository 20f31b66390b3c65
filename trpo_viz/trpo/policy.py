"""Policies and the value network: hand-written MLPs over plain ``tf.Variable``s.

Every network is a ``tf.Module`` whose parameters are a flat, ordered list
``params`` ([W0, b0, W1, b1, ..., (log_std)]). The forward passes are written as
functions of that list, so the same code evaluates

* the live variables (for gradients and Fisher-vector products),
* a stack of G candidate parameter vectors at once (leading batch axis on every
  parameter: line-search candidates and trust-region grids in one call), and
* numpy copies of the weights (for acting: no TensorFlow call per env step).

The forward passes, distributions and KLs are dtype-generic: given float64 parameters and
observations they compute in float64 (the trainer's optional float64 Fisher-vector
products evaluate the KL on float64 copies of the policy's float32 variables).

Distributions are described by one "distribution parameter" tensor per state:
logits [.., A] for the categorical policy, [mean, log_std] [.., 2A] for the
diagonal Gaussian, so π_old is held fixed by keeping that tensor.
"""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

from trpo_viz.hvp import flatten, unflatten
from trpo_viz.trpo.config import LOG_STD_MAX, LOG_STD_MIN

ACTIVATIONS_TF = {"tanh": tf.tanh, "relu": tf.nn.relu}
ACTIVATIONS_NP = {"tanh": np.tanh, "relu": lambda x: np.maximum(x, 0.0)}


def orthogonal_init(rng: np.random.Generator, n_in: int, n_out: int, gain: float) -> np.ndarray:
    """Orthogonal weight matrix [n_in, n_out] scaled by ``gain`` (as in SB3 / CleanRL)."""
    a = rng.standard_normal((max(n_in, n_out), min(n_in, n_out)))
    q, r = np.linalg.qr(a)
    q *= np.sign(np.diag(r))  # make the decomposition unique
    q = q if n_in >= n_out else q.T
    return (gain * q[:n_in, :n_out]).astype(np.float32)


def mlp_forward(params, x, activation: str):
    """MLP on x [B, d] with params [W0, b0, ...]; each parameter may carry leading batch axes.

    With W of shape [G, i, o] the output is [G, B, o]: ``tf.matmul`` broadcasts batch axes.
    """
    act = ACTIVATIONS_TF[activation]
    h = x
    n_layers = len(params) // 2
    for i in range(n_layers):
        w, b = params[2 * i], params[2 * i + 1]
        h = tf.matmul(h, w) + b[..., None, :]
        if i < n_layers - 1:
            h = act(h)
    return h


def mlp_forward_numpy(params: list[np.ndarray], x: np.ndarray, activation: str) -> np.ndarray:
    act = ACTIVATIONS_NP[activation]
    h = x
    n_layers = len(params) // 2
    for i in range(n_layers):
        h = h @ params[2 * i] + params[2 * i + 1]
        if i < n_layers - 1:
            h = act(h)
    return h


class MLP(tf.Module):
    """Fully connected network; hidden layers gain √2, output layer ``output_gain``, zero biases."""

    def __init__(self, sizes, activation, output_gain, rng, name=None):
        super().__init__(name=name)
        self.activation = activation
        self.params = []
        n_layers = len(sizes) - 1
        for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
            gain = output_gain if i == n_layers - 1 else math.sqrt(2.0)
            self.params.append(tf.Variable(orthogonal_init(rng, n_in, n_out, gain), name=f"w{i}"))
            self.params.append(tf.Variable(tf.zeros([n_out]), name=f"b{i}"))

    def __call__(self, x):
        return mlp_forward(self.params, x, self.activation)


# --- distributions over a "distribution parameter" tensor ------------------------------------


class Categorical:
    """π(a|s) = softmax(logits)_a; distribution parameters are the logits."""

    @staticmethod
    def log_prob(logits, actions):
        log_p = tf.nn.log_softmax(logits)
        return tf.reduce_sum(
            tf.one_hot(actions, tf.shape(logits)[-1], dtype=logits.dtype) * log_p, axis=-1
        )

    @staticmethod
    def kl(old_logits, new_logits):
        """KL(π_old ‖ π_new) per state."""
        old_log_p = tf.nn.log_softmax(old_logits)
        new_log_p = tf.nn.log_softmax(new_logits)
        return tf.reduce_sum(tf.exp(old_log_p) * (old_log_p - new_log_p), axis=-1)

    @staticmethod
    def entropy(logits):
        log_p = tf.nn.log_softmax(logits)
        return -tf.reduce_sum(tf.exp(log_p) * log_p, axis=-1)

    @staticmethod
    def whiten(old_logits, new_logits):
        """u [.., k−1] with Jᵀ M J = (∂u/∂θ)ᵀ(∂u/∂θ), M = diag(p) − ppᵀ, p = softmax(old_logits).

        M is the KL's Hessian in logit space at z = z_old (the softmax's Fisher metric). It
        has rank k − 1 (M·1 = 0: adding a constant to every logit changes nothing), so u
        has k − 1 components: in the reduced logits z'_i = z_i − z_k (i < k) the metric is
        M' = diag(p') − p'p'ᵀ, p' = p_{1…k−1}, and M' = (S D)ᵀ(S D) with D = diag(√p'),
        S = I − c √p'√p'ᵀ, c = 1/(1 + √p_k) (S² = I − √p'√p'ᵀ since ‖√p'‖² = 1 − p_k). So

            u_i = √p_i (z'_i − c · p'ᵀz'),   i = 1 … k−1,

        with p (and c) held at π_old. For k = 2: u = √(p_1 p_2)·(z_1 − z_2).
        """
        p = tf.nn.softmax(old_logits)
        reduced = new_logits[..., :-1] - new_logits[..., -1:]  # z'
        p_rest, p_last = p[..., :-1], p[..., -1:]
        c = 1.0 / (1.0 + tf.sqrt(p_last))
        centred = reduced - c * tf.reduce_sum(p_rest * reduced, axis=-1, keepdims=True)
        return tf.sqrt(p_rest) * centred


class DiagGaussian:
    """π(a|s) = N(mean(s), diag(exp(log_std))²); distribution parameters are [mean, log_std]."""

    @staticmethod
    def split(params):
        mean, log_std = tf.split(params, 2, axis=-1)
        return mean, log_std

    @staticmethod
    def log_prob(params, actions):
        mean, log_std = DiagGaussian.split(params)
        z = (actions - mean) * tf.exp(-log_std)
        return tf.reduce_sum(-0.5 * tf.square(z) - log_std - 0.5 * math.log(2 * math.pi), -1)

    @staticmethod
    def kl(old_params, new_params):
        """KL(π_old ‖ π_new) per state, summed over action dimensions."""
        old_mean, old_log_std = DiagGaussian.split(old_params)
        new_mean, new_log_std = DiagGaussian.split(new_params)
        old_var, new_var = tf.exp(2 * old_log_std), tf.exp(2 * new_log_std)
        per_dim = (
            new_log_std
            - old_log_std
            + (old_var + tf.square(old_mean - new_mean)) / (2 * new_var)
            - 0.5
        )
        return tf.reduce_sum(per_dim, axis=-1)

    @staticmethod
    def entropy(params):
        _, log_std = DiagGaussian.split(params)
        return tf.reduce_sum(log_std + 0.5 * math.log(2 * math.pi * math.e), axis=-1)

    @staticmethod
    def whiten(old_params, new_params):
        """u = [μ / σ_old, √2 · log σ]: M = diag(σ_old⁻², 2) is the KL's Hessian in (μ, log σ).

        (∂²KL/∂μ² = 1/σ², ∂²KL/∂(log σ)² = 2 and no cross term at π = π_old.)
        """
        _, old_log_std = DiagGaussian.split(old_params)
        mean, log_std = DiagGaussian.split(new_params)
        return tf.concat([mean * tf.exp(-old_log_std), math.sqrt(2.0) * log_std], axis=-1)


# --- policies ---------------------------------------------------------------------------------


class CategoricalPolicy(tf.Module):
    """Softmax policy for ``Discrete`` action spaces: logits = MLP(s)."""

    distribution = Categorical

    def __init__(self, obs_dim, n_actions, hidden_sizes=(64, 64), activation="tanh", rng=None):
        super().__init__(name="categorical_policy")
        rng = rng if rng is not None else np.random.default_rng(0)
        self.activation = activation
        self.mlp = MLP([obs_dim, *hidden_sizes, n_actions], activation, 0.01, rng)
        self.params = list(self.mlp.params)

    def distribution_params(self, params, obs):
        return mlp_forward(params, obs, self.activation)

    def __call__(self, obs):
        return self.distribution_params(self.params, obs)

    def act_numpy(self, params, obs, rng, deterministic=False):
        logits = mlp_forward_numpy(params, obs, self.activation)
        if deterministic:
            return np.argmax(logits, axis=-1)
        gumbel = -np.log(-np.log(rng.uniform(size=logits.shape)))  # Gumbel-max sampling
        return np.argmax(logits + gumbel, axis=-1)


class GaussianPolicy(tf.Module):
    """Diagonal Gaussian for ``Box`` action spaces: mean = MLP(s), state-independent log-std."""

    distribution = DiagGaussian

    def __init__(
        self,
        obs_dim,
        action_dim,
        hidden_sizes=(64, 64),
        activation="tanh",
        log_std_init=0.0,
        rng=None,
    ):
        super().__init__(name="gaussian_policy")
        rng = rng if rng is not None else np.random.default_rng(0)
        self.activation = activation
        self.mlp = MLP([obs_dim, *hidden_sizes, action_dim], activation, 0.01, rng)
        self.log_std = tf.Variable(tf.fill([action_dim], float(log_std_init)), name="log_std")
        self.params = [*self.mlp.params, self.log_std]

    def distribution_params(self, params, obs):
        """[mean, log σ] with log σ = clip(log_std, LOG_STD_MIN, LOG_STD_MAX).

        The bounds keep σ² = exp(2 log σ) a normal float32 (≥ e⁻⁴⁰ ≈ 4e-18) and 1/σ²
        finite, so the log-probability, the KL and its Hessian never see 0 or Inf. Inside
        them (always, in practice) the clip is the identity and its gradient is 1; a
        log_std pushed beyond a bound gets no gradient (and no Fisher component) there.
        """
        mean = mlp_forward(params[:-1], obs, self.activation)
        log_std = tf.clip_by_value(params[-1], LOG_STD_MIN, LOG_STD_MAX)
        log_std = log_std[..., None, :] + tf.zeros_like(mean)
        return tf.concat([mean, log_std], axis=-1)

    def __call__(self, obs):
        return self.distribution_params(self.params, obs)

    def act_numpy(self, params, obs, rng, deterministic=False):
        mean = mlp_forward_numpy(params[:-1], obs, self.activation)
        if deterministic:
            return mean
        std = np.exp(np.clip(params[-1], LOG_STD_MIN, LOG_STD_MAX))
        return mean + std * rng.standard_normal(mean.shape).astype(np.float32)


class ValueFunction(tf.Module):
    """V(s) = MLP(s), a scalar per state."""

    def __init__(self, obs_dim, hidden_sizes=(64, 64), activation="tanh", rng=None):
        super().__init__(name="value_function")
        rng = rng if rng is not None else np.random.default_rng(0)
        self.mlp = MLP([obs_dim, *hidden_sizes, 1], activation, 1.0, rng)
        self.params = list(self.mlp.params)

    def __call__(self, obs):
        return tf.squeeze(self.mlp(obs), axis=-1)


def make_policy(observation_space, action_space, config, rng):
    """The policy for a gymnasium action space (``Discrete`` or ``Box``)."""
    import gymnasium as gym

    obs_dim = int(np.prod(observation_space.shape))
    if isinstance(action_space, gym.spaces.Discrete):
        return CategoricalPolicy(
            obs_dim, int(action_space.n), config.hidden_sizes, config.activation, rng
        )
    if isinstance(action_space, gym.spaces.Box):
        return GaussianPolicy(
            obs_dim,
            int(np.prod(action_space.shape)),
            config.hidden_sizes,
            config.activation,
            config.log_std_init,
            rng,
        )
    raise ValueError(f"unsupported action space {action_space}")


def get_flat(variables) -> np.ndarray:
    return flatten([v for v in variables]).numpy()


def set_flat(variables, theta: np.ndarray) -> None:
    """Assign the flat vector theta to the variables (cast to their dtype)."""
    flat = tf.constant(theta, variables[0].dtype)
    for var, value in zip(variables, unflatten(flat, variables), strict=True):
        var.assign(value)


def unflatten_batch(thetas, like):
    """Split [G, n] parameter vectors into per-variable tensors [G, *shape] (for G-way eval)."""
    sizes = [int(np.prod(v.shape)) for v in like]
    parts = tf.split(thetas, sizes, axis=-1)
    return [
        tf.reshape(p, tf.concat([tf.shape(thetas)[:-1], v.shape], 0))
        for p, v in zip(parts, like, strict=True)
    ]
