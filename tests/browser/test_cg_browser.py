"""The CG explorer in headless Chromium against a real `streamlit run app.py`."""

from __future__ import annotations

import re
from urllib.parse import urlencode

import pytest

from tests.browser.support import publish_to_docs, timeout_ms

pytestmark = pytest.mark.browser

EXPR_LABEL = "f(θ) in x1 … xn"


def wait_for_page(page, charts: int = 3, table_has: str | None = None) -> None:
    """Wait until the script run is over and ``charts`` Plotly charts are drawn (and the
    solution table shows ``table_has``: a rerun may still be replacing a stale table)."""
    page.locator('[data-testid="stTable"]').first.wait_for()
    if table_has is not None:
        page.wait_for_function(
            "t => document.querySelector('[data-testid=\"stTable\"]').innerText.includes(t)",
            arg=table_has)
    page.wait_for_function(
        "n => document.querySelectorAll('[data-testid=\"stPlotlyChart\"] .main-svg').length >= n",
        arg=charts,
    )
    page.wait_for_function(  # no "running" indicator any more
        "() => !document.querySelector("
        "'[data-testid=\"stStatusWidget\"] [data-testid=\"stStatusWidgetRunningIcon\"]')"
    )


def full_height(page) -> None:
    """Streamlit scrolls inside its own container: grow the viewport to the page's height."""
    height = page.evaluate(
        "() => document.querySelector('[data-testid=\"stMain\"]')?.scrollHeight ?? 2000"
    )
    page.set_viewport_size({"width": 1400, "height": min(int(height) + 100, 8000)})
    page.wait_for_timeout(timeout_ms(0.8))  # Plotly re-lays out: for the picture, not a verdict


def solution_table_text(page) -> str:
    return page.locator('[data-testid="stTable"]').first.inner_text()


def assert_no_exception(page) -> None:
    assert page.locator('[data-testid="stException"]').count() == 0


def test_first_visit_after_start_has_no_page_not_found_dialog(page, streamlit_server):
    # Must be the first test in the session: it relies on being the server's first session.
    page.goto(f"{streamlit_server}/cg")
    wait_for_page(page)
    page.wait_for_timeout(timeout_ms(0.5))  # a late dialog would show by now
    assert page.get_by_text("Page not found").count() == 0
    # app.py's navigation, not Streamlit's legacy pages/ listing ("app", "cg", "trpo").
    nav = page.locator('[data-testid="stSidebarNav"]').inner_text()
    assert "TRPO live" in nav and "app" not in nav.split()


def test_default_page_shows_the_solved_example(page, streamlit_server, screenshots):
    page.goto(f"{streamlit_server}/cg")
    wait_for_page(page, table_has="6.5625")
    table = solution_table_text(page)
    assert "-0.5625" in table and "6.5625" in table
    assert "exact H⁻¹g" in table
    assert page.get_by_text("converged", exact=True).first.is_visible()
    assert_no_exception(page)
    assert page.get_by_text("Page not found").count() == 0
    path = screenshots / "cg-default.png"
    full_height(page)
    page.screenshot(path=str(path), full_page=True)
    publish_to_docs(path, "screenshot-cg.png")  # only with TRPO_VIZ_REFRESH_DOCS=1
    page.screenshot(path=str(screenshots / "cg-default-top.png"))


# Records every value the animation slider's label takes, in the page itself: nothing
# the test process polls can miss a frame, however slow the machine.
RECORD_SLIDER_LABELS = """() => {
    // Every value the first chart's slider label takes, even when Streamlit mounts the
    // chart again (the observer watches the whole page and finds the first chart anew)
    // and when several changes come in one observer call (the records keep old values).
    window.sliderLabels = new Set();
    const first = () => document.querySelector('[data-testid="stPlotlyChart"]');
    const add = text => { if (text && text.trim()) window.sliderLabels.add(text.trim()); };
    const record = records => {
        const chart = first();
        const label = chart && chart.querySelector('text.slider-label');
        if (label) add(label.textContent);
        for (const r of records || []) {
            const node = r.target.nodeType === 1 ? r.target : r.target.parentElement;
            const owner = node && node.closest('text.slider-label');
            if (!owner || owner.closest('[data-testid="stPlotlyChart"]') !== chart) continue;
            if (r.type === 'characterData') add(r.oldValue);
            r.removedNodes.forEach(n => add(n.textContent));  // a replaced text node keeps its text
        }
    };
    record();
    new MutationObserver(record).observe(document.body, {
        subtree: true, childList: true, characterData: true, characterDataOldValue: true});
}"""


