"""TRPO live in headless Chromium against a real `streamlit run app.py`: the run_every loop."""

from __future__ import annotations

import re

import pytest

from tests.browser.support import PAGE_TIMEOUT_MS, new_tab, publish_to_docs, timeout_ms

pytestmark = pytest.mark.browser

UPDATE = re.compile(r"Update (\d+) of (\d+)")


def update_count(page) -> int:
    """The progress line's update number (0 before the first update)."""
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
        timeout=timeout_ms(120),  # a few TRPO updates on a loaded machine
    )
    return update_count(page)


def assert_no_exception(page) -> None:
    assert page.locator('[data-testid="stException"]').count() == 0


def wait_until_paused(page) -> None:
    """The paused state: Start enabled, the inspect slider shown, no script run in flight."""
    from playwright.sync_api import expect  # installed: the browser fixture checked

    expect(page.get_by_role("button", name="Start")).to_be_enabled(timeout=PAGE_TIMEOUT_MS)
    page.get_by_text("Update to inspect").wait_for()  # drawn only when the loop is off
    page.wait_for_function(
        "() => !document.querySelector("
        "'[data-testid=\"stStatusWidget\"] [data-testid=\"stStatusWidgetRunningIcon\"]')"
    )


def open_trpo(page, url):
    page.goto(f"{url}/trpo")
    page.get_by_role("button", name="Start").wait_for()
    assert page.get_by_text("Page not found").count() == 0


def test_start_train_pause_and_an_independent_second_session(
    browser, page, streamlit_server, screenshots, tmp_path
):
    open_trpo(page, streamlit_server)
    page.get_by_role("button", name="Start").click()
    reached = wait_for_update_past(page, 3)
    assert reached > 3
    # The rest of the page answers during training: open the talk-mode panel.
    page.get_by_text("Talk mode: load a saved run").click()
    page.get_by_text("Saved run (.zip)").wait_for()
    page.get_by_text("Talk mode: load a saved run").click()
    assert wait_for_update_past(page, reached) > reached  # and training went on
    # The trust-region slice is drawn (its legend names the KL = δ contour).
    page.get_by_text("KL = δ (trust region)").first.wait_for()
    assert_no_exception(page)

    # A second browser context is a separate session with no run of its own.
    other, second = new_tab(browser)
    open_trpo(second, streamlit_server)
    second.get_by_text("Press Start to train").first.wait_for()
    assert update_count(second) == 0
    other.close()

    page.get_by_role("button", name="Pause").click()
    wait_until_paused(page)
    paused_at = update_count(page)
    # A running loop ticks every 0.05 s and lands an update within seconds even on a
    # loaded machine: none may arrive in this window (a longer one only looks harder).
    page.wait_for_timeout(timeout_ms(2.5))
    assert update_count(page) == paused_at, "training went on after Pause"
    assert_no_exception(page)

    # Switching to the CG explorer and back keeps this session's run.
    page.locator('[data-testid="stSidebarNav"]').get_by_text("CG explorer").click()
    page.get_by_text("Conjugate gradient on Hessian-vector products").wait_for()
    page.locator('[data-testid="stSidebarNav"]').get_by_text("TRPO live").click()
    page.get_by_text(f"Update {paused_at} of").first.wait_for()
    page.get_by_text("KL = δ (trust region)").first.wait_for()

    # Streamlit scrolls inside its own container: grow the viewport to the page's height.
    height = page.evaluate("() => document.querySelector('[data-testid=\"stMain\"]').scrollHeight")
    page.set_viewport_size({"width": 1400, "height": min(int(height) + 100, 6000)})
    page.wait_for_timeout(timeout_ms(1.5))  # Plotly re-lays out: for the picture, not a verdict
    path = screenshots / "trpo-paused.png"
    page.screenshot(path=str(path), full_page=True)
    publish_to_docs(path, "screenshot-trpo.png")  # only with TRPO_VIZ_REFRESH_DOCS=1

    # Save the run (a real download) and load it back in talk mode.
    with page.expect_download() as download_info:
        page.get_by_role("button", name="Save run").click()
    saved = tmp_path / "run.zip"
    download_info.value.save_as(saved)
    page.get_by_text("Talk mode: load a saved run").click()
    page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(str(saved))
    page.get_by_role("button", name="Load for replay").click()
    page.get_by_text("replay (talk mode)").first.wait_for()
    assert update_count(page) == 1
    assert_no_exception(page)
