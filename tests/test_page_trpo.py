"""The TRPO live page through Streamlit's AppTest (the live ticking is checked in a browser)."""

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from trpo_viz.trpo.config import default_config
from trpo_viz.trpo.live import LiveRun

PAGE = str(Path(__file__).resolve().parents[1] / "pages" / "trpo.py")


def new_page() -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=120)
    at.session_state["entered_through_app"] = True  # as app.py does before running the page
    return at


def button(at: AppTest, label: str):
    return next(b for b in at.button if label in b.label)


def test_loads_with_defaults():
    at = new_page().run()
    assert not at.exception
    assert at.selectbox(key="trpo_env").value == "CartPole-v1"
    assert any("Press **Start**" in info.value for info in at.info)


@pytest.fixture(scope="module")
def stepped():
    at = new_page().run()
    button(at, "Step").click().run()
    return at


def test_step_runs_one_update_and_draws_its_views(stepped):
    at = stepped
    assert not at.exception and not at.error
    assert any(m.value.startswith("**Update 1** of 1") for m in at.markdown)
    keys = {chart.proto.id for chart in at.get("plotly_chart")}
    assert len(at.get("plotly_chart")) >= 5, keys
    run = at.session_state["trpo_run"]
    assert len(run.records) == 1 and run.slice_for(0) is not None


def test_a_second_step_advances(stepped):
    at = stepped
    button(at, "Step").click().run()
    assert not at.exception
    assert any(m.value.startswith("**Update 2** of 2") for m in at.markdown)


def test_bad_value_shows_an_error_by_the_controls():
    at = new_page().run()
    at.text_input(key="trpo_hidden").input("64, lots").run()
    button(at, "Step").click().run()
    assert not at.exception
    assert at.error and "Hidden sizes must be integers" in at.error[0].value
    at.text_input(key="trpo_hidden").input("4096").run()
    button(at, "Step").click().run()
    assert not at.exception
    assert "limited" in at.error[0].value


def test_saved_run_loads_into_talk_mode_and_steps_through_records():
    run = LiveRun.start(default_config("CartPole-v1", n_steps=256))
    for _ in range(3):
        run.step()
    data = run.to_bytes()
    run.close()

    at = new_page()
    at.session_state["trpo_run"] = LiveRun.replay(data)
    at.run()
    assert not at.exception
    assert any(
        m.value.startswith("**Update 1** of 3") and "talk mode" in m.value for m in at.markdown
    )
    button(at, "Step").click().run()
    assert any(m.value.startswith("**Update 2** of 3") for m in at.markdown)
    replayed = at.session_state["trpo_run"].records
    assert [r.to_dict() for r in replayed] == [r.to_dict() for r in LiveRun.replay(data).records]
