"""TRPO engine: TensorFlow 2 + gymnasium, headless, with a full record of every update.

``TRPOTrainer`` is imported on first use (PEP 562), so that the configuration, the records
and the ``train`` command's argument checks load without TensorFlow.
"""

from trpo_viz.trpo.config import TRPOConfig, available_envs, default_config
from trpo_viz.trpo.record import LineSearchCandidate, UpdateRecord

__all__ = [
    "LineSearchCandidate",
    "TRPOConfig",
    "TRPOTrainer",
    "UpdateRecord",
    "available_envs",
    "default_config",
]


def __getattr__(name: str):
    if name == "TRPOTrainer":
        from trpo_viz.trpo.trainer import TRPOTrainer

        return TRPOTrainer
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
