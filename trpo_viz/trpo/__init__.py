"""TRPO engine: TensorFlow 2 + gymnasium, headless, with a full record of every update."""

from trpo_viz.trpo.config import TRPOConfig, available_envs, default_config
from trpo_viz.trpo.record import LineSearchCandidate, UpdateRecord
from trpo_viz.trpo.trainer import TRPOTrainer

__all__ = [
    "LineSearchCandidate",
    "TRPOConfig",
    "TRPOTrainer",
    "UpdateRecord",
    "available_envs",
    "default_config",
]
