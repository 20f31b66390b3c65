"""Endurance: does the server's memory stay bounded over a long, mixed session?

Starts ``streamlit run app.py`` on 127.0.0.1 (a free port) and drives it with headless
Chromium (Playwright) in rounds. Each round opens a browser context (a new session),
solves its share of distinct CG problems through URL query parameters on ``/cg``
(every problem a fresh page load, so every problem is a session opened and closed),
closes the context, then opens another on ``/trpo`` for its share of TRPO runs: Start,
wait until the page shows update N, Pause, New run; and closes it. The problems mix
n = 2 … 6 expressions, n = 100 chains, float32 and forward-mode HVPs, the built-in
n = 1000 logistic regression and one long (10,000-character) expression.

A sampler thread reads the resident memory of the server's process tree (psutil if
installed, else /proc/PID/status VmRSS of the server and its descendants) every
``--sample-s`` seconds. Prints one row per round (RSS at its end and its peak), then a
verdict against the targets: RSS at the end ≤ 1.2 GB, and no growth over the second
half (RSS at the end minus RSS at the end of the middle round).

    python benchmarks/bench_endurance.py                     # 50 problems, 10 runs of 20
    python benchmarks/bench_endurance.py --cg-problems 6 --trpo-runs 2 --updates 3 \\
        --rounds 2 --long-chars 0                            # a quick smoke run

Set ``MALLOC_ARENA_MAX`` (or any variable) in the environment to pass it to the server.
The script stops by itself (``--deadline-s``) and always stops the server.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import streamlit_server  # benchmarks/streamlit_server.py, beside this script

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-quic",
    "--no-first-run", "--disable-component-update", "--disable-sync",
]
TARGET_BYTES = 1.2e9  # RSS at the end of the script (1.2 GB = 1144 MiB)
FLAT_MIB = 50  # "no growth": at most this much over the second half
MIB = 2**20
UPDATE = re.compile(r"Update\s+(\d+)")


# ----------------------------------------------------------------------------- memory


def process_tree_rss(pid: int) -> int:
    """Resident bytes of ``pid`` and all its descendants (0 once it is gone)."""
    try:
        import psutil
    except ImportError:
        return _proc_tree_rss(pid)
    try:
        root = psutil.Process(pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0
    total = 0
    for process in processes:
        try:
            total += process.memory_info().rss
        except psutil.Error:
            pass
    return total


def _proc_tree_rss(pid: int) -> int:
    parents, rss = {}, {}
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            text = status.read_text()
        except OSError:
            continue
        own = int(status.parent.name)
        parents[own] = int(re.search(r"PPid:\s+(\d+)", text).group(1))
        match = re.search(r"VmRSS:\s+(\d+) kB", text)
        rss[own] = int(match.group(1)) * 1024 if match else 0
    tree, frontier = {pid}, [pid]
    while frontier:
        parent = frontier.pop()
        children = [p for p, pp in parents.items() if pp == parent and p not in tree]
        tree.update(children)
        frontier.extend(children)
    return sum(rss.get(p, 0) for p in tree)


def process_rss(pid: int) -> int:
    """Resident bytes of ``pid`` alone (0 once it is gone)."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    match = re.search(r"VmRSS:\s+(\d+) kB", text)
    return int(match.group(1)) * 1024 if match else 0


class Sampler(threading.Thread):
    """Samples (seconds since start, phase, RSS bytes) every ``period`` seconds.

    RSS is the server's process tree: the Streamlit process and the TRPO worker
    processes its run registry starts. ``server_rss`` is the Streamlit process alone.
    """

    def __init__(self, pid: int, period: float):
        super().__init__(daemon=True)
        self.pid, self.period = pid, period
        self.phase = "start-up"
        self.samples: list[tuple[float, str, int]] = []
        self.start_time = time.monotonic()
        self._stop_event = threading.Event()
        self._lock = threading.Lock()

    def server_rss(self) -> int:
        return process_rss(self.pid)

    def sample(self) -> int:
        rss = process_tree_rss(self.pid)
        with self._lock:
            self.samples.append((time.monotonic() - self.start_time, self.phase, rss))
        return rss

    def since(self, t0: float) -> list[int]:
        with self._lock:
            return [rss for t, _, rss in self.samples if t >= t0]

    def elapsed(self) -> float:
        return time.monotonic() - self.start_time

    def run(self) -> None:
        while not self._stop_event.wait(self.period):
            self.sample()

    def stop(self) -> None:
        self._stop_event.set()


