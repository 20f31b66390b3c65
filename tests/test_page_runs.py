"""The run library page through AppTest, on a real store in a temporary data folder."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tests.page_text import errors, shown
from tests.test_html_export import capture_downloads, check_run_download, download
from trpo_viz.runs import registry as registry_module
from trpo_viz.runs.archive import export_run
from trpo_viz.runs.store import RunStore
from trpo_viz.runs.worker import LoopSettings, train_loop
from trpo_viz.trpo.config import default_config

PAGE = str(Path(__file__).resolve().parents[1] / "pages" / "runs.py")


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("TRPO_VIZ_HOME", str(tmp_path))
    yield tmp_path
    for registry in registry_module._shared.values():
        registry.close()
    registry_module._shared.clear()


def new_page() -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=120)
    at.session_state["entered_through_app"] = True
    return at


def trained_run(home: Path, name: str) -> str:
    with RunStore(home / "runs.sqlite3") as store:
        config = default_config("CartPole-v1", n_steps=128, n_envs=2, hidden_sizes=(16,),
                                value_epochs=1, total_timesteps=512)
        run_id = store.create_run(config, name=name, desired="run")
        train_loop(store, run_id, LoopSettings(paused_grace=0))
    return run_id


def test_empty_library_says_how_to_get_runs(home):
    at = new_page().run()
    assert not at.exception
    assert any("No stored runs yet" in info.value for info in at.info)


def test_a_bad_worker_thread_setting_is_an_alert_not_a_traceback(home, monkeypatch):
    monkeypatch.setenv(registry_module.WORKER_THREADS_ENV, "two")
    at = new_page().run()
    assert not at.exception
    assert any("TRPO_VIZ_WORKER_THREADS must be a whole number" in e for e in errors(at))


def test_a_database_that_is_not_ours_is_an_alert_and_stays_untouched(home):
    garbage = b"not a database, just text" * 100
    (home / "runs.sqlite3").write_bytes(garbage)
    at = new_page().run()
    assert not at.exception
    assert any("is not a readable run store" in e for e in errors(at))
    assert (home / "runs.sqlite3").read_bytes() == garbage


def test_lists_runs_with_names_shown_as_typed(home):
    run_id = trained_run(home, "**bold** <b>name</b>")
    at = new_page().run()
    assert not at.exception
    frame = at.dataframe[0].value
    assert list(frame["name"]) == ["**bold** <b>name</b>"]
    assert list(frame["updates"]) == [2] and list(frame["status"]) == ["finished"]
    assert list(frame["open"]) == [f"/trpo?run={run_id}"]
    at.selectbox(key="runs_selected").select(run_id).run()
    assert not at.exception
    assert [shown(h.value) for h in at.subheader][0] == "**bold** <b>name</b>"
    assert r"\*\*bold\*\* \<b\>name\<\/b\>" in at.subheader[0].value  # not Markdown


def test_import_refuses_a_file_that_is_not_a_run(home):
    at = new_page().run()
    assert not at.exception
    # The uploader cannot be driven by AppTest; the import path is exercised in
    # tests/test_runs_store.py. Here: the page renders its import section.
    assert any("Import a saved run" in h.value for h in at.subheader)


def test_an_exported_run_imports_into_another_store(home, tmp_path_factory):
    run_id = trained_run(home, "original")
    with RunStore(home / "runs.sqlite3") as store:
        data = export_run(store, run_id)
    assert data[:2] == b"PK"


def test_a_chosen_run_downloads_as_zip_and_as_html_for_slides(home, monkeypatch):
    run_id = trained_run(home, "<i>for the talk</i>")
    made = capture_downloads(monkeypatch)
    at = new_page().run()
    at.selectbox(key="runs_selected").select(run_id).run()
    assert not at.exception
    archive, mime, file_name = download(at, made, "Download (.zip)")
    assert (archive[:2], mime, file_name) == (b"PK", "application/zip",
                                              f"trpo-CartPole-v1-{run_id}.zip")
    with RunStore(home / "runs.sqlite3") as store:
        assert archive == export_run(store, run_id)
    document, mime, file_name = download(at, made, "Download for slides (.html)")
    assert (mime, file_name) == ("text/html", f"trpo-CartPole-v1-{run_id}.html")
    check_run_download(document, "<i>for the talk</i>", 2)


def test_rename_and_delete_after_confirmation(home):
    run_id = trained_run(home, "first name")
    at = new_page().run()
    at.selectbox(key="runs_selected").select(run_id).run()
    assert not at.exception
    at.text_input(key=f"runs_name_{run_id}").input("  renamed   run ").run()
    next(b for b in at.button if b.label == "Rename").click().run()
    assert not at.exception
    assert list(at.dataframe[0].value["name"]) == ["renamed run"]
    delete = next(b for b in at.button if b.label == "Delete")
    assert delete.disabled  # not before the confirmation
    at.checkbox(key=f"runs_confirm_{run_id}").check().run()
    next(b for b in at.button if b.label == "Delete").click().run()
    assert not at.exception
    assert any("Deleted" in s.value for s in at.success)
    assert any("No stored runs yet" in info.value for info in at.info)
    with RunStore(home / "runs.sqlite3") as store:
        assert store.runs() == []
