"""app.py in headless Chromium: the first visit after a server start, while TensorFlow loads."""

from __future__ import annotations

import pytest

from tests.browser.support import timeout_ms

pytestmark = pytest.mark.browser

LOADING = "Loading TensorFlow"

# Runs in the page before Streamlit's own scripts: notes what the page showed when the
# loading spinner first appeared. The page records it, so no state can be missed
# between two polls of the test process, however fast or slow the machine.
RECORD_COLD_START = """
window.coldStart = {spinner: false};
new MutationObserver(() => {
    const state = window.coldStart;
    if (state.spinner || !document.body || !document.body.textContent.includes('LOADING')) return;
    const nav = document.querySelector('[data-testid="stSidebarNav"]');
    Object.assign(state, {
        spinner: true,
        title: [...document.querySelectorAll('h1')].some(h => h.textContent.includes('trpo-viz')),
        navigation: nav ? nav.textContent : '',
        pageContent: document.querySelector('[data-testid="stTable"]') !== null,
    });
}).observe(document, {subtree: true, childList: true, characterData: true});
""".replace("LOADING", LOADING)


def test_cold_start_shows_the_frame_while_tensorflow_loads(
    page, fresh_streamlit_server, screenshots
):
    """The server's first visitor sees the app's name, its pages and a spinner, then the page.

    Before this, the first visit showed a blank page with Streamlit's raw pages/ list
    for the whole TensorFlow import (8–15 s).
    """
    page.add_init_script(RECORD_COLD_START)
    page.goto(f"{fresh_streamlit_server}/")
    spinner = page.get_by_text(LOADING)
    spinner.wait_for()  # shown during the import, which takes seconds
    page.screenshot(path=str(screenshots / "cold-start-loading.png"))

    # Then the root forwards to the CG explorer, drawn once TensorFlow is in.
    page.locator('[data-testid="stTable"]').first.wait_for(timeout=timeout_ms(120))
    spinner.wait_for(state="detached")
    seen = page.evaluate("window.coldStart")
    assert seen["spinner"], seen
    assert seen["title"], "the app's name was not shown with the spinner"
    assert "CG explorer" in seen["navigation"] and "TRPO live" in seen["navigation"], seen
    assert not seen["pageContent"], "the spinner came after the page: TensorFlow was loaded"
    assert page.locator('[data-testid="stException"]').count() == 0
    page.screenshot(path=str(screenshots / "cold-start-loaded.png"))
