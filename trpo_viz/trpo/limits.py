"""What one run may ask of a shared server: batch, network and timestep limits.

Free of TensorFlow, so that the CLI and the sweep planner refuse a request before they
import it. :mod:`trpo_viz.trpo.live` re-exports these names.

The exact Fisher (``config.exact_fisher``, :mod:`trpo_viz.trpo.fisher`) costs every
update min(m, n)·n float64 numbers and O(min(m, n)³) for its solve and eigenvalues,
n the policy's parameters and m the rows of its per-sample Jacobian (FVP states times
the distribution's components): :func:`exact_fisher_size` computes both without
TensorFlow, from the task's spaces.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

from trpo_viz.trpo.config import TRPOConfig

MAX_BATCH = 8192  # transitions per update (n_envs · n_steps)
MAX_HIDDEN = 256  # units per hidden layer
MAX_LAYERS = 3
MAX_TIMESTEPS = 2_000_000


class RunLimitError(ValueError):
    """The request would exceed what one session or the server may use."""


def check_limits(config: TRPOConfig) -> None:
    """Refuse configurations that would let one session starve the others."""
    config.validate()
    if config.batch_size > MAX_BATCH:
        raise RunLimitError(f"batch size {config.batch_size} exceeds the limit of {MAX_BATCH}")
    if len(config.hidden_sizes) > MAX_LAYERS or max(config.hidden_sizes) > MAX_HIDDEN:
        raise RunLimitError(f"networks are limited to {MAX_LAYERS} layers of {MAX_HIDDEN} units")
    if config.total_timesteps > MAX_TIMESTEPS:
        raise RunLimitError(f"total timesteps are limited to {MAX_TIMESTEPS:,}")


# The exact Fisher on a shared server: F's eigenvalues cost O(d³), d = min(m, n) (about
# 1.7 s for d = 2,000 here, so ~14 s for 4,096, every update), and F holds d·n numbers.
MAX_EXACT_FISHER_DIM = 4_096


@dataclass(frozen=True)
class ExactFisherSize:
    """How large the exact Fisher of a run is: n parameters, m Jacobian rows per update."""

    parameters: int  # n: the policy's parameters
    rows: int  # m: FVP states × the distribution's components (+ a Gaussian's log σ rows)

    @property
    def dim(self) -> int:
        """min(m, n): the order of the matrix that is solved and decomposed."""
        return min(self.rows, self.parameters)

    @property
    def bytes(self) -> int:
        """float64 bytes of F (n × n) or of its factor (m × n), whichever is kept."""
        return 8 * self.dim * self.parameters


@functools.lru_cache(maxsize=32)
def task_spaces(env_id: str) -> tuple[int, str, int] | None:
    """(observation size, "discrete" or "box", actions or action size) of a gymnasium task,
    read from a freshly made environment (closed at once); None if it cannot be made."""
    try:
        import gymnasium as gym

        env = gym.make(env_id)
    except Exception:  # an unknown id, a missing dependency (MuJoCo): no answer
        return None
    try:
        obs = int(math.prod(env.observation_space.shape))
        space = env.action_space
        if isinstance(space, gym.spaces.Discrete):
            return obs, "discrete", int(space.n)
        if isinstance(space, gym.spaces.Box):
            return obs, "box", int(math.prod(space.shape))
        return None
    finally:
        env.close()


def exact_fisher_size(config: TRPOConfig) -> ExactFisherSize | None:
    """The policy's parameter count and the Fisher's Jacobian rows for ``config`` (None
    when the task's spaces are unknown here). Mirrors :func:`trpo_viz.trpo.policy.make_policy`
    (an MLP [obs, *hidden, out]; a Gaussian adds one log σ per action) and
    :mod:`trpo_viz.trpo.fisher` (k − 1 rows per state for k logits; A per state for an
    A-dimensional Gaussian's mean, plus A for its state-independent log σ)."""
    spaces = task_spaces(config.env_id)
    if spaces is None:
        return None
    obs, kind, actions = spaces
    sizes = [obs, *map(int, config.hidden_sizes), actions]
    parameters = sum(a * b + b for a, b in zip(sizes, sizes[1:], strict=False))
    states = config.batch_size
    if config.fvp_subsample < 1.0:
        states = max(1, int(round(config.fvp_subsample * states)))
    if kind == "discrete":
        rows = states * (actions - 1)
    else:
        parameters += actions  # log σ
        rows = states * actions + actions
    return ExactFisherSize(parameters, rows)


def check_exact_fisher(config: TRPOConfig) -> None:
    """Refuse an exact Fisher that the trainer would skip or that costs too much per update.

    The trainer itself skips it above ``config.exact_fisher_max_params`` (each record then
    says "too_large"); a page refuses that up front, and anything whose d = min(m, n)
    exceeds :data:`MAX_EXACT_FISHER_DIM`. A task whose spaces are unknown here passes:
    the trainer checks the real count when the run starts.
    """
    if not config.exact_fisher:
        return
    size = exact_fisher_size(config)
    if size is None:
        return
    if size.parameters > config.exact_fisher_max_params:
        raise RunLimitError(
            f"exact_fisher needs a policy of at most {config.exact_fisher_max_params:,} "
            f"parameters (above, the trainer skips it); this one has {size.parameters:,}: "
            "choose smaller hidden sizes, or turn it off"
        )
    if size.dim > MAX_EXACT_FISHER_DIM:
        raise RunLimitError(
            f"exact_fisher needs a {size.dim:,} × {size.dim:,} matrix solved and decomposed "
            f"every update ({size.parameters:,} parameters, {size.rows:,} Jacobian rows, "
            f"{size.bytes / 2**20:,.0f} MiB); at most {MAX_EXACT_FISHER_DIM:,} × "
            f"{MAX_EXACT_FISHER_DIM:,} is allowed: fewer steps per update or smaller hidden "
            "sizes, or turn it off"
        )
