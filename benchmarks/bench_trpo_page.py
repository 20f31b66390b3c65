"""TRPO live page: does it keep up with training, and does memory stay flat?

Starts ``streamlit run app.py`` on 127.0.0.1, opens /trpo in headless Chromium,
presses Start (CartPole-v1, default 1,024-step batches) and samples, every few
seconds, the update counter shown on the page and the server's resident memory
(/proc/PID/status). Prints a table: updates, page updates/s, RSS, and the RSS
growth over the second half of the run.

    python benchmarks/bench_trpo_page.py --updates 500
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-quic"]
UPDATE = re.compile(r"Update (\d+) of")


def rss_mib(pid: int) -> float:
    """Resident memory of the server and its children (MiB)."""
    total = 0
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            text = status.read_text()
        except OSError:
            continue
        ppid = int(re.search(r"PPid:\s+(\d+)", text).group(1))
        own = int(status.parent.name)
        if own == pid or ppid == pid:
            match = re.search(r"VmRSS:\s+(\d+) kB", text)
            total += int(match.group(1)) if match else 0
    return total / 1024


def start_server() -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            "app.py",
            "--server.port",
            str(port),
            "--server.address",
            "127.0.0.1",
            "--server.headless",
            "true",
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    for _ in range(300):
        try:
            urllib.request.urlopen(f"{url}/_stcore/health", timeout=2)
            return process, url
        except OSError:
            time.sleep(0.3)
    raise RuntimeError("streamlit did not start")


def shown_update(page) -> int:
    texts = page.locator('[data-testid="stMarkdownContainer"]').all_inner_texts()
    numbers = [int(m.group(1)) for t in texts if (m := UPDATE.search(t))]
    return max(numbers, default=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--updates", type=int, default=500)
    parser.add_argument("--sample-s", type=float, default=10.0)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    process, url = start_server()
    samples = []  # (seconds, updates, rss MiB)
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(120_000)
            page.goto(f"{url}/trpo")
            total = page.get_by_role("spinbutton", name="Total timesteps")
            total.fill(str(1024 * (args.updates + 20)))
            total.press("Enter")
            page.wait_for_timeout(1500)
            page.get_by_role("button", name="Start").click()
            page.get_by_text(UPDATE).first.wait_for()
            start = time.perf_counter()
            while True:
                page.wait_for_timeout(args.sample_s * 1000)
                samples.append(
                    (time.perf_counter() - start, shown_update(page), rss_mib(process.pid))
                )
                print(
                    f"  {samples[-1][0]:6.0f} s  update {samples[-1][1]:4d}  "
                    f"RSS {samples[-1][2]:7.0f} MiB",
                    flush=True,
                )
                if samples[-1][1] >= args.updates:
                    break
            browser.close()
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(10)

    seconds, updates, rss = samples[-1]
    half = next(s for s in samples if s[1] >= updates / 2)
    print("\nTRPO live page, CartPole-v1, 1,024 steps per update, one browser session")
    print(
        f"{'updates':>8} {'seconds':>8} {'updates/s':>10} {'RSS MiB':>8} "
        f"{'RSS growth, 2nd half':>21}"
    )
    print(
        f"{updates:>8} {seconds:>8.0f} {updates / seconds:>10.2f} {rss:>8.0f} "
        f"{rss - half[2]:>18.0f} MiB"
    )


if __name__ == "__main__":
    main()
