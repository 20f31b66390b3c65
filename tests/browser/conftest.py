"""Browser fixtures: a real `streamlit run app.py` server and headless Chromium (Playwright).

Reusable by every page's browser test: ``streamlit_server`` is the base URL
(``http://127.0.0.1:PORT``), ``browser`` a Playwright ``Browser``; ``page`` is a
fresh tab per test with a large viewport. Without Chromium or Playwright the tests
are skipped with a loud reason, except under ``CI=true``, where that is a failure.

Tests wait for states (an element, a text, an enabled button), never for a fixed
time. Every limit on such a wait, and on the server's start-up, is a base value
tuned on a quiet machine times ``TRPO_VIZ_TIMEOUT_FACTOR`` (default 3): raise it on
a slow or loaded machine. A limit only decides when a test gives up; a test that
passes never waits for it.

Screenshots go to ``artifacts/screenshots/`` (ignored by git). The README's pictures,
``docs/screenshot-*.png``, are rewritten only when ``TRPO_VIZ_REFRESH_DOCS=1``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.browser.support import (
    ARTIFACTS,
    ROOT,
    SCREENSHOTS,
    STARTUP_S,
    TIMEOUT_FACTOR,
    new_tab,
)

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-quic",
    "--no-first-run", "--disable-component-update", "--disable-sync",
]


def unavailable(reason: str):
    """Skip loudly; under CI=true a missing browser is an error, not a skip."""
    message = f"BROWSER TESTS NOT RUN: {reason}"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message + " (CI=true: browser tests must run)", pytrace=False)
    pytest.skip(message)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"streamlit exited with {process.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"streamlit did not answer /_stcore/health in {STARTUP_S} s")


@contextlib.contextmanager
def running_server(log_name: str):
    """`streamlit run app.py` on a free port: yields its base URL; its console goes to artifacts/.

    On exit the server is stopped and its console must be clean: no warning, no
    traceback, nothing but Streamlit's banner.
    """
    ARTIFACTS.mkdir(exist_ok=True)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    worker = os.environ.get("PYTEST_XDIST_WORKER")  # one console per pytest-xdist worker
    log = ARTIFACTS / (log_name if worker is None else f"{worker}-{log_name}")
    env = os.environ | {"TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
               "--server.address", "127.0.0.1", "--server.headless", "true",
               "--browser.gatherUsageStats", "false"]
    with log.open("w") as out:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_healthy(url, process, log)
        yield url
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(10 * TIMEOUT_FACTOR)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
    noise = [line for line in log.read_text().splitlines() if not _banner(line)]
    assert not noise, "streamlit console printed:\n" + "\n".join(noise[:20])


@pytest.fixture(scope="session")
def streamlit_server():
    """Base URL of the session's `streamlit run app.py` (started on first use)."""
    with running_server("streamlit-browser-tests.log") as url:
        yield url


@pytest.fixture
def fresh_streamlit_server():
    """Base URL of a server of this test's own: its first session is this test's."""
    with running_server("streamlit-fresh-server.log") as url:
        yield url


def _banner(line: str) -> bool:
    text = line.strip()
    return not text or text.startswith(("You can now view", "URL:", "Stopping..."))


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium through Playwright's sync API, one per test module.

    Not one per session: Playwright's sync API runs an event loop in this thread
    while it is open, and a later test outside tests/browser that starts its own
    ``sync_playwright()`` would find that loop running and refuse.
    """
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("playwright is not installed (pip install playwright)")
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        unavailable(f"no Chromium at {CHROMIUM} (set CHROMIUM=/path/to/chromium)")
    with sync_playwright() as playwright:
        try:
            instance = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                                  args=CHROMIUM_ARGS)
        except Exception as error:  # noqa: BLE001 - any launch failure means "no browser"
            unavailable(f"Chromium at {CHROMIUM} did not start: {error}")
        yield instance
        instance.close()


@pytest.fixture
def page(browser):
    context, tab = new_tab(browser)
    yield tab
    context.close()


@pytest.fixture(scope="session")
def screenshots() -> Path:
    """The folder for test screenshots (artifacts/screenshots, ignored by git)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS
