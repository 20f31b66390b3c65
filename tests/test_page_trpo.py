"""The TRPO live page through AppTest, with a real run store and real worker processes.

The page never trains: its commands go to the run registry, whose worker processes train
and write to the store. Tests wait for the store to reach a state, then rerun the page
(AppTest does not fire ``run_every`` ticks; the live redraw is checked in a browser).
"""

import base64
import json
import os
import re
import time
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from tests.page_text import captions, errors, shown
from tests.test_html_export import capture_downloads, check_run_download, download
from trpo_viz.runs import registry as registry_module
from trpo_viz.runs.store import RunStore, default_db_path
from trpo_viz.runs.worker import LoopSettings, train_loop
from trpo_viz.trpo.config import default_config

PAGE = str(Path(__file__).resolve().parents[1] / "pages" / "trpo.py")
WAIT_S = 300.0 * float(os.environ.get("TRPO_VIZ_TIMEOUT_FACTOR", "1"))


@pytest.fixture(scope="module", autouse=True)
def registries():
    """Stop the workers this module's pages started (the store is the session's temp folder)."""
    yield
    for registry in registry_module._shared.values():
        registry.shutdown()
    registry_module._shared.clear()


def new_page(query: dict | None = None) -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=120)
    at.session_state["entered_through_app"] = True  # as app.py does before running the page
    for key, value in (query or {}).items():
        at.query_params[key] = value
    return at


def button(at: AppTest, label: str):
    return next(b for b in at.button if label in b.label)


def run_of(at: AppTest) -> str | None:
    value = at.query_params.get("run")
    return value[0] if isinstance(value, list) else value


