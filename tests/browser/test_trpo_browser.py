"""TRPO live in headless Chromium against a real `streamlit run app.py`.

The page is a view of a stored run that the server's worker processes train: Start
names the run in the URL (``?run=<id>``), the page redraws as updates land, Pause
stops the worker, and a reload or a follow link shows the same run.
"""

from __future__ import annotations

import re
import time

import pytest

from tests.browser.support import (
    PAGE_TIMEOUT_MS,
    new_tab,
    publish_to_docs,
    timeout_ms,
    wait_until_script_idle,
)

pytestmark = pytest.mark.browser

UPDATE = re.compile(r"Update (\d+) of (\d+)")


def update_count(page) -> int:
    """The status line's update number (0 before the first update)."""
    text = page.locator('[data-testid="stMarkdownContainer"]').filter(has_text=UPDATE)
    if text.count() == 0:
        return 0
    return int(UPDATE.search(text.first.inner_text()).group(1))


def wait_for_update_past(page, n: int) -> int:
    page.wait_for_function(
        """n => [...document.querySelectorAll('[data-testid="stMarkdownContainer"]')]
                 .some(e => { const m = e.innerText.match(/Update (\\d+) of/);
                              return m && Number(m[1]) > n; })""",
        arg=n,
        timeout=timeout_ms(180),  # a worker process starts (TensorFlow) and trains a few updates
    )
    return update_count(page)


def assert_no_exception(page) -> None:
    assert page.locator('[data-testid="stException"]').count() == 0


def wait_until_paused(page) -> None:
    """The paused state: Resume enabled, the inspect slider shown, no script run in flight."""
    from playwright.sync_api import expect  # installed: the browser fixture checked

    expect(page.get_by_role("button", name="Resume")).to_be_enabled(timeout=PAGE_TIMEOUT_MS)
    page.get_by_text("Update to inspect").wait_for()  # drawn only while the run is not training
    wait_until_script_idle(page)


def wait_for_text_in_a_live_chart(page, text: str, seconds: float = 120) -> None:
    """Scroll through the live charts' frames until one of them shows `text`.

    The frames come and go while the page reruns (a rerun can mount the detail panel's
    charts a moment later), so each pass looks them up afresh instead of trusting an index.
    """
    from playwright.sync_api import Error as PlaywrightError  # installed: fixture checked

    deadline = time.monotonic() + timeout_ms(seconds) / 1000
    while time.monotonic() < deadline:
        for frame in page.locator('iframe[src*="live_plotly"]').all():
            try:
                frame.scroll_into_view_if_needed(timeout=timeout_ms(5))
                frame.content_frame.get_by_text(text).first.wait_for(timeout=timeout_ms(2))
                return
            except PlaywrightError:  # gone in a rerun, or drawn without the text yet
                continue
        page.wait_for_timeout(500)
    raise AssertionError(f"no live chart showed {text!r} within {seconds:.0f} s (scaled)")


def open_trpo(page, url):
    page.goto(f"{url}/trpo")
    page.get_by_role("button", name="Start").wait_for()
    assert page.get_by_text("Page not found").count() == 0


def test_start_train_pause_and_an_independent_second_session(
    browser, page, streamlit_server, screenshots
):
    open_trpo(page, streamlit_server)
    # A long run: it must still be training when the test pauses it, however fast the box.
    total = page.get_by_role("spinbutton", name="Total timesteps")
    total.fill("2000000")
    total.press("Enter")
    wait_until_script_idle(page)
    page.get_by_role("button", name="Start").click()
    page.wait_for_url(re.compile(r"[?&]run=\w+"))  # the run is named in the URL
    run_url = page.url
    page.get_by_text("2,000,000 total timesteps").first.wait_for()  # the settings applied
    reached = wait_for_update_past(page, 3)
    assert reached > 3
    # The rest of the page answers during training: open and close the settings.
    page.get_by_text("Task and hyperparameters").click()
    page.get_by_text("Hidden sizes").first.wait_for()
    page.get_by_text("Task and hyperparameters").click()
    assert wait_for_update_past(page, reached) > reached  # and training went on
    # The trust-region slice is drawn (its legend names the KL = δ contour). While the run
    # trains the charts redraw in place, each in its own frame, and a chart below the fold
    # is drawn once scrolled into view.
    wait_for_text_in_a_live_chart(page, "KL = δ (trust region)")
    assert_no_exception(page)

    page.get_by_role("button", name="Pause").click()
    wait_until_paused(page)
    paused_at = update_count(page)
    # A training worker lands an update within seconds even on a loaded machine: none may
    # arrive in this window (a longer one only looks harder, it cannot fail a paused run).
    page.wait_for_timeout(timeout_ms(2.5))
    assert update_count(page) == paused_at, "training went on after Pause"
    assert_no_exception(page)

    # A second browser context is a separate session: /trpo there shows no run.
    other, second = new_tab(browser)
    open_trpo(second, streamlit_server)
    second.get_by_text("Press Start to train").first.wait_for()
    assert update_count(second) == 0
    other.close()

    # A reload shows the same run where it paused; a follow link shows it read-only.
    page.goto(run_url)
    page.get_by_text(f"Update {paused_at} of {paused_at}").first.wait_for()
    page.get_by_text("KL = δ (trust region)").first.wait_for()
    other, follower = new_tab(browser)
    follower.goto(f"{run_url}&follow=1")
    follower.get_by_text(f"Update {paused_at} of {paused_at}").first.wait_for()
    follower.get_by_text("read-only").first.wait_for()
    assert follower.get_by_role("button", name="Pause").count() == 0
    other.close()

    # Streamlit scrolls inside its own container: grow the viewport to the page's height.
    wait_until_script_idle(page)
    height = page.evaluate("() => document.querySelector('[data-testid=\"stMain\"]').scrollHeight")
    page.set_viewport_size({"width": 1400, "height": min(int(height) + 100, 6000)})
    page.wait_for_timeout(timeout_ms(1.5))  # Plotly re-lays out: for the picture, not a verdict
    path = screenshots / "trpo-paused.png"
    page.screenshot(path=str(path), full_page=True)
    publish_to_docs(path, "screenshot-trpo.png")  # only with TRPO_VIZ_REFRESH_DOCS=1

    # Talk mode: a paused run replays from its first update.
    page.get_by_role("button", name="First").click()
    page.get_by_text(f"showing update 1 of {paused_at}").first.wait_for()
    assert update_count(page) == 1
    assert_no_exception(page)