# ----------------------------------------------------------------------------- workload


def chain(n: int, c: float) -> str:
    """A smooth non-quadratic objective in n variables (H depends on θ)."""
    return " + ".join(f"(x{i} - x{i + 1})**2 + {c:g}*x{i}**4" for i in range(1, n)) + f" + x{n}**2"


def long_expression(chars: int, n: int = 40) -> str:
    """About ``chars`` characters of products of cosines and squares over n variables."""
    terms, i = [], 0
    while len(" + ".join(terms)) < chars:
        a, b = i % n + 1, (7 * i + 3) % n + 1
        terms.append(f"{0.5 + (i % 9) / 10:g}*cos(x{a})*x{b}**2")
        i += 1
    return " + ".join(terms) + f" + x{n}**2"


def cg_problems(count: int, long_chars: int) -> list[dict[str, str]]:
    """``count`` distinct CG problems as URL query parameters (every one a new cache key)."""
    problems = []
    long_at = int(0.3 * count) if long_chars > 0 else -1  # in the first half
    for i in range(count):
        query: dict[str, str] = {}
        if i == long_at:
            query = {"expr": long_expression(long_chars), "theta": "0.3", "g": "1"}
        elif i == count // 2 + 1:
            query = {"expr": "@logistic_regression", "theta": "0", "g": "1"}
        elif i % 10 == 4:
            query = {"expr": chain(100, 0.1 + i / 1000), "theta": "0.5", "g": "1"}
        else:
            n = 2 + i % 5
            expr = " + ".join(f"{1 + (i + k) % 7}*x{k}**2" for k in range(1, n + 1))
            query = {"expr": f"{expr} + {0.01 * (i + 1):g}*x1*x{n} + sin(x1)",
                     "theta": ", ".join(f"{0.1 * (k + i % 3):g}" for k in range(n)), "g": "1"}
        if i % 7 == 3:
            query["hvp"] = "forward"
        if i % 11 == 5:
            query["dtype"] = "float32"
        problems.append(query)
    return problems


def split(items: list, parts: int) -> list[list]:
    """``items`` in ``parts`` consecutive, nearly equal slices."""
    edges = [round(k * len(items) / parts) for k in range(parts + 1)]
    return [items[edges[k] : edges[k + 1]] for k in range(parts)]


# ----------------------------------------------------------------------------- server


def start_server(log: Path) -> tuple[subprocess.Popen, str]:
    env = os.environ | {"TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONUNBUFFERED": "1"}
    # The runs it trains go to a store of its own, not the user's ~/.trpo-viz.
    env.setdefault("TRPO_VIZ_HOME", tempfile.mkdtemp(prefix="bench-endurance-home-"))
    return streamlit_server.start_server(log, env, timeout=120)


stop_server = streamlit_server.stop_tree


# ----------------------------------------------------------------------------- driving


class Deadline(Exception):
    pass


@dataclass
class Tally:
    cg_solved: int = 0
    cg_errors: list[str] = field(default_factory=list)
    cg_seconds: list[float] = field(default_factory=list)
    trpo_done: int = 0
    trpo_errors: list[str] = field(default_factory=list)


def page_state(page) -> dict:
    """What a page shows now: busy?, errors, exception, the body text."""
    return page.evaluate(
        """() => ({
            busy: !!document.querySelector('[data-testid="stStatusWidget"]'),
            errors: [...document.querySelectorAll('[data-testid="stAlertContentError"]')]
                    .map(e => e.innerText),
            exception: !!document.querySelector('[data-testid="stException"]'),
            text: document.body.innerText,
        })"""
    )


def wait_until(page, predicate, timeout_s: float, what: str, deadline: float) -> dict:
    end = min(time.monotonic() + timeout_s, deadline)
    while True:
        state = page_state(page)
        if predicate(state):
            return state
        if time.monotonic() > end:
            if time.monotonic() > deadline:
                raise Deadline(f"deadline reached while waiting for {what}")
            raise TimeoutError(f"{what}: not reached in {timeout_s:.0f} s")
        page.wait_for_timeout(250)


def solve_cg(page, url: str, query: dict[str, str], timeout_s: float, deadline: float) -> str:
    """Load /cg with the problem in its query string; wait for the answer (or an error)."""
    page.goto(f"{url}/cg?{urllib.parse.urlencode(query)}")

    def finished(state):
        answered = re.search(r"(^|\n)Answer\s*\n", state["text"]) is not None
        failed = state["errors"] or state["exception"]
        return (answered or failed) and not state["busy"]

    state = wait_until(page, finished, timeout_s, "the CG answer", deadline)
    if state["exception"]:
        return "exception on the page"
    return "; ".join(e[:120] for e in state["errors"])


def shown_update(text: str) -> int:
    return max((int(m.group(1)) for m in UPDATE.finditer(text)), default=0)


def button(page, name: str):
    return page.get_by_role("button", name=re.compile(rf"^\W*{name}\W*$", re.IGNORECASE))


def trpo_run(page, updates: int, timeout_s: float, deadline: float) -> str:
    """Start; wait for update ``updates`` (or an error); Pause if running; New run.

    The run trains in a worker process and stays stored; "New run" leaves it.
    """
    button(page, "Start").click()

    def progressed(state):
        return shown_update(state["text"]) >= updates or state["errors"] or state["exception"]

    state = wait_until(page, progressed, timeout_s, f"update {updates}", deadline)
    problem = ""
    if state["exception"]:
        problem = "exception on the page"
    elif state["errors"]:
        problem = "; ".join(e[:120] for e in state["errors"])
    pause = button(page, "Pause")
    if pause.count() and pause.first.is_enabled():
        pause.first.click()
    wait_until(page, lambda s: button(page, "Resume").first.is_enabled(), 60,
               "Resume enabled (paused)", deadline)
    button(page, "New run").click()
    wait_until(page, lambda s: shown_update(s["text"]) == 0 and not s["busy"], 60,
               "the reset page", deadline)
    return problem