def test_play_advances_the_slider(page, streamlit_server, screenshots):
    page.goto(f"{streamlit_server}/cg")
    wait_for_page(page)
    chart = page.locator('[data-testid="stPlotlyChart"]').first
    current = chart.locator("text.slider-label", has_text="k = ")  # the current-value label
    assert current.text_content().strip() == "k = 3"  # starts on the final iterate
    page.evaluate(RECORD_SLIDER_LABELS)
    chart.locator(".updatemenu-button", has_text="Play").click()
    page.wait_for_function(  # the animation passes through every iterate
        "() => ['k = 0', 'k = 1', 'k = 2'].every(k => window.sliderLabels.has(k))"
    )
    chart.screenshot(path=str(screenshots / "cg-animation.png"))
    assert_no_exception(page)


def test_typing_a_new_expression_changes_the_result(page, streamlit_server, screenshots):
    page.goto(f"{streamlit_server}/cg")
    wait_for_page(page)
    box = page.get_by_role("textbox", name=EXPR_LABEL)
    box.fill("x1**2 + 4*x2**2 + x3**2")
    box.press("Enter")
    # H = diag(2, 8, 2), g = (3, 12, 6): x* = (1.5, 1.5, 3)
    page.wait_for_function(
        "() => document.querySelector('[data-testid=\"stTable\"]').innerText.includes('1.5')"
    )
    wait_for_page(page)
    table = solution_table_text(page)
    assert "-0.5625" not in table and re.search(r"x2\s+1\.5\s+1\.5", table), table
    assert "expr=" in page.url  # the URL follows the input
    assert_no_exception(page)
    page.screenshot(path=str(screenshots / "cg-new-expression.png"))


def test_a_shared_link_reproduces_the_view(page, streamlit_server, screenshots):
    query = urlencode({"expr": "x1**2 + 3*x2**2", "theta": "1,1", "g": "2,6", "damping": "0.5"})
    page.goto(f"{streamlit_server}/cg?{query}")
    wait_for_page(page, table_has="0.923076923")
    assert page.get_by_role("textbox", name=EXPR_LABEL).input_value() == "x1**2 + 3*x2**2"
    table = solution_table_text(page)
    # H = diag(2, 6): H⁻¹g = (1, 1); (H + 0.5 I)⁻¹g = (0.8, 0.923077)
    assert "exact (H+λI)⁻¹g" in table and "0.8" in table and "0.923076923" in table
    assert_no_exception(page)
    full_height(page)
    page.screenshot(path=str(screenshots / "cg-shared-link.png"), full_page=True)


def test_bad_input_shows_an_error_and_keeps_the_page(page, streamlit_server, screenshots):
    query = urlencode({"expr": "x1**2 +* x2", "iters": "oops"})
    page.goto(f"{streamlit_server}/cg?{query}")
    errors = page.locator('[data-testid="stAlertContentError"]')
    errors.filter(has_text="syntax error at column 8").first.wait_for()  # next to f
    errors.filter(has_text="iters='oops'").first.wait_for()  # next to max iterations
    page.get_by_role("textbox", name=EXPR_LABEL).wait_for()  # the inputs stay usable
    assert page.locator('[data-testid="stPlotlyChart"]').count() == 0
    assert_no_exception(page)
    page.screenshot(path=str(screenshots / "cg-errors.png"))
