"""The Hessian-free cost lab (/cost) in headless Chromium: pick sizes, Measure, read the chart."""

from __future__ import annotations

import pytest

from tests.browser.support import timeout_ms
from tests.browser.test_cg_browser import assert_no_exception, full_height

pytestmark = pytest.mark.browser


def test_cost_lab_measures_both_routes_and_draws_the_log_log_chart(page, streamlit_server,
                                                                   screenshots):
    page.goto(f"{streamlit_server}/cost")
    page.get_by_text("Press Measure to time both routes", exact=False).first.wait_for(
        timeout=timeout_ms(120))  # nothing is measured before the user asks
    assert page.locator('[data-testid="stPlotlyChart"]').count() == 0
    # The default slider (N up to 3,000) measures 100, 300, 1,000 and 3,000.
    page.get_by_role("button", name="Measure").click()
    page.get_by_text("Measured 4 sizes.").first.wait_for(timeout=timeout_ms(300))
    page.locator('[data-testid="stPlotlyChart"] .legendtext').first.wait_for(
        timeout=timeout_ms(60))
    legend = " ".join(page.locator(".legendtext").all_text_contents())
    assert "explicit" in legend and "CG" in legend
    assert "extrapolated" in legend  # the explicit route's fit, dashed beyond the data
    said = sum(page.get_by_text(words, exact=False).count() for words in (
        "cross at", "Forming H was faster", "CG iterations were faster"))
    assert said >= 1  # the chart is read out in words
    # The time axis spans the sizes drawn (10² … 10⁶), not decades beyond: a crossover line
    # placed in data units on a log axis once stretched it to 10¹²⁵.
    ranges = page.evaluate(
        "() => [...document.querySelectorAll('[data-testid=\"stPlotlyChart\"] .js-plotly-plot')]"
        ".map(p => p._fullLayout.xaxis.range)")
    assert ranges and 1.0 <= ranges[0][0] and ranges[0][1] <= 7.0, ranges
    rows = page.locator('[data-testid="stDataFrame"]')
    assert rows.count() == 1
    assert_no_exception(page)
    full_height(page)
    page.screenshot(path=str(screenshots / "cost-lab.png"), full_page=True)
