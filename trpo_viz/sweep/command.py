"""The ``sweep`` subcommand: a grid of TRPO settings × seeds on Ray, summarised.

    python -m trpo_viz sweep --env CartPole-v1 --steps 50000 \\
        --grid max_kl=0.001,0.01,0.05 --seeds 3 [--address HOST:PORT] [--json]

``add_sweep_parser(subparsers)`` registers it (cheaply: no Ray, no TensorFlow);
``run_sweep(args)`` runs it and returns the exit status: 0 when every trial finished,
1 when some failed, 130 when Ctrl-C cancelled the rest, 2 (with one ``error:`` line on
stderr, before anything starts) for a bad grid, task, seed count, setting or address.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import sys
import threading
from pathlib import Path

from trpo_viz.sweep.grid import MAX_SEEDS, MAX_TRIALS

EXAMPLE = "--grid max_kl=0.001,0.01,0.05 --grid cg_damping=0.01,0.1"


class SweepUsageError(ValueError):
    """Bad ``sweep`` input: printed as ``error: <message>``, exit status 2."""


def add_sweep_parser(subparsers):
    parser = subparsers.add_parser(
        "sweep", help="run a grid of TRPO settings over several seeds on Ray",
        description=("Run every setting of a grid over several seeds (trials) as Ray tasks: "
                     "a local Ray instance by default, a cluster with --address. Each trial "
                     "is stored as a run (python -m trpo_viz runs list); the summary gives, "
                     "per setting, the final return's interquartile mean with a 95%% "
                     f"stratified-bootstrap interval. At most {MAX_TRIALS} trials."))
    parser.add_argument("--env", default="CartPole-v1", help="gymnasium id (%(default)s)")
    parser.add_argument("--steps", type=int, default=None,
                        help="environment steps per trial (default: the task's tuned value)")
    parser.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2,…",
                        help="values of one key; repeat for more keys (keys: max_kl, "
                             "cg_max_steps, cg_damping, batch_size; variant when TRPO "
                             f"variants exist), e.g. {EXAMPLE}")
    parser.add_argument("--seeds", type=int, default=3,
                        help=f"seeds per setting, 1–{MAX_SEEDS} (%(default)s)")
    parser.add_argument("--first-seed", type=int, default=0, help="seeds are first, first+1, …")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        dest="fixed", help="a setting for every trial, e.g. --set n_steps=256 "
                                           "--set hidden_sizes=64x64")
    parser.add_argument("--address", default=None, metavar="HOST:PORT",
                        help="a Ray cluster (ray start --head …); default: a local Ray instance")
    parser.add_argument("--workers", type=int, default=None,
                        help="trials at once (default: the CPU count; with --address, the "
                             "cluster's CPUs)")
    parser.add_argument("--sweep-id", default=None,
                        help="continue this sweep: its finished trials are skipped")
    parser.add_argument("--db", default=None, help="run store file (default: "
                        "$TRPO_VIZ_HOME/runs.sqlite3, else ~/.trpo-viz/runs.sqlite3)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return parser


def spec_from_args(args):
    """The checked plan (GridError for anything that cannot run)."""
    from trpo_viz.sweep.grid import build_spec, parse_grid, parse_overrides

    return build_spec(args.env, args.steps, parse_grid(args.grid), args.seeds,
                      args.first_seed, parse_overrides(args.fixed))


def run_sweep(args) -> int:
    """Run the sweep the arguments describe; see the module docstring for exit statuses."""
    try:
        return _run(args)
    except SweepUsageError as error:
        print(f"error: {' '.join(str(error).split())}", file=sys.stderr)
        return 2


def _run(args) -> int:
    from trpo_viz.runs.schema import StoreError
    from trpo_viz.sweep.engine import EngineError, check_address
    from trpo_viz.sweep.grid import GridError
    from trpo_viz.sweep.storage import check_sweep_id

    try:
        if args.workers is not None and args.workers < 1:
            raise GridError(f"--workers must be at least 1, got {args.workers}")
        check_address(args.address)  # ValueError for a malformed address
        if args.sweep_id is not None:
            check_sweep_id(args.sweep_id)
        spec = spec_from_args(args)
        db_path = Path(args.db) if args.db else _default_db()
    except ValueError as error:  # GridError, a bad address: nothing has started
        raise SweepUsageError(str(error)) from None
    try:
        return _execute(args, spec, db_path)
    except (GridError, EngineError, StoreError) as error:  # raised before any trial starts
        raise SweepUsageError(str(error)) from None


def _default_db() -> Path:
    from trpo_viz.runs.store import default_db_path

    return default_db_path()


def _execute(args, spec, db_path: Path) -> int:
    from tqdm import tqdm

    from trpo_viz.runs.store import RunStore
    from trpo_viz.sweep import runner
    from trpo_viz.sweep.results import load_sweep

    trials = len(spec.trials())
    seen: dict[int, int] = {}
    bars: list = []  # the progress bar, once Ray is up and the trials are stored

    def on_event(event) -> None:
        if event.kind == "update" and event.total_timesteps is not None and bars:
            bars[0].update(event.total_timesteps - seen.get(event.index, 0))
            seen[event.index] = event.total_timesteps
        elif event.kind == "end" and event.status != "finished" and not args.no_progress:
            tqdm.write(f"trial {event.index} ({event.run_id}): {event.status}"
                       + (f": {event.extra.get('error')}" if event.extra.get("error") else ""),
                       file=sys.stderr)

    def on_ready(sweep_id, info, planned) -> None:
        if args.no_progress:
            return
        skipped = sum(p.completed for p in planned)
        tqdm.write(f"sweep {sweep_id}: {trials} trials ({skipped} finished before) on Ray "
                   f"at {info.address}, {info.nodes} node(s), {info.cpus:g} CPUs",
                   file=sys.stderr)
        bars.append(tqdm(total=trials * spec.total_timesteps, unit="step", file=sys.stderr,
                         desc="sweep", initial=skipped * spec.total_timesteps))

    cancel = threading.Event()
    try:
        # Ray prints its own notices (a worker died, …) to stdout: keep stdout for the
        # report (the --json object) alone.
        with _ctrl_c_cancels(cancel), contextlib.redirect_stdout(sys.stderr):
            run = runner.execute(spec, db_path, sweep_id=args.sweep_id, address=args.address,
                                 workers=args.workers, cancel=cancel, on_event=on_event,
                                 on_ready=on_ready)
    finally:
        for bar in bars:
            bar.close()
    with RunStore(db_path, readonly=True) as store:
        results = load_sweep(store, run.sweep_id)
    report = sweep_report(run, results)
    if args.json:
        print(json.dumps(report, allow_nan=False))
    else:
        print(format_report(report))
    if run.cancelled:
        return 130
    return 1 if any(o.status == "failed" for o in run.outcomes) else 0


@contextlib.contextmanager
def _ctrl_c_cancels(cancel: threading.Event):
    """While the sweep runs, the first Ctrl-C sets ``cancel``; a second one interrupts.

    Left to Python's default handler, the KeyboardInterrupt is raised wherever the driver
    happens to be, and Ray's own calls can absorb it (a run of this CLI once ignored
    Ctrl-C and finished every trial with exit 0). The engine polls ``cancel`` every
    ``POLL_S``, so setting it is enough. A SIGINT that the caller ignores (``nohup``, a
    background job) stays ignored.
    """
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler):
        yield
        return

    def on_sigint(signum, frame) -> None:
        if cancel.is_set():
            raise KeyboardInterrupt  # a second Ctrl-C: stop waiting for the trials
        cancel.set()
        os.write(2, b"\ncancelling the sweep: stopping its trials "
                    b"(Ctrl-C again to stop waiting)\n")

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _number(value):
    return None if value is None or not math.isfinite(value) else value


def sweep_report(run, results) -> dict:
    """The ``--json`` object: engine, trials of this run, summary per setting."""
    finals = {t.run_id: t.final_mean_return for t in results.trials}
    trials = [{
        "setting": o.setting, "seed": o.seed, "run_id": o.run_id, "status": o.status,
        "final_mean_return": _number(finals.get(o.run_id)),
        "wall_s": None if o.wall_s is None else round(o.wall_s, 3),
        "error": o.error, "skipped": o.skipped,
    } for o in run.outcomes]
    summary = [{key: (_number(value) if isinstance(value, float) else value)
                for key, value in s.to_dict().items()} for s in results.summary]
    return {"sweep_id": run.sweep_id, "env": results.env_id, "engine": run.engine.to_dict(),
            "cancelled": run.cancelled, "trials": trials, "summary": summary}


def format_report(report: dict) -> str:
    def show(value, spec=".1f"):
        return "—" if value is None else format(value, spec)

    lines = [f"sweep {report['sweep_id']} on {report['env']} · Ray at "
             f"{report['engine']['address']} ({report['engine']['nodes']} node(s))", ""]
    header = f"{'setting':<36} {'seeds':>5} {'IQM':>8} {'95% CI':>19} {'median':>8} " \
             f"{'mean':>8} {'wall/trial':>10}"
    lines += [header, "-" * len(header)]
    for s in report["summary"]:
        ci = "—" if s["ci_low"] is None else f"[{show(s['ci_low'])}, {show(s['ci_high'])}]"
        wall = "—" if s["wall_s_mean"] is None else f"{s['wall_s_mean']:.1f} s"
        lines.append(f"{s['label'][:36]:<36} {s['finished']:>2}/{s['seeds']:<2} "
                     f"{show(s['iqm']):>8} {ci:>19} {show(s['median']):>8} "
                     f"{show(s['mean']):>8} {wall:>10}")
    failed = [t for t in report["trials"] if t["status"] != "finished"]
    for t in failed:
        lines.append(f"trial {t['run_id']} (seed {t['seed']}): {t['status']}"
                     + (f": {t['error']}" if t["error"] else ""))
    lines.append("")
    lines.append("Final return: mean return of the episodes in each trial's last 10% of "
                 "updates; IQM and interval over the finished seeds (no interval from one).")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """``python -m trpo_viz.sweep.command …``: the subcommand on its own (for tests)."""
    import argparse

    class Parser(argparse.ArgumentParser):
        def error(self, message):
            raise SweepUsageError(message)

    parser = Parser(prog="python -m trpo_viz")
    add_sweep_parser(parser.add_subparsers(dest="command", required=True,
                                           parser_class=Parser))
    try:
        args = parser.parse_args(["sweep", *(sys.argv[1:] if argv is None else argv)])
    except SweepUsageError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return run_sweep(args)


if __name__ == "__main__":
    sys.exit(main())
