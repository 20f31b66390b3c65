"""Runs outlive their tabs and their server: followers watch a run train, a restart keeps it.

A follower downloads the run for slides: one self-contained HTML file of every stored update.

(The run library page is covered by tests/test_page_runs.py.)
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.browser.conftest import running_server
from tests.browser.support import new_tab, timeout_ms
from tests.test_html_export import check_run_download

pytestmark = pytest.mark.browser

UPDATE = re.compile(r"Update (\d+) of (\d+)")


def update_count(page) -> int:
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
        timeout=timeout_ms(120),
    )
    return update_count(page)


def start_long_run(page, url: str) -> str:
    """/trpo with a budget no test reaches, Start; returns the run id named in the URL."""
    page.goto(f"{url}/trpo")
    total = page.get_by_role("spinbutton", name="Total timesteps")
    total.fill("2000000")
    total.press("Enter")
    page.wait_for_function(  # the rerun that applies the value has finished
        "() => !document.querySelector("
        "'[data-testid=\"stStatusWidget\"] [data-testid=\"stStatusWidgetRunningIcon\"]')"
    )
    page.get_by_role("button", name="Start").click()
    page.wait_for_url(re.compile(r"[?&]run=[a-z0-9]{10}"))
    page.get_by_text("2,000,000 total timesteps").first.wait_for()  # the budget applied
    return re.search(r"[?&]run=([a-z0-9]{10})", page.url).group(1)


def pause(page) -> int:
    from playwright.sync_api import expect

    page.get_by_role("button", name="Pause").click()
    expect(page.get_by_role("button", name="Resume")).to_be_enabled(timeout=timeout_ms(120))
    return update_count(page)


def test_a_follower_watches_the_run_train_and_a_restart_keeps_it(browser, screenshots):
    context, page = new_tab(browser)
    with running_server("streamlit-runs-1.log") as url:
        run_id = start_long_run(page, url)
        wait_for_update_past(page, 1)
        # Followers see the count rise while it trains, with no controls of their own.
        other, follower = new_tab(browser)
        follower.goto(f"{url}/trpo?run={run_id}&follow=1")
        seen = wait_for_update_past(follower, 0)
        assert wait_for_update_past(follower, seen) > seen
        # While it trains, the charts redraw in place (Plotly.react), not mounted anew:
        # one chart's document counts three or more drawings of its own.
        follower.locator('iframe[src*="live_plotly"]').first.wait_for(timeout=timeout_ms(120))
        learning = follower.locator('iframe[src*="live_plotly"]').first.content_frame
        learning.locator("#chart[data-drawn]").wait_for(timeout=timeout_ms(120))
        follower.wait_for_function(
            "() => +(document.querySelector('iframe[src*=\"live_plotly\"]').contentDocument"
            ".getElementById('chart').getAttribute('data-drawn')) >= 3", timeout=timeout_ms(120))
        assert learning.locator(".js-plotly-plot .scatterlayer .trace").count() >= 2
        # Charts below the fold (1,000 px) wait until they are scrolled into view.
        frames = follower.locator('iframe[src*="live_plotly"]')
        drawn = [frames.nth(i).content_frame.locator("#chart").evaluate(
            "chart => +(chart.getAttribute('data-drawn') ?? 0)") for i in range(frames.count())]
        assert max(drawn[-2:]) <= 1 < drawn[0], drawn
        for label in ("Start", "Resume", "Pause", "Step", "Stop", "New run"):
            assert follower.get_by_role("button", name=label, exact=True).count() == 0
        assert follower.get_by_text("Task and hyperparameters").count() == 0
        stored = pause(page)
        follower.get_by_text(re.compile(rf"Update {stored} of {stored} · .*paused")).first \
            .wait_for(timeout=timeout_ms(60))
        # The follower's download for slides: the run as stored now, built on click.
        with follower.expect_download(timeout=timeout_ms(60)) as download:
            follower.get_by_role("button", name="Download for slides (.html)").click()
        assert download.value.suggested_filename == f"trpo-CartPole-v1-{run_id}.html"
        check_run_download(Path(download.value.path()).read_text(encoding="utf-8"),
                           "CartPole-v1 seed 0", stored)
        other.close()
    # A new server process: the run is in the library and opens with all its updates.
    with running_server("streamlit-runs-2.log") as url:
        page.goto(f"{url}/trpo?run={run_id}")
        page.get_by_text(re.compile(rf"Update {stored} of {stored}")).first.wait_for()
        page.get_by_text("KL = δ (trust region)").first.wait_for()
        page.screenshot(path=str(screenshots / "trpo-after-restart.png"), full_page=True)
        assert page.locator('[data-testid="stException"]').count() == 0
    context.close()
