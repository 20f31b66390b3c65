"""What one run may ask of a shared server: batch, network and timestep limits.

Free of TensorFlow, so that the CLI and the sweep planner refuse a request before they
import it. :mod:`trpo_viz.trpo.live` re-exports these names.
"""

from __future__ import annotations

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
