"""The CG explorer's Krylov view, line-up and negative-curvature advice in headless Chromium."""

from __future__ import annotations

from urllib.parse import urlencode

import pytest

from tests.browser.test_cg_browser import assert_no_exception, full_height, wait_for_page

pytestmark = pytest.mark.browser

CHARTS = 8  # iterates, convergence, spectrum, H, H⁻¹, Ritz values, p_k, eigencomponents


def test_cg_page_shows_the_krylov_view(page, streamlit_server, screenshots):
    page.goto(f"{streamlit_server}/cg")
    wait_for_page(page, charts=CHARTS)
    assert page.get_by_text("Krylov view: why CG works").first.is_visible()
    assert page.get_by_text("CG finds the extreme eigenvalues first", exact=False).count() >= 1
    for title in ("Ritz values per iteration", "Residual polynomial p_3",
                  "Error per eigencomponent"):
        assert page.locator(".gtitle", has_text=title).count() == 1, title
    assert_no_exception(page)
    full_height(page)
    page.screenshot(path=str(screenshots / "cg-krylov.png"), full_page=True)
    page.get_by_text("Ritz values per iteration").first.screenshot(
        path=str(screenshots / "cg-krylov-ritz-title.png"))


def test_saddle_offers_damping_and_the_lineup(page, streamlit_server, screenshots):
    query = urlencode({"expr": "x1**2 + x1*x2 - x2**2", "theta": "0, 0", "g": "1, 0.2"})
    page.goto(f"{streamlit_server}/cg?{query}")
    wait_for_page(page, charts=CHARTS)
    assert page.get_by_text("What negative curvature means").first.is_visible()
    page.get_by_text("Compare CG with Jacobi-PCG").first.click()
    page.locator(".legendtext", has_text="MINRES").first.wait_for()
    assert_no_exception(page)
    full_height(page)
    page.screenshot(path=str(screenshots / "cg-saddle-lineup.png"), full_page=True)
    page.get_by_role("button", name="Use damping λ").click()
    page.get_by_text("converged", exact=True).first.wait_for()
    assert page.get_by_text("What negative curvature means").count() == 0
    assert_no_exception(page)
