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
from trpo_viz.trpo.variants import VARIANTS


class TrainUsageError(ValueError):
    """A bad ``train`` argument; the CLI prints ``error: <message>`` and exits with status 2."""


# (flag, config field, type, help); None defaults mean "the task's tuned value".
_HYPERPARAMETERS = [
    ("--max-kl", "max_kl", float, "trust-region radius δ on the mean KL (default: the task's; "
     "on MuJoCo tasks the zoo's target_kl times the action dimension d, as sb3-contrib's "
     "KL is a mean over dimensions)"),
    ("--n-envs", "n_envs", int, "parallel environments"),
    ("--n-steps", "n_steps", int, "steps per environment per update"),
    ("--gamma", "gamma", float, "discount γ"),
    ("--gae-lambda", "gae_lambda", float, "GAE λ"),
    ("--cg-max-steps", "cg_max_steps", int, "conjugate-gradient iterations"),
    ("--cg-damping", "cg_damping", float,
     "damping λ added to the Fisher (MuJoCo: the zoo's times d, like --max-kl)"),
    ("--cg-rtol", "cg_rtol", float, "CG stops when its recursive ‖r‖ ≤ this·‖g‖"),
    ("--line-search-shrink", "line_search_shrink", float, "backtracking factor"),
    ("--max-backtracks", "max_backtracks", int, "line-search shrinks allowed"),
    ("--fvp-subsample", "fvp_subsample", float, "fraction of the batch for F·v"),
    ("--value-lr", "value_lr", float, "value-function Adam learning rate"),
    ("--value-epochs", "value_epochs", int, "value-function epochs per update"),
    ("--value-batch-size", "value_batch_size", int, "value-function minibatch size"),
    ("--log-std-init", "log_std_init", float, "initial log-std (Box actions)"),
    ("--pg-lr", "pg_lr", float, "vanilla-pg's learning rate (only --variant vanilla-pg)"),
    ("--exact-fisher-max-params", "exact_fisher_max_params", int,
     "largest policy (parameters) for which --exact-fisher builds F"),
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
        "--variant", choices=VARIANTS, default=None,
        help="ablation: trpo (default); npg (natural step scaled to δ, no line search); "
        "no-kl-check (line search on the surrogate only); gradient (g scaled to the same "
        "quadratic KL, with the line search); vanilla-pg (--pg-lr · g, no trust region)",
    )
    parser.add_argument(
        "--fvp-dtype",
        choices=FVP_DTYPES,
        default=None,
        help="precision of the Fisher-vector products and CG (float32)",
    )
    parser.add_argument(
        "--exact-fisher", action=argparse.BooleanOptionalAction, default=None,
        help="every update, build the Fisher in float64 and compare CG with the exact natural "
        "gradient: adds cg_exact_errors, cg_exact_cosines, fisher_eigenvalues, … to --metrics "
        "(about a second per update for a 64×64 CartPole policy)",
    )
    parser.add_argument("--normalize-obs", action=argparse.BooleanOptionalAction, default=None)
    parser.add_argument("--normalize-reward", action=argparse.BooleanOptionalAction, default=None)
    parser.add_argument("--metrics", default=None, help="write one JSON line per update here")
    parser.add_argument("--save", default=None, help="save the trained run to this directory")
    parser.add_argument(
        "--name", default=None,
        help="name of the stored run (default: 'TASK seed N'); every run is stored in the run "
        "store ($TRPO_VIZ_HOME, else ~/.trpo-viz) and opens in the browser at /trpo?run=ID",
    )
    parser.add_argument(
        "--logdir", default=None,
        help="write TensorBoard scalars here (view with: tensorboard --logdir DIR)",
    )
    parser.add_argument(
        "--no-pictures", action="store_true",
        help="store no trust-region slices or rollout GIFs (faster; the browser shows less)",
    )
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
    for name in (
        "activation", "hvp_mode", "fvp_dtype", "normalize_obs", "normalize_reward", "exact_fisher",
        "variant",
    ):
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


def _check_name(name: str | None) -> None:
    from trpo_viz.runs.store import StoreError, clean_name

    if name is not None:
        try:
            clean_name(name)
        except StoreError as error:
            raise TrainUsageError(f"--name: {error}") from None


