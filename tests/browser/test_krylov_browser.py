"""The CG explorer's Krylov view, line-up and negative-curvature advice in headless Chromium."""

from __future__ import annotations

from urllib.parse import urlencode

import pytest

from tests.browser.support import publish_to_docs, timeout_ms, wait_until_script_idle
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
    ritz = page.locator('[data-testid="stPlotlyChart"]', has=page.locator(
        ".gtitle", has_text="Ritz values per iteration")).first
    ritz.locator(".slider-container").first.wait_for()  # animated: Play and a slider over k
    ritz.screenshot(path=str(screenshots / "cg-krylov-ritz.png"))
    publish_to_docs(screenshots / "cg-krylov-ritz.png", "screenshot-krylov.png")


def test_n_1000_preset_krylov_view_and_lanczos(page, streamlit_server, screenshots):
    """The built-in n = 1,000 logistic regression: Ritz values over the exact spectrum, no
    n × n heatmaps, and Lanczos on HVPs with its κ estimate beside the exact κ."""
    query = urlencode({"expr": "@logistic_regression", "theta": "0", "g": "1"})
    page.goto(f"{streamlit_server}/cg?{query}")
    page.locator(".gtitle", has_text="Ritz values per iteration").first.wait_for(
        timeout=timeout_ms(300))  # compiles f, its HVP and H by 1,000 HVPs
    assert_no_exception(page)
    assert page.locator(".gtitle", has_text="Error per eigencomponent").count() == 0  # n > 200
    wait_until_script_idle(page)  # the page's own run is over: the click starts a new one
    page.get_by_text("Spectrum without H").first.click()
    page.get_by_role("button", name="Estimate the spectrum").click()
    try:  # 30 Lanczos HVPs and the SLQ starts: seconds, unless the click was lost
        page.get_by_text("κ estimate θ_max/θ_min").first.wait_for(timeout=timeout_ms(120))
    except Exception:
        full_height(page)
        page.screenshot(path=str(screenshots / "cg-n1000-lanczos-failed.png"), full_page=True)
        raise
    page.locator(".legendtext", has_text="SLQ estimate").first.wait_for(timeout=timeout_ms(120))
    assert page.get_by_text("exact κ").count() >= 1
    assert_no_exception(page)
    full_height(page)
    page.screenshot(path=str(screenshots / "cg-n1000-lanczos.png"), full_page=True)


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
