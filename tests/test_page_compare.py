"""The compare page through AppTest, on a real store in a temporary data folder."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tests.page_text import errors
from trpo_viz.runs.store import RunStore
from trpo_viz.runs.worker import LoopSettings, train_loop
from trpo_viz.sweep import engine, storage
from trpo_viz.sweep import registry as registry_module
from trpo_viz.sweep.grid import build_spec, parse_grid, parse_overrides
from trpo_viz.sweep.results import load_sweep

PAGE = str(Path(__file__).resolve().parents[1] / "pages" / "compare.py")
TINY = ["n_steps=128", "hidden_sizes=16", "value_epochs=1"]


@pytest.fixture(scope="module", autouse=True)
def no_ray_left():
    yield
    for sweeps in registry_module._shared.values():
        sweeps.shutdown()
    registry_module._shared.clear()
    engine.shutdown()


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("TRPO_VIZ_HOME", str(tmp_path))
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    return tmp_path


def new_page(sweep_id: str | None = None) -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=180)
    at.session_state["entered_through_app"] = True
    if sweep_id is not None:
        at.query_params["sweep"] = sweep_id
    return at


def stored_sweep(home: Path) -> str:
    """A finished 2-setting × 2-seed sweep, trained in this process (no Ray needed)."""
    spec = build_spec("CartPole-v1", 512, parse_grid(["max_kl=0.01,0.05"]), 2,
                      overrides=parse_overrides(TINY))
    with RunStore(home / "runs.sqlite3") as store:
        planned = storage.prepare_trials(store, "stored01", spec)
        for p in planned:
            store.command(p.run_id, "run")
            assert train_loop(store, p.run_id, LoopSettings(paused_grace=0, slices=False,
                                                            rollout_every=None)) == "finished"
    return "stored01"


def test_an_empty_store_says_how_to_start_and_plans_the_default(home):
    at = new_page().run()
    assert not at.exception
    assert any("No sweeps yet" in info.value for info in at.info)
    assert any("1 setting × 3 seeds = **3 trials**" in m.value for m in at.markdown)
    # Where the trials run, in one sentence (no parentheses inside parentheses).
    assert any("Trials run as Ray tasks on a local Ray instance on this machine, one trial per "
               "CPU (" in c.value and "CPUs); they are stored in the run library." in c.value
               for c in at.caption)


def test_a_bad_grid_is_explained_and_cannot_start(home):
    at = new_page().run()
    at.text_input(key="compare_grid_max_kl").set_value("0.01, abc").run()
    assert not at.exception
    assert any("'abc' is not a number" in e for e in errors(at))
    start = [b for b in at.button if b.label == "Start"]
    assert start and start[0].disabled
    at.text_input(key="compare_grid_max_kl").set_value("0.01, 0.02").run()
    at.number_input(key="compare_seeds").set_value(40).run()
    at.text_input(key="compare_grid_cg_damping").set_value("0.1, 0.2, 0.3").run()
    assert any("240 trials" in e for e in errors(at))  # more than the stated limit


def test_variants_can_be_compared(home):
    """The ablation variants are a grid key on the page; a bad name is refused by name."""
    at = new_page().run()
    at.text_input(key="compare_grid_variant").set_value("trpo, vanilla-pg").run()
    assert not at.exception and not at.error
    assert any("2 settings × 3 seeds = **6 trials**" in m.value for m in at.markdown)
    at.text_input(key="compare_grid_variant").set_value("trpo, bogus").run()
    assert any("variant must be one of" in e for e in errors(at))


def test_a_stored_sweep_shows_progress_summary_and_downloads(home):
    sweep_id = stored_sweep(home)
    at = new_page(sweep_id).run()
    assert not at.exception
    summary = at.dataframe[0].value
    assert list(summary["setting"]) == ["max_kl=0.01", "max_kl=0.05"]
    assert list(summary["finished seeds"]) == ["2/2", "2/2"]
    with RunStore(home / "runs.sqlite3", readonly=True) as store:
        results = load_sweep(store, sweep_id)
    for row, s in zip(summary.itertuples(), results.summary, strict=True):
        finals = [t.final_mean_return for t in results.trials if t.label == s.label]
        assert row.IQM == pytest.approx(sum(finals) / 2)  # two seeds: IQM is their mean
    trials = at.dataframe[1].value
    assert len(trials) == 4 and set(trials["status"]) == {"finished"}
    assert all(link.startswith("/trpo?run=") for link in trials["run"])
    assert len(at.get("progress")) == 4
    labels = {b.label for b in at.get("download_button")}
    assert labels == {"Summary (.csv)", "Trials (.csv)", "Report (.html)"}
    assert any("rough" in c.value for c in at.caption)  # 2 seeds: say so


def test_a_link_to_an_unknown_or_malformed_sweep_is_refused(home):
    at = new_page("zzzzzzzz").run()
    assert not at.exception
    assert any("no sweep 'zzzzzzzz'" in e for e in errors(at))
    at = new_page("../../etc").run()
    assert not at.exception
    assert any("not a sweep id" in e for e in errors(at))
    at = new_page("**[x](y)**").run()  # the link's text is shown as typed, not as Markdown
    assert not at.exception
    assert any("'**[x](y)**' is not a sweep id" in e for e in errors(at))
    assert any(r"\*\*\[x\]\(y\)\*\*" in e.value for e in at.error)


def test_start_runs_a_tiny_sweep_on_local_ray_and_the_page_shows_it(home):
    at = new_page().run()
    at.number_input(key="compare_steps").set_value(256).run()
    at.number_input(key="compare_seeds").set_value(1).run()
    at.text_input(key="compare_grid_max_kl").set_value("0.01, 0.05").run()
    at.text_input(key="compare_fixed").set_value(", ".join(TINY)).run()
    assert any("2 settings × 1 seeds = **2 trials**" in m.value for m in at.markdown)
    [start] = [b for b in at.button if b.label == "Start"]
    start.click().run()
    assert not at.exception
    sweep_id = at.query_params["sweep"]
    sweep_id = sweep_id if isinstance(sweep_id, str) else sweep_id[0]
    assert any(f"Sweep {sweep_id} started" in s.value for s in at.success)
    sweeps = registry_module.shared_sweeps(home / "runs.sqlite3")
    assert sweeps.wait(sweep_id, timeout=600), "the sweep did not end"
    assert sweeps.handle(sweep_id).state == "done", sweeps.handle(sweep_id).error
    at = new_page(sweep_id).run()
    assert not at.exception
    assert list(at.dataframe[0].value["finished seeds"]) == ["1/1", "1/1"]
    assert any("one finished seed has no interval" in c.value for c in at.caption)


def test_stop_cancels_a_running_sweep_from_the_page(home):
    at = new_page().run()
    at.number_input(key="compare_steps").set_value(256 * 400).run()
    at.number_input(key="compare_seeds").set_value(3).run()
    at.number_input(key="compare_parallel").set_value(1).run()
    at.text_input(key="compare_fixed").set_value(", ".join(TINY)).run()
    [start] = [b for b in at.button if b.label == "Start"]
    start.click().run()
    sweep_id = at.query_params["sweep"]
    sweep_id = sweep_id if isinstance(sweep_id, str) else sweep_id[0]
    sweeps = registry_module.shared_sweeps(home / "runs.sqlite3")

    def trained() -> bool:
        if not (home / "runs.sqlite3").exists():
            return False
        with RunStore(home / "runs.sqlite3", readonly=True) as store:
            return any(r.updates >= 1 for r in store.runs())

    wait_for(trained, "a stored update")
    at = new_page(sweep_id).run()
    [stop] = [b for b in at.button if b.label == "Stop"]
    stop.click().run()
    assert any("Stopping" in i.value for i in at.info)
    assert sweeps.wait(sweep_id, timeout=300), "the sweep did not stop"
    with RunStore(home / "runs.sqlite3", readonly=True) as store:
        statuses = [t.status for t in load_sweep(store, sweep_id).trials]
    assert statuses == ["cancelled"] * 3
    at = new_page(sweep_id).run()
    assert not at.exception and not [b for b in at.button if b.label == "Stop"]
    assert any("No trial has finished yet" in i.value for i in at.info)


def wait_for(predicate, what: str, timeout: float = 600.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")
