"""Sweep throughput: the same 8-trial CartPole sweep sequentially in one process vs on Ray.

    python benchmarks/bench_sweep.py [--steps 50000] [--workers N] [--json]

The sweep is CartPole-v1 with its tuned defaults, δ ∈ {0.005, 0.01, 0.02, 0.05} × 2 seeds.

* **sequential**: one process runs the 8 trials one after another, TensorFlow with its
  default thread pools (all cores), each trial's records written to a run store, exactly
  as the Ray driver writes them (the same trial generator, called in-process).
* **Ray**: a local Ray instance with ``--workers`` CPUs (default: all), one trial per
  CPU and one TensorFlow thread per trial, through :func:`trpo_viz.sweep.runner.execute`.

Each side runs in a fresh Python process, timed from outside (interpreter, TensorFlow
import, Ray start-up and the sweep: what a user waits for), and timed inside for the
sweep alone. Printed: both wall times and their ratios; Ray's start-up (``ray.init`` of a local
instance); its per-task overhead (100 empty tasks); per trial, the time inside the
worker (first trial of a worker: with its TensorFlow import) against the driver's
submit-to-end time; and each worker's peak memory (ru_maxrss).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

GRID = ["max_kl=0.005,0.01,0.02,0.05"]
SEEDS = 2


def plan(steps: int):
    from trpo_viz.sweep.grid import build_spec, parse_grid

    return build_spec("CartPole-v1", steps, parse_grid(GRID), SEEDS)


def sequential(spec, db: Path) -> dict:
    """Every trial in this process, one after another, records into the store."""
    from trpo_viz.runs.store import RunStore
    from trpo_viz.sweep import storage
    from trpo_viz.sweep.engine import trial_task
    from trpo_viz.trpo.record import UpdateRecord

    start = time.perf_counter()
    walls = []
    with RunStore(db) as store:
        for p in storage.prepare_trials(store, "seqbench", spec):
            for item in trial_task(p.trial.config.to_dict()):
                if item["kind"] == "update":
                    store.append_update(p.run_id, UpdateRecord.from_dict(item["record"]), None,
                                        item.get("checkpoint"))
                elif item["kind"] == "done":
                    walls.append(item["wall_s"])
            store.set_status(p.run_id, "finished")
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {"wall_s": time.perf_counter() - start, "trial_wall_s": walls,
            "max_rss_mib": usage.ru_maxrss / 1024, "cpu_s": usage.ru_utime + usage.ru_stime}


def through_ray(spec, db: Path, workers: int | None) -> dict:
    import ray

    from trpo_viz.sweep import engine, runner

    t0 = time.perf_counter()
    info = engine.connect(None, workers)
    startup = time.perf_counter() - t0

    @ray.remote(num_cpus=1)
    def empty():
        return None

    ray.get([empty.remote() for _ in range(10)])  # warm the worker pool
    t1 = time.perf_counter()
    ray.get([empty.remote() for _ in range(100)])
    task_overhead_ms = (time.perf_counter() - t1) / 100 * 1000

    submitted, ended, pids = {}, {}, {}

    def on_event(event):
        now = time.perf_counter()
        if event.kind == "started":
            pids[event.index] = event.pid
            submitted.setdefault(event.index, now)
        elif event.kind == "end":
            ended[event.index] = now

    t2 = time.perf_counter()
    run = runner.execute(spec, db, sweep_id="raybench", workers=workers, on_event=on_event)
    wall = time.perf_counter() - t2
    engine.shutdown()
    assert all(o.status == "finished" for o in run.outcomes), run.outcomes
    first_of_worker = set()
    seen = set()
    for index in sorted(submitted, key=submitted.get):
        if pids[index] not in seen:
            seen.add(pids[index])
            first_of_worker.add(index)
    trials = [{"index": o.index, "worker_wall_s": o.wall_s, "pid": pids.get(o.index),
               "cold": o.index in first_of_worker, "max_rss_mib": o.max_rss_mib}
              for o in run.outcomes]
    rss, cpu = {}, {}
    for o in run.outcomes:
        rss[o.pid] = max(rss.get(o.pid, 0.0), o.max_rss_mib or 0.0)
        cpu[o.pid] = max(cpu.get(o.pid, 0.0), o.process_cpu_s or 0.0)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {"startup_s": startup, "cpus": info.cpus, "task_overhead_ms": task_overhead_ms,
            "wall_s": wall, "trials": trials, "worker_rss_mib": sorted(rss.values()),
            "worker_cpu_s": sum(cpu.values()),
            "driver_cpu_s": usage.ru_utime + usage.ru_stime}


def _child(mode: str, steps: int, workers: int | None) -> dict:
    """Run one mode in a fresh Python process; its wall time is measured from outside."""
    import subprocess

    command = [sys.executable, __file__, "--mode", mode, "--steps", str(steps)]
    if workers:
        command += ["--workers", str(workers)]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["process_wall_s"] = time.perf_counter() - start
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=50_000, help="steps per trial")
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--mode", choices=("sequential", "ray"), default=None,
                        help=argparse.SUPPRESS)  # one side, in its own process
    args = parser.parse_args(argv)

    if args.mode is not None:
        spec = plan(args.steps)
        with tempfile.TemporaryDirectory() as tmp:
            db = Path(tmp) / "runs.sqlite3"
            result = (sequential(spec, db) if args.mode == "sequential"
                      else through_ray(spec, db, args.workers))
        print(json.dumps(result))
        return 0

    load = os.getloadavg()[0]
    seq = _child("sequential", args.steps, args.workers)
    r = _child("ray", args.steps, args.workers)
    trials = len(r["trials"])
    out = {"trials": trials, "steps_per_trial": args.steps, "cores": os.cpu_count(),
           "load_1min_at_start": load, "sequential": seq, "ray": r,
           "speedup": seq["process_wall_s"] / r["process_wall_s"],
           "speedup_sweep_only": seq["wall_s"] / r["wall_s"]}
    if args.json:
        print(json.dumps(out))
        return 0
    cold = [t["worker_wall_s"] for t in r["trials"] if t["cold"]]
    warm = [t["worker_wall_s"] for t in r["trials"] if not t["cold"]]
    mean = lambda xs: sum(xs) / len(xs) if xs else float("nan")  # noqa: E731
    work = sum(t["worker_wall_s"] for t in r["trials"])
    idle = r["wall_s"] * r["cpus"] - work
    print(f"{trials} CartPole-v1 trials × {args.steps:,} steps, {out['cores']} cores "
          f"(1-min load average {load:.1f} at start)\n")
    print("| | sequential, one process | Ray, local |")
    print("|---|---:|---:|")
    print(f"| whole command (Python, TensorFlow, Ray start-up, sweep) | "
          f"{seq['process_wall_s']:.1f} s | {r['process_wall_s']:.1f} s |")
    print(f"| the sweep alone | {seq['wall_s']:.1f} s | {r['wall_s']:.1f} s |")
    print(f"| **speed-up** (whole / sweep alone) | | **{out['speedup']:.2f}×** / "
          f"{out['speedup_sweep_only']:.2f}× |")
    print(f"| trials at once × TensorFlow threads each | 1 × default | "
          f"{r['cpus']:g} × 1 |")
    print(f"| one trial (mean) | {mean(seq['trial_wall_s']):.1f} s | first in its worker "
          f"(TF import) {mean(cold):.1f} s, later {mean(warm):.1f} s |")
    print(f"| Ray start-up (local ray.init) | | {r['startup_s']:.1f} s |")
    print(f"| Ray per-task overhead (100 empty tasks) | | {r['task_overhead_ms']:.1f} ms |")
    print(f"| worker CPU-seconds outside trials | | {idle:.1f} s ({idle / trials:.2f} s "
          "per trial) |")
    ray_cpu = r["worker_cpu_s"] + r["driver_cpu_s"]
    print(f"| CPU-seconds (sequential process; Ray workers + driver) | {seq['cpu_s']:.0f} s | "
          f"{r['worker_cpu_s']:.0f} + {r['driver_cpu_s']:.0f} s |")
    print(f"| CPU-seconds, Ray / sequential | | {ray_cpu / seq['cpu_s']:.2f} |")
    print(f"| peak memory per process | {seq['max_rss_mib']:.0f} MiB | "
          f"{', '.join(f'{m:.0f}' for m in r['worker_rss_mib'])} MiB per worker |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