def wait_for(predicate, what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def status_line(at: AppTest) -> str:
    pattern = re.compile(r"(\*\*Update \d+\*\*|No update)")
    return next(m.value for m in at.markdown if pattern.match(m.value))


def test_loads_with_defaults():
    at = new_page().run()
    assert not at.exception
    assert at.selectbox(key="trpo_env").value == "CartPole-v1"
    assert any("Press **Start**" in info.value for info in at.info)


@pytest.fixture(scope="module")
def stepped():
    """Step on a fresh page: a stored run, one update trained by a worker, then paused."""
    at = new_page().run()
    button(at, "Step").click().run()
    run_id = run_of(at)
    assert run_id, "Step creates a run and names it in the URL"
    with RunStore(default_db_path()) as store:
        wait_for(lambda: store.run(run_id).updates == 1, "the first update")
        wait_for(lambda: store.run(run_id).status == "paused", "the worker to pause")
    at.run()
    return at, run_id


def test_step_trains_one_update_in_a_worker_and_the_page_draws_it(stepped):
    at, run_id = stepped
    assert not at.exception and not at.error, errors(at)
    assert status_line(at).startswith("**Update 1** of 1")
    assert len(at.get("plotly_chart")) >= 5
    with RunStore(default_db_path()) as store:
        info = store.run(run_id)
        assert info.source == "page" and info.desired == "pause" and info.updates == 1
        assert store.slice(run_id, 0) is not None


def test_a_reload_or_a_second_tab_shows_the_same_run(stepped):
    _, run_id = stepped
    at = new_page({"run": run_id}).run()
    assert not at.exception
    assert status_line(at).startswith("**Update 1** of 1")
    assert button(at, "Resume")
    # Share: the follow link, in a code block with a copy button.
    assert any(c.value.endswith(f"/trpo?run={run_id}&follow=1") for c in at.code)


def test_a_fresh_session_on_a_run_starts_its_form_from_that_runs_settings():
    """A reload, a second tab or a link to a Hopper run: the form shows the run's own task
    and values (it showed CartPole's defaults and said they differed from the run)."""
    with RunStore(default_db_path()) as store:
        config = default_config("Hopper-v5", seed=3, variant="npg", total_timesteps=50_000)
        run_id = store.create_run(config, name="hopper for the form")
    at = new_page({"run": run_id}).run()
    assert not at.exception, at.exception
    assert at.selectbox(key="trpo_env").value == "Hopper-v5"
    assert at.number_input(key="trpo_max_kl_Hopper-v5").value == config.max_kl == 0.03
    assert at.number_input(key="trpo_damping_Hopper-v5").value == config.cg_damping
    assert at.slider(key="trpo_cg_Hopper-v5").value == config.cg_max_steps == 25
    assert at.number_input(key="trpo_total_Hopper-v5").value == 50_000
    assert at.number_input(key="trpo_seed").value == 3
    assert at.selectbox(key="trpo_variant").value == "npg"
    assert not any("differs from this run" in c for c in captions(at))
    # Chosen in this session, another task's defaults differ from the run, task first.
    at.selectbox(key="trpo_env").set_value("CartPole-v1").run()
    differs = next(c for c in captions(at) if "differs from this run" in c)
    assert differs.startswith("The form differs from this run in Task, δ (max KL)")
    at.selectbox(key="trpo_env").set_value("Hopper-v5").run()  # and back: the run's values
    assert at.number_input(key="trpo_max_kl_Hopper-v5").value == 0.03
    assert not any("differs from this run" in c for c in captions(at))


def test_a_run_whose_values_the_form_cannot_show_leaves_it_at_the_defaults():
    """A run made elsewhere (the CLI, an import) may have values beyond the sliders' ranges:
    the form keeps the task's defaults and names what differs, instead of failing."""
    with RunStore(default_db_path()) as store:
        run_id = store.create_run(default_config("CartPole-v1", cg_max_steps=80), name="wide")
    at = new_page({"run": run_id}).run()
    assert not at.exception, at.exception
    assert at.slider(key="trpo_cg_CartPole-v1").value == default_config("CartPole-v1").cg_max_steps
    assert any("differs from this run in CG iterations" in c for c in captions(at))


def test_a_follow_link_is_read_only(stepped):
    _, run_id = stepped
    at = new_page({"run": run_id, "follow": "1"}).run()
    assert not at.exception
    assert status_line(at).startswith("**Update 1** of 1")
    labels = {b.label for b in at.button}
    assert not labels & {"Start", "Resume", "Pause", "Step", "Stop", "New run"}
    assert not at.number_input and not at.selectbox  # no settings
    assert any("read-only" in c for c in captions(at))


FIGURES = ("learning_curve_figure", "trust_region_history_figure", "cg_residuals_figure",
           "line_search_figure", "trust_region_slice_figure")


def test_views_of_one_run_share_its_figures(stepped, monkeypatch):
    """Followers cost a copy of each figure, not a build: the first view builds, others share."""
    import streamlit as st

    from trpo_viz.figures import trpo as figures

    _, run_id = stepped
    built = []
    for name in FIGURES:
        original = getattr(figures, name)
        monkeypatch.setattr(figures, name, lambda *a, _f=original, _n=name, **k:
                            (built.append(_n), _f(*a, **k))[1])
    st.cache_resource.clear()
    views = [new_page({"run": run_id, "follow": "1"}).run() for _ in range(3)]
    views[0].run()  # a view's next tick with no new update builds nothing either
    for view in views:
        assert not view.exception and len(live_charts(view)) == 6  # with F's spectrum
    assert sorted(built) == sorted(FIGURES), "each figure is built once for all views"


def live_charts(at: AppTest) -> list[dict]:
    """The figures of the charts that redraw in place (app_parts.live_chart), as sent."""
    return [json.loads(json.loads(e.proto.json_args)["spec"])
            for e in at.get("component_instance")
            if e.proto.component_name == "app_parts.live_chart.live_plotly"]


def values(array) -> list[float]:
    """A plotly JSON array: a list, or a typed array (base64 ``bdata`` with its ``dtype``)."""
    if isinstance(array, dict):
        return np.frombuffer(base64.b64decode(array["bdata"]), array["dtype"]).tolist()
    return list(array)


def test_a_ticking_view_draws_live_charts_and_a_still_one_streamlit_charts(stepped):
    """A view that redraws (here: following) sends each figure to a chart that redraws in
    place; a view of a paused run uses st.plotly_chart. Both show the stored data."""
    _, run_id = stepped
    follower = new_page({"run": run_id, "follow": "1"}).run()
    owner = new_page({"run": run_id}).run()  # paused: nothing ticks
    with RunStore(default_db_path()) as store:
        records = store.records(run_id)
    returns = sorted(r for record in records for r in record.episode_returns)
    learning = live_charts(follower)[0]
    assert sorted(values(learning["data"][0]["y"])) == pytest.approx(returns)
    assert learning["layout"]["height"] > 0
    assert not live_charts(owner) and len(owner.get("plotly_chart")) == 6
    spec = json.loads(owner.get("plotly_chart")[0].proto.spec)
    assert sorted(values(spec["data"][0]["y"])) == pytest.approx(returns)


@pytest.mark.parametrize("query", [{}, {"follow": "1"}], ids=["owner", "follower"])
def test_the_run_downloads_for_slides_as_one_html_file(stepped, query, monkeypatch):
    _, run_id = stepped
    made = capture_downloads(monkeypatch)
    at = new_page({"run": run_id, **query}).run()
    assert not at.exception
    document, mime, file_name = download(at, made, "Download for slides (.html)")
    assert (mime, file_name) == ("text/html", f"trpo-CartPole-v1-{run_id}.html")
    with RunStore(default_db_path()) as store:
        info = store.run(run_id)
    check_run_download(document, info.name, info.updates)


def test_a_second_step_advances(stepped):
    at, run_id = stepped
    button(at, "Step").click().run()
    with RunStore(default_db_path()) as store:
        wait_for(lambda: store.run(run_id).updates == 2, "the second update")
    at.run()
    assert not at.exception
    assert status_line(at).startswith("**Update 2** of 2")


@pytest.mark.parametrize(
    "run_id, message",
    [("nonsense", "not a run id"), ("../../etc", "not a run id"), ("abcdefghij", "no run")],
)
def test_a_bad_run_id_in_the_url_gets_a_message(run_id, message):
    at = new_page({"run": run_id}).run()
    assert not at.exception
    assert len(at.error) == 1 and message in errors(at)[0]


def test_a_mujoco_task_says_why_its_defaults_are_not_the_zoos_numbers():
    at = new_page().run()
    assert not any("action dimensions" in c for c in captions(at))  # CartPole: the zoo's own
    at.selectbox(key="trpo_env").set_value("Hopper-v5").run()
    assert not at.exception
    assert any("δ = 0.03 and λ = 0.3" in c for c in captions(at))
    assert at.number_input(key="trpo_max_kl_Hopper-v5").value == 0.03
    assert at.number_input(key="trpo_damping_Hopper-v5").value == 0.3


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
    assert run_of(at) is None  # nothing was created from a refused form


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
    assert run_of(at) is None


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
    run_id = run_of(at)
    with RunStore(default_db_path()) as store:
        wait_for(lambda: store.run(run_id).status == "finished", "the run to finish")
        config = store.run(run_id).config
        record = store.records(run_id)[0]
    assert (config.max_kl, config.gamma, config.gae_lambda) == (1e-6, 1.0, 0.0)
    assert config.fvp_dtype == "float64" and record.cg_dtype == "float64"
    at.run()
    applied = next(c for c in captions(at) if c.startswith("Applied to this run"))
    for text in ("δ = 1e-06", "γ = 1,", "λ_GAE = 0,", "FVP/CG in float64", "1,000 total"):
        assert text in applied, applied
    # One batch of 1,024 steps passes the 1,000-step limit: the run is finished.
    assert "finished: 1,024 timesteps reached" in status_line(at)
    assert button(at, "Step").disabled and button(at, "Resume").disabled
    # The CG chart says which part of its curve is rounding, in plain text.
    assert any("true residual ‖g − (F+λI)s‖" in c for c in captions(at))
    ev = next(m for m in at.markdown if m.value.startswith("Explained variance:"))
    assert "1 − Var(R − V) / Var(R)" in ev.proto.help
    # A changed form is reported as not applied to the shown run.
    at.number_input(key="trpo_max_kl_CartPole-v1").set_value(0.02).run()
    assert any("differs from this run in δ (max KL)" in c for c in captions(at))


def test_a_stored_run_replays_update_by_update():
    """Talk mode: open a finished run and step through its stored updates."""
    with RunStore(default_db_path()) as store:
        config = default_config("CartPole-v1", n_steps=128, n_envs=2, hidden_sizes=(16,),
                                value_epochs=1, total_timesteps=768)
        run_id = store.create_run(config, name="for the talk", desired="run")
        assert train_loop(store, run_id, LoopSettings(paused_grace=0)) == "finished"
    at = new_page({"run": run_id}).run()
    assert not at.exception
    assert status_line(at).startswith("**Update 3** of 3")
    button(at, "First").click().run()
    assert status_line(at).startswith("**Update 1** of 3")
    button(at, "Next").click().run()
    assert status_line(at).startswith("**Update 2** of 3")
    assert any("talk mode" in c for c in captions(at))


# ---- Issue 11: the exact Fisher beside CG, variants, a second variant beside the run ------


def trained(store, name: str, **overrides) -> str:
    """A small finished run trained here (no worker): 3 updates of 256 steps."""
    config = default_config("CartPole-v1", n_steps=128, n_envs=2, hidden_sizes=(16,),
                            value_epochs=1, total_timesteps=768, **overrides)
    run_id = store.create_run(config, name=name, desired="run")
    assert train_loop(store, run_id, LoopSettings(paused_grace=0)) == "finished"
    return run_id


@pytest.fixture(scope="module")
def exact_run():
    with RunStore(default_db_path()) as store:
        run_id = trained(store, "exact", exact_fisher=True)
        return run_id, store.records(run_id)


def test_an_exact_fisher_run_shows_cg_against_the_exact_natural_gradient(exact_run):
    run_id, records = exact_run
    at = new_page({"run": run_id}).run()
    assert not at.exception and not at.error, errors(at)
    specs = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    titles = [json.dumps(s["layout"].get("title", "")) for s in specs]
    exact = next(s for s, t in zip(specs, titles, strict=True) if "exact" in t.lower()
                 and "over" not in t.lower() and s["data"])
    record = records[-1]
    plotted = next(values(trace["y"]) for trace in exact["data"]
                   if len(values(trace["y"])) == len(record.cg_exact_errors))
    assert plotted == pytest.approx(record.cg_exact_errors)
    assert len(specs) == 8  # + CG against s*, F's spectrum, and the exact step over time


def test_a_run_without_the_exact_fisher_says_why_and_still_shows_ritz_values(stepped):
    _, run_id = stepped
    at = new_page({"run": run_id}).run()
    assert any("exact" in i.value.lower() for i in at.info), [i.value for i in at.info]
    assert any("ritz" in json.dumps(json.loads(c.proto.spec)["data"]).lower()
               for c in at.get("plotly_chart"))


def test_the_gradient_variant_runs_no_cg_and_says_so():
    with RunStore(default_db_path()) as store:
        run_id = trained(store, "gradient", variant="gradient")
    at = new_page({"run": run_id}).run()
    assert not at.exception
    assert any("ran no CG" in shown(i.value) for i in at.info)
    assert any("variant gradient" in c for c in captions(at))


def test_variant_and_learning_rate_reach_the_run_or_are_refused():
    at = new_page().run()
    at.selectbox(key="trpo_variant").set_value("vanilla-pg").run()
    at.number_input(key="trpo_pg_lr").set_value(1000.0).run()
    button(at, "Step").click().run()
    assert any("Learning rate (vanilla-pg): must be between 0.0001 and 100" in e
               for e in errors(at)), errors(at)
    assert run_of(at) is None  # nothing was created
    at.number_input(key="trpo_pg_lr").set_value(0.5).run()
    button(at, "Step").click().run()
    run_id = run_of(at)
    with RunStore(default_db_path()) as store:
        config = store.run(run_id).config
        registry_module.shared_registry(default_db_path()).stop(run_id)
    assert (config.variant, config.pg_lr) == ("vanilla-pg", 0.5)


def test_a_second_variant_beside_the_run_has_the_same_seed_and_is_overlaid(exact_run):
    run_id, _ = exact_run
    at = new_page({"run": run_id}).run()
    at.selectbox(key="trpo_beside_variant").set_value("npg").run()
    button(at, "Start beside").click().run()
    beside = at.query_params.get("beside")
    beside = beside[0] if isinstance(beside, list) else beside
    assert beside and beside != run_id
    with RunStore(default_db_path()) as store:
        first, second = store.run(run_id).config, store.run(beside).config
        registry_module.shared_registry(default_db_path()).stop(beside)
        wait_for(lambda: store.run(beside).status in ("stopped", "finished"), "the stop")
    assert second.variant == "npg" and second.seed == first.seed
    assert second.to_dict() | {"variant": "trpo"} == first.to_dict()
    at.run()
    assert not at.exception
    assert any("beside" in s.value for s in at.subheader)
    assert any(c.value.endswith(f"&follow=1&beside={beside}") for c in at.code)


def test_a_bad_beside_id_is_a_warning_and_the_run_still_shows(exact_run):
    run_id, _ = exact_run
    at = new_page({"run": run_id, "beside": "../../x"}).run()
    assert not at.exception
    assert any("Cannot show the run beside this one" in shown(w.value) for w in at.warning)
    assert status_line(at).startswith("**Update 3** of 3")


def test_a_rollout_that_could_not_be_drawn_shows_the_workers_note():
    with RunStore(default_db_path()) as store:
        run_id = trained(store, "no rendering")
        store.put_media(run_id, "rollout-error", 99,
                        b"This machine cannot render MuJoCo (no EGL or OSMesa): test")
    at = new_page({"run": run_id}).run()
    assert not at.exception
    assert any("cannot render MuJoCo (no EGL or OSMesa): test" in shown(i.value)
               for i in at.info)
    assert not at.get("imgs")