# ----------------------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cg-problems", type=int, default=50)
    parser.add_argument("--trpo-runs", type=int, default=10)
    parser.add_argument("--updates", type=int, default=20, help="TRPO updates per run")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--long-chars", type=int, default=10_000,
                        help="length of the one long expression (0: none)")
    parser.add_argument("--sample-s", type=float, default=1.0)
    parser.add_argument("--idle-s", type=float, default=75.0,
                        help="wait after the last round, all sessions closed")
    parser.add_argument("--problem-timeout-s", type=float, default=900.0)
    parser.add_argument("--run-timeout-s", type=float, default=600.0)
    parser.add_argument("--deadline-s", type=float, default=4 * 3600.0,
                        help="stop the whole script after this long")
    args = parser.parse_args()
    if args.rounds < 2:
        parser.error("--rounds must be at least 2 (the verdict compares the two halves)")
    from playwright.sync_api import sync_playwright

    problems = split(cg_problems(args.cg_problems, args.long_chars), args.rounds)
    runs = split(list(range(args.trpo_runs)), args.rounds)
    log = Path(tempfile.gettempdir()) / f"bench-endurance-{os.getpid()}.log"
    process, url = start_server(log)
    sampler = Sampler(process.pid, args.sample_s)
    sampler.start()
    deadline = time.monotonic() + args.deadline_s
    tally = Tally()
    rows = []  # (round, work, elapsed s, RSS MiB at the end, peak MiB in the round)
    start_rss = sampler.sample()
    print(f"server pid {process.pid} at {url}, log {log}; RSS after start-up "
          f"{start_rss / MIB:.0f} MiB", flush=True)
    stopped_early = None
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                                 args=CHROMIUM_ARGS)
            for index in range(args.rounds):
                t0 = sampler.elapsed()
                sampler.phase = f"round {index + 1}: CG"
                context = browser.new_context(viewport={"width": 1400, "height": 1000})
                page = context.new_page()
                page.set_default_timeout(120_000)
                for query in problems[index]:
                    started = time.monotonic()
                    problem = solve_cg(page, url, query, args.problem_timeout_s, deadline)
                    tally.cg_seconds.append(time.monotonic() - started)
                    tally.cg_solved += 1
                    if problem:
                        tally.cg_errors.append(f"{query['expr'][:40]}…: {problem}")
                    print(f"  {sampler.elapsed():7.0f} s  CG {tally.cg_solved:3d}  "
                          f"n-chars {len(query['expr']):6d}  {tally.cg_seconds[-1]:6.1f} s  "
                          f"RSS {sampler.sample() / MIB:6.0f} MiB"
                          + (f"  ({problem})" if problem else ""), flush=True)
                context.close()
                sampler.phase = f"round {index + 1}: TRPO"
                if runs[index]:
                    context = browser.new_context(viewport={"width": 1400, "height": 1000})
                    page = context.new_page()
                    page.set_default_timeout(120_000)
                    page.goto(f"{url}/trpo")
                    button(page, "Start").wait_for()
                    for _ in runs[index]:
                        started = time.monotonic()
                        problem = trpo_run(page, args.updates, args.run_timeout_s, deadline)
                        tally.trpo_done += 1
                        if problem:
                            tally.trpo_errors.append(problem)
                        print(f"  {sampler.elapsed():7.0f} s  TRPO run {tally.trpo_done:2d}  "
                              f"{time.monotonic() - started:6.1f} s  "
                              f"RSS {sampler.sample() / MIB:6.0f} MiB"
                              + (f"  ({problem})" if problem else ""), flush=True)
                    context.close()
                rss = sampler.sample()
                work = f"{len(problems[index])} CG, {len(runs[index])} TRPO"
                rows.append((index + 1, work, sampler.elapsed(), rss / MIB,
                             max(sampler.since(t0)) / MIB, sampler.server_rss() / MIB))
            sampler.phase = "idle"
            time.sleep(args.idle_s)
            browser.close()
    except Deadline as error:
        stopped_early = str(error)
    except KeyboardInterrupt:
        stopped_early = "interrupted"
    finally:
        final_rss = sampler.sample()
        final_server = sampler.server_rss()
        sampler.stop()
        stop_server(process)

    print(f"\nEndurance: {tally.cg_solved} CG problems, {tally.trpo_done} TRPO runs of "
          f"{args.updates} updates, {args.rounds} rounds (a browser context per round and "
          "page; every CG problem a new page load)")
    print("RSS MiB: the server's process tree (Streamlit and its TRPO workers); server: the "
          "Streamlit process alone")
    print(f"{'round':>5}  {'work':<16} {'elapsed s':>9} {'RSS MiB':>8} {'peak MiB':>9} "
          f"{'server MiB':>10}")
    print(f"{'start':>5}  {'(server up)':<16} {0:>9.0f} {start_rss / MIB:>8.0f} "
          f"{start_rss / MIB:>9.0f} {start_rss / MIB:>10.0f}")
    for number, work, elapsed, rss, peak, server in rows:
        print(f"{number:>5}  {work:<16} {elapsed:>9.0f} {rss:>8.0f} {peak:>9.0f} "
              f"{server:>10.0f}")
    print(f"{'idle':>5}  {f'+{args.idle_s:.0f} s, closed':<16} {sampler.elapsed():>9.0f} "
          f"{final_rss / MIB:>8.0f} {'':>9} {final_server / MIB:>10.0f}")
    if tally.cg_seconds:
        median = sorted(tally.cg_seconds)[len(tally.cg_seconds) // 2]
        print(f"CG page loads: median {median:.1f} s, slowest {max(tally.cg_seconds):.1f} s")
    for label, errors in (("CG", tally.cg_errors), ("TRPO", tally.trpo_errors)):
        for error in errors:
            print(f"{label} problem shown: {error}")
    if stopped_early:
        print(f"STOPPED EARLY: {stopped_early}")
    if len(rows) < 2:
        return 1
    middle = rows[math.ceil(len(rows) / 2) - 1]
    # Growth of the Streamlit process: a worker alive at the middle round's end (a paused
    # run's worker exits after its grace) must not make the second half look flat.
    growth = final_server / MIB - middle[5]
    peak = max(r[4] for r in rows)
    ok_end = final_rss <= TARGET_BYTES
    ok_flat = growth <= FLAT_MIB
    print(f"verdict: RSS at the end {final_rss / MIB:.0f} MiB vs target ≤ "
          f"{TARGET_BYTES / MIB:.0f} MiB (1.2 GB): {'PASS' if ok_end else 'FAIL'}; "
          f"server growth over the second half (end − end of round {middle[0]}) {growth:+.0f} MiB "
          f"vs ≤ {FLAT_MIB} MiB: {'PASS' if ok_flat else 'FAIL'}; peak {peak:.0f} MiB")
    return 0 if ok_end and ok_flat and not stopped_early else 1


if __name__ == "__main__":
    sys.exit(main())
