"""The ``train`` subcommand: ``python -m trpo_viz train --env CartPole-v1 --steps 100000``.

``add_train_parser(subparsers)`` registers it; ``run_train(args)`` runs it and returns the
exit status, raising :class:`TrainUsageError` (a ``ValueError``) for bad arguments.
Hyperparameters left out take the task's tuned defaults (:func:`default_config`).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from trpo_viz.trpo.config import (
    FVP_DTYPES,
    HVP_MODES,
    TRPOConfig,
    available_envs,
    default_config,
)


class TrainUsageError(ValueError):
    """A bad ``train`` argument; the CLI prints ``error: <message>`` and exits with status 2."""


# (flag, config field, type, help); None defaults mean "the task's tuned value".
_HYPERPARAMETERS = [
    ("--max-kl", "max_kl", float, "trust-region radius δ on the mean KL"),
    ("--n-envs", "n_envs", int, "parallel environments"),
    ("--n-steps", "n_steps", int, "steps per environment per update"),
    ("--gamma", "gamma", float, "discount γ"),
    ("--gae-lambda", "gae_lambda", float, "GAE λ"),
    ("--cg-max-steps", "cg_max_steps", int, "conjugate-gradient iterations"),
    ("--cg-damping", "cg_damping", float, "damping λ added to the Fisher"),
    ("--cg-rtol", "cg_rtol", float, "CG stops when its recursive ‖r‖ ≤ this·‖g‖"),
    ("--line-search-shrink", "line_search_shrink", float, "backtracking factor"),
    ("--max-backtracks", "max_backtracks", int, "line-search shrinks allowed"),
    ("--fvp-subsample", "fvp_subsample", float, "fraction of the batch for F·v"),
    ("--value-lr", "value_lr", float, "value-function Adam learning rate"),
    ("--value-epochs", "value_epochs", int, "value-function epochs per update"),
    ("--value-batch-size", "value_batch_size", int, "value-function minibatch size"),
    ("--log-std-init", "log_std_init", float, "initial log-std (Box actions)"),
]


def add_train_parser(subparsers) -> argparse.ArgumentParser:
    """Add the ``train`` subcommand to an ``argparse`` subparsers object."""
    parser = subparsers.add_parser(
        "train",
        help="train a TRPO policy and report its evaluation return",
        description="Train TRPO on a gymnasium task; one JSON line of results on stdout.",
    )
    parser.add_argument("--env", default="CartPole-v1", help="gymnasium id (%(default)s)")
    parser.add_argument("--steps", type=int, default=None, help="environment steps in total")
    parser.add_argument("--seed", type=int, default=0)
    for flag, _, type_, help_ in _HYPERPARAMETERS:
        parser.add_argument(flag, type=type_, default=None, help=help_)
    parser.add_argument("--hidden", default=None, help="hidden layer sizes, e.g. 64,64")
    parser.add_argument("--activation", choices=("tanh", "relu"), default=None)
    parser.add_argument("--hvp-mode", choices=HVP_MODES, default=None)
    parser.add_argument(
        "--fvp-dtype",
        choices=FVP_DTYPES,
        default=None,
        help="precision of the Fisher-vector products and CG (float32)",
    )
    parser.add_argument("--normalize-obs", action=argparse.BooleanOptionalAction, default=None)
    parser.add_argument("--normalize-reward", action=argparse.BooleanOptionalAction, default=None)
    parser.add_argument("--metrics", default=None, help="write one JSON line per update here")
    parser.add_argument("--save", default=None, help="save the trained run to this directory")
    parser.add_argument("--eval-episodes", type=int, default=20)
    parser.add_argument("--threads", type=int, default=None, help="TensorFlow CPU threads")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return parser


def config_from_args(args) -> TRPOConfig:
    """The task's tuned config with every given flag applied; raises TrainUsageError."""
    import gymnasium as gym

    try:
        gym.spec(args.env)
    except Exception as exc:  # gymnasium raises several error types for unknown ids
        known = ", ".join(available_envs())
        raise TrainUsageError(f"unknown environment {args.env!r} (tuned: {known})") from exc
    overrides = {
        field: getattr(args, flag[2:].replace("-", "_"))
        for flag, field, _, _ in _HYPERPARAMETERS
        if getattr(args, flag[2:].replace("-", "_")) is not None
    }
    for name in ("activation", "hvp_mode", "fvp_dtype", "normalize_obs", "normalize_reward"):
        if getattr(args, name) is not None:
            overrides[name] = getattr(args, name)
    if args.steps is not None:
        overrides["total_timesteps"] = args.steps
    if args.hidden is not None:
        try:
            overrides["hidden_sizes"] = tuple(int(h) for h in args.hidden.split(","))
        except ValueError as exc:
            raise TrainUsageError(f"--hidden must look like 64,64, got {args.hidden!r}") from exc
    if args.eval_episodes < 0:
        raise TrainUsageError(f"--eval-episodes must be non-negative, got {args.eval_episodes}")
    if args.threads is not None and args.threads < 1:
        raise TrainUsageError(f"--threads must be at least 1, got {args.threads}")
    config = default_config(args.env, seed=args.seed, **overrides)
    try:
        config.validate()
    except ValueError as exc:
        raise TrainUsageError(str(exc)) from exc
    return config


def _open_metrics(path: str):
    """The --metrics file, its folder created; an unwritable path is a usage error."""
    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        return open(path, "w")  # noqa: SIM115 - closed in run_train's finally
    except OSError as exc:
        raise TrainUsageError(f"--metrics {path}: {exc.strerror}") from None


def run_train(args) -> int:
    """Train, write metrics, print the evaluation JSON line; returns the exit status."""
    config = config_from_args(args)
    from tqdm import tqdm

    from trpo_viz.trpo.trainer import TRPOTrainer, set_num_threads

    if args.threads is not None:
        set_num_threads(args.threads)
    metrics = _open_metrics(args.metrics) if args.metrics else None
    if args.save and Path(args.save).exists() and not Path(args.save).is_dir():
        raise TrainUsageError(f"--save {args.save}: exists and is not a directory")
    start = time.perf_counter()
    trainer = TRPOTrainer(config)
    try:
        with tqdm(
            total=config.total_timesteps, unit="step", file=sys.stderr, disable=args.no_progress
        ) as bar:
            while not trainer.done:
                record = trainer.step()
                bar.update(config.batch_size)
                if record.mean_return is not None:
                    bar.set_postfix(ret=f"{record.mean_return:.1f}", kl=f"{record.kl:.4f}")
                if metrics is not None:
                    metrics.write(json.dumps(record.metrics()) + "\n")
                    metrics.flush()
        train_wall_s = time.perf_counter() - start
        returns = trainer.evaluate(args.eval_episodes) if args.eval_episodes else []
        if args.save:
            trainer.save(args.save)
    finally:
        trainer.close()
        if metrics is not None:
            metrics.close()
    result = {
        "env": config.env_id,
        "seed": config.seed,
        "timesteps": trainer.total_timesteps,
        "updates": len(trainer.records),
        "eval_mean_return": sum(returns) / len(returns) if returns else None,
        "eval_returns": returns,
        "train_wall_s": round(train_wall_s, 3),
        "wall_s": round(time.perf_counter() - start, 3),
    }
    print(json.dumps(result), flush=True)
    return 0