def run_train(args) -> int:
    """Train a stored run, write metrics, print the evaluation JSON line; returns the status.

    The run is created in the run store first (so a browser can watch it at
    /trpo?run=ID while it trains), trained by the same loop the server's workers run,
    and its final line names it: ``"run_id"``.
    """
    config = config_from_args(args)
    _check_name(args.name)
    from tqdm import tqdm

    from trpo_viz.runs.store import RunStore, StoreError
    from trpo_viz.runs.worker import Heartbeat, LoopSettings, train_loop
    from trpo_viz.trpo.trainer import set_num_threads

    if args.threads is not None:
        set_num_threads(args.threads)
    metrics = _open_metrics(args.metrics) if args.metrics else None
    if args.save and Path(args.save).exists() and not Path(args.save).is_dir():
        raise TrainUsageError(f"--save {args.save}: exists and is not a directory")
    board = _summary_writer(args.logdir) if args.logdir else None
    try:
        store = RunStore()
    except StoreError as error:
        raise TrainUsageError(str(error)) from None
    run_id = store.create_run(config, name=args.name, source="cli", status="starting",
                              desired="run")
    print(f"run {run_id}: open /trpo?run={run_id} in the app to watch it", file=sys.stderr)
    start = time.perf_counter()
    outcome: dict = {}
    heartbeat = Heartbeat(store.path, run_id)
    heartbeat.start()
    bar = tqdm(total=config.total_timesteps, unit="step", file=sys.stderr,
               disable=args.no_progress)

    def on_update(record) -> None:
        bar.update(config.batch_size)
        if record.mean_return is not None:
            bar.set_postfix(ret=f"{record.mean_return:.1f}", kl=f"{record.kl:.4f}")
        if metrics is not None:
            metrics.write(json.dumps(record.metrics()) + "\n")
            metrics.flush()
        if board is not None:
            _write_scalars(board, record)

    def on_finish(trainer) -> None:
        outcome["train_wall_s"] = time.perf_counter() - start
        outcome["returns"] = trainer.evaluate(args.eval_episodes) if args.eval_episodes else []
        outcome["timesteps"] = trainer.total_timesteps
        outcome["updates"] = len(trainer.records)
        if args.save:
            trainer.save(args.save)

    pictures = not args.no_pictures
    settings = LoopSettings(idle_timeout=None, paused_grace=None, slices=pictures,
                            rollout_every=10 if pictures else None)
    try:
        status = train_loop(store, run_id, settings, on_update=on_update, on_finish=on_finish)
    finally:
        bar.close()
        heartbeat.stop()
        store.heartbeat(run_id, None)
        store.close()
        if metrics is not None:
            metrics.close()
        if board is not None:
            board.close()
    returns = outcome.get("returns", [])
    result = {
        "env": config.env_id,
        "seed": config.seed,
        "run_id": run_id,
        "status": status,
        "timesteps": outcome.get("timesteps"),
        "updates": outcome.get("updates"),
        "eval_mean_return": sum(returns) / len(returns) if returns else None,
        "eval_returns": returns,
        "train_wall_s": round(outcome.get("train_wall_s", time.perf_counter() - start), 3),
        "wall_s": round(time.perf_counter() - start, 3),
    }
    print(json.dumps(result), flush=True)
    return 0


def _summary_writer(logdir: str):
    """A TensorBoard writer for --logdir; an unwritable folder is a usage error."""
    import tensorflow as tf

    try:
        Path(logdir).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise TrainUsageError(f"--logdir {logdir}: {exc.strerror}") from None
    return tf.summary.create_file_writer(logdir)


# TensorBoard tag → the record's value (None/NaN are skipped).
TENSORBOARD_SCALARS = {
    "return/mean": lambda r: r.mean_return,
    "trust_region/kl": lambda r: r.kl,
    "trust_region/max_kl": lambda r: r.max_kl,
    "surrogate/expected_improvement": lambda r: r.expected_improvement * r.step_fraction,
    "surrogate/actual_improvement": lambda r: r.actual_improvement,
    "cg/final_residual": lambda r: r.cg_residuals[-1] if r.cg_residuals else None,
    "cg/true_residual": lambda r: getattr(r, "cg_true_residual", None),
    "cg/iterations": lambda r: r.cg_iterations,
    "line_search/backtracks": lambda r: r.backtracks,
    "policy/entropy": lambda r: r.entropy,
    "value/explained_variance": lambda r: r.explained_variance,
    "value/loss": lambda r: r.value_loss,
    "exact/cg_error": lambda r: r.cg_exact_errors[-1] if r.cg_exact_errors else None,
    "exact/step_cosine": lambda r: r.exact_step_cosine,
    "exact/improvement": lambda r: r.exact_improvement,
    "fisher/condition_damped": lambda r: r.fisher_condition_damped,
}


def _write_scalars(writer, record) -> None:
    """Scalars as TensorBoard's scalars plugin writes them (``tf.summary.scalar`` itself
    needs the tensorboard package, which stays optional: only viewing needs it)."""
    import math

    import tensorflow as tf
    from tensorflow.core.framework import summary_pb2

    metadata = summary_pb2.SummaryMetadata(
        plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars")
    ).SerializeToString()
    with writer.as_default(step=record.total_timesteps):
        for tag, get in TENSORBOARD_SCALARS.items():
            value = get(record)
            if value is not None and math.isfinite(float(value)):
                tf.summary.write(tag, tf.constant(float(value), tf.float32), metadata=metadata)
    writer.flush()
