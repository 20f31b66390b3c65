"""The TRPO live page through Streamlit's AppTest (the live ticking is checked in a browser)."""

import re
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


def shown(text: str) -> str:
    """What the page shows for an escaped plain-text string (Markdown escapes removed)."""
    return re.sub(r"\\(.)", r"\1", text)


def errors(at: AppTest) -> list[str]:
    return [shown(e.value) for e in at.error]


def captions(at: AppTest) -> list[str]:
    return [shown(c.value) for c in at.caption]


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
    assert errors(at) == ["Hidden sizes: whole numbers separated by commas, e.g. 64, 64 "
                          "('lots' is not one)"]  # fmt: skip
    at.text_input(key="trpo_hidden").input(" , ").run()
    button(at, "Step").click().run()
    assert errors(at) == ["Hidden sizes: give at least one layer size, e.g. 64, 64"]
    at.text_input(key="trpo_hidden").input("4096").run()
    button(at, "Step").click().run()
    assert not at.exception
    assert "limited" in errors(at)[0]
    assert at.session_state["trpo_run"] is None  # nothing was built from a refused form


def test_error_text_is_plain_text_not_markdown():
    at = new_page().run()
    typed = "**64**[x](http://e)$x$:red[y]"  # one "layer size", echoed in the message
    at.text_input(key="trpo_hidden").input(typed).run()
    button(at, "Step").click().run()
    value = at.error[0].value
    # Every Markdown-active character of the user's text arrives escaped.
    for fragment in ("\\*\\*64\\*\\*", "\\[x\\]\\(http\\:", "\\$x\\$", "\\:red\\[y\\]"):
        assert fragment in value, value
    assert f"{typed!r} is not one" in shown(value)


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("trpo_max_kl_CartPole-v1", 1e-7, "δ (max KL): must be between 1e-06 and 1, got 1e-07"),
        ("trpo_max_kl_CartPole-v1", 1.5, "δ (max KL): must be between 1e-06 and 1, got 1.5"),
        ("trpo_gamma_CartPole-v1", 1.001, "γ (discount): must be between 0 and 1, got 1.001"),
        ("trpo_lambda_CartPole-v1", -0.1, "λ (GAE): must be between 0 and 1, got -0.1"),
        ("trpo_total_CartPole-v1", 500, "Total timesteps: must be between 1000 and 2e+06"),
    ],
)
def test_out_of_range_values_are_refused_never_replaced(key, value, message):
    at = new_page().run()
    at.number_input(key=key).set_value(value).run()
    button(at, "Step").click().run()
    assert not at.exception
    assert len(errors(at)) == 1 and errors(at)[0].startswith(message), errors(at)
    assert at.session_state["trpo_run"] is None


def test_full_ranges_are_applied_exactly_and_the_run_finishes_at_its_limit():
    at = new_page().run()
    at.number_input(key="trpo_max_kl_CartPole-v1").set_value(1e-6)
    at.number_input(key="trpo_gamma_CartPole-v1").set_value(1.0)
    at.number_input(key="trpo_lambda_CartPole-v1").set_value(0.0)
    at.number_input(key="trpo_total_CartPole-v1").set_value(1_000)
    at.selectbox(key="trpo_fvp_dtype").set_value("float64")
    at.run()
    button(at, "Step").click().run()
    assert not at.exception and not at.error, errors(at)
    run = at.session_state["trpo_run"]
    config = run.config
    assert (config.max_kl, config.gamma, config.gae_lambda) == (1e-6, 1.0, 0.0)
    assert config.fvp_dtype == "float64" and run.records[0].cg_dtype == "float64"
    applied = next(c for c in captions(at) if c.startswith("Applied to this run"))
    for text in ("δ = 1e-06", "γ = 1,", "λ_GAE = 0,", "FVP/CG in float64", "1,000 total"):
        assert text in applied, applied
    # One batch of 1,024 steps passes the 1,000-step limit: the run is finished.
    assert len(run.records) == 1 and run.finished
    assert any("finished (1,024 timesteps reached" in shown(s.value) for s in at.success)
    assert any("finished" in m.value for m in at.markdown if m.value.startswith("**Update 1**"))
    assert button(at, "Step").disabled and button(at, "Start").disabled
    # The CG chart says which part of its curve is rounding, in plain text.
    assert any("true residual ‖g − (F+λI)s‖" in c for c in captions(at))
    ev = next(m for m in at.markdown if m.value.startswith("Explained variance:"))
    assert "1 − Var(R − V) / Var(R)" in ev.proto.help
    # A changed form is reported as not applied to the running run.
    at.number_input(key="trpo_max_kl_CartPole-v1").set_value(0.02).run()
    assert any("differs from this run in δ (max KL)" in c for c in captions(at))
    assert len(at.session_state["trpo_run"].records) == 1


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
