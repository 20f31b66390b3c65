"""Offline HTML export: a run or a CG explorer view as one self-contained file.

Structure is checked by parsing the HTML (script sources, the slider, escaping) and by
rebuilding each update's figure from the embedded base + patch and comparing it with
the figure builder's own output; the browser test opens the file from disk with the
network blocked, moves the slider and watches the charts follow.
"""

from __future__ import annotations

import argparse
import base64
import html
import json
import math
import os
import shutil
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from trpo_viz.figures import trpo as trpo_figures
from trpo_viz.figures.html import figure_dict, plain, plotly_js, script_json
from trpo_viz.runs import html as run_export
from trpo_viz.trpo.record import LineSearchCandidate, UpdateRecord

EVIL = "</script><script>alert(1)</script>"
GRID = 17


# ----------------------------------------------------------------------------- synthetic runs


def synthetic_record(update: int, rng: np.random.Generator) -> UpdateRecord:
    """A plausible update: CG residuals falling geometrically, a backtracking line search."""
    max_kl = 0.01
    fractions = [0.5**i for i in range(int(rng.integers(1, 6)))]
    accepted = bool(rng.random() > 0.15)
    candidates = [LineSearchCandidate(fraction=f, kl=max_kl * 1.6 * f * f, surrogate=0.01 * f,
                                      improvement=0.01 * f - 0.002 * f * f,
                                      expected_improvement=0.012 * f) for f in fractions]
    iterations = int(rng.integers(3, 11))
    residuals = (np.geomspace(1.0, 10.0 ** -rng.uniform(2, 6), iterations + 1)
                 * rng.uniform(0.5, 2)).tolist()
    return UpdateRecord(
        update=update, total_timesteps=2048 * (update + 1),
        episode_returns=(20 + update * 0.5 + rng.normal(0, 5, 4)).tolist(),
        episode_lengths=[50, 60, 70, 80], max_kl=max_kl,
        kl=candidates[-1].kl if accepted else 0.0, expected_improvement=0.012,
        actual_improvement=candidates[-1].improvement if accepted else 0.0,
        candidates=candidates, accepted_index=len(candidates) - 1 if accepted else None,
        accepted=accepted, backtracks=len(candidates) - 1,
        step_fraction=fractions[-1] if accepted else 0.0, step_norm=0.3,
        cg_iterations=iterations, cg_stop_reason="max_iter", cg_residuals=residuals,
        cg_curvatures=rng.uniform(0.5, 2.0, iterations).tolist(),
    )


def synthetic_slice(record: UpdateRecord, rng: np.random.Generator) -> dict:
    """A compact slice as the run store holds it (float32 arrays, see live.compact_slice)."""
    alphas = np.linspace(-0.5, 1.5, GRID, dtype=np.float32)
    betas = np.linspace(-1.0, 1.0, GRID, dtype=np.float32)
    a, b = np.meshgrid(alphas, betas)
    form = np.array([[2.0, 0.3], [0.3, 1.5]]) * record.max_kl * rng.uniform(0.8, 1.2)
    kl = 0.5 * (form[0, 0] * a * a + 2 * form[0, 1] * a * b + form[1, 1] * b * b)
    candidates = np.array([[c.fraction, 0.0] for c in record.candidates], np.float32)
    return {
        "alphas": alphas, "betas": betas,
        "improvement": (rng.uniform(0.5, 2) * (0.012 * a + 0.004 * b - 0.003 * a * a)
                        ).astype(np.float32),
        "kl": kl.astype(np.float32), "quadratic_form": form.astype(np.float32),
        "candidates": candidates, "max_kl": record.max_kl,
        "accepted": (record.step_fraction, 0.0) if record.accepted else None,
    }


def synthetic_run(updates: int, seed: int = 0, every_slice: int = 1):
    rng = np.random.default_rng(seed)
    records = [synthetic_record(u, rng) for u in range(updates)]
    slices = {r.update: synthetic_slice(r, rng) for r in records if r.update % every_slice == 0}
    return records, slices


CONFIG = {"env_id": "CartPole-v1", "seed": 3, "max_kl": 0.01, "hidden_sizes": [32, 32]}


@pytest.fixture(scope="module")
def run():
    records, slices = synthetic_run(12, every_slice=1)
    del slices[4]  # an update without a stored slice
    return records, slices


@pytest.fixture(scope="module")
def run_page(run):
    records, slices = run
    return run_export.run_html("CartPole demo", CONFIG, records, slices)


# ----------------------------------------------------------------------------- parsing


class Scan(HTMLParser):
    """Every tag with its attributes, and the text of each script element."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []
        self.scripts: list[tuple[dict, str]] = []
        self._script: dict | None = None
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag == "script":
            self._script = dict(attrs)
            self.scripts.append((self._script, ""))

    def handle_endtag(self, tag):
        if tag == "script":
            self._script = None

    def handle_data(self, data):
        if self._script is not None:
            attrs, text = self.scripts[-1]
            self.scripts[-1] = (attrs, text + data)
        else:
            self.text.append(data)


def scan(document: str) -> Scan:
    parser = Scan()
    parser.feed(document)
    parser.close()
    return parser


def page_data(document: str) -> dict:
    (data,) = [text for attrs, text in scan(document).scripts if attrs.get("id") == "page-data"]
    return json.loads(data)


def check_self_contained(document: str) -> Scan:
    """plotly.js exactly once, no script or stylesheet from anywhere, network refused."""
    bundle = plotly_js()
    assert document.count(bundle) == 1
    assert document.count(bundle[:300]) == 1  # no second copy of its header either
    parsed = scan(document)
    assert [attrs for attrs, _ in parsed.scripts if "src" in attrs] == []
    assert [a for tag, a in parsed.tags if tag == "link"] == []
    (csp,) = [a["content"] for tag, a in parsed.tags
              if tag == "meta" and a.get("http-equiv") == "Content-Security-Policy"]
    assert "default-src 'none'" in csp and "connect-src" not in csp
    # Every script element the page opened is closed by its own end tag: nothing broke out.
    assert document.count("</script>") == len(parsed.scripts) == 3
    return parsed


def typed(spec) -> np.ndarray:
    """A Plotly typed array (or list) as numpy."""
    if isinstance(spec, dict):
        dtype = {"f4": "<f4", "f8": "<f8", "i1": "i1", "i2": "<i2", "i4": "<i4",
                 "u1": "u1"}[spec["dtype"]]
        array = np.frombuffer(base64.b64decode(spec["bdata"]), dtype=dtype)
        if "shape" in spec:
            array = array.reshape([int(s) for s in spec["shape"].split(",")])
        return array.astype(np.float64)
    return np.asarray(spec, dtype=np.float64)


def rebuilt(chart: dict, i: int) -> dict | None:
    """What the page's JavaScript ``figureAt`` builds (same merge rule: null removes)."""
    entry = chart["updates"][i]
    if entry is None:
        return None

    def merge(base, patch):
        out = dict(base)
        for key, value in patch.items():
            if value is None:
                out.pop(key, None)
            else:
                out[key] = value
        return out

    data = [merge({} if j is None else chart["traces"][j], patch) for j, patch in entry["traces"]]
    return {"data": data, "layout": merge(chart["layout"], entry["layout"])}


def without_none(value):
    if isinstance(value, dict):
        return {k: without_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [without_none(v) for v in value]
    return value


# ----------------------------------------------------------------------------- the run page


def test_run_page_is_self_contained(run_page):
    parsed = check_self_contained(run_page)
    own = [text for attrs, text in parsed.scripts if attrs.get("type") == "text/javascript"][-1]
    assert "fetch(" not in own and "XMLHttpRequest" not in own and "http" not in own


def test_slider_has_one_position_per_update(run, run_page):
    records, _ = run
    (slider,) = [a for tag, a in scan(run_page).tags if a.get("id") == "update-slider"]
    assert slider["type"] == "range" and slider["step"] == "1"
    assert int(slider["max"]) - int(slider["min"]) + 1 == len(records)
    data = page_data(run_page)
    assert [u["label"] for u in data["updates"]] == [r.update + 1 for r in records]
    for chart in data["charts"].values():
        assert len(chart["updates"]) == len(records)
    assert {"prev", "next", "play"} <= {a.get("id") for tag, a in scan(run_page).tags}


def test_every_update_rebuilds_to_the_builders_own_figure(run, run_page):
    records, slices = run
    charts = page_data(run_page)["charts"]
    builders = {
        "cg": lambda r: trpo_figures.cg_residuals_figure(r),
        "line_search": lambda r: trpo_figures.line_search_figure(r),
        "slice": lambda r: (None if r.update not in slices
                            else trpo_figures.trust_region_slice_figure(slices[r.update])),
    }
    for kind, build in builders.items():
        for i, record in enumerate(records):
            fig = build(record)
            got = rebuilt(charts[kind], i)
            if fig is None:
                assert got is None
                continue
            assert without_none(got) == without_none(figure_dict(fig)), (kind, i)
    assert charts["slice"]["updates"][4] is None and charts["slice"]["updates"][5] is not None


def test_patches_leave_out_what_does_not_change(run, run_page):
    charts = page_data(run_page)["charts"]
    later = charts["slice"]["updates"][7]
    contour = later["traces"][0]
    assert contour[0] == 0  # patched onto the base figure's first trace
    assert "z" in contour[1]  # the surface changed
    assert "x" not in contour[1] and "colorscale" not in contour[1]  # the grid and style did not
    assert "template" not in later["layout"]  # one layout per chart kind


def test_embedded_numbers_are_the_records_numbers(run, run_page):
    records, slices = run
    charts = page_data(run_page)["charts"]
    record = records[9]
    residuals = typed(rebuilt(charts["cg"], 9)["data"][0]["y"])
    np.testing.assert_allclose(residuals, record.cg_residuals, rtol=1e-6)
    z = typed(rebuilt(charts["slice"], 9)["data"][0]["z"])
    np.testing.assert_allclose(z, slices[9]["improvement"], rtol=1e-6)


def test_float32_only_where_faithful():
    small = plain(np.array([1.0, 1e-300, np.nan]))  # 1e-300 is below float32's range
    assert small["dtype"] == "f8"
    np.testing.assert_array_equal(typed(small), [1.0, 1e-300, np.nan])
    wide = plain(np.array([[1.5, -2.25], [3e30, np.inf]]))
    assert wide["dtype"] == "f4" and wide["shape"] == "2,2"
    np.testing.assert_array_equal(typed(wide), np.array([[1.5, -2.25], [3e30, np.inf]],
                                                        np.float32))
    big = plain(np.array([2**40, 1], np.int64))
    assert big["dtype"] == "f8" and typed(big).tolist() == [2.0**40, 1.0]
    assert plain([math.nan, 1.0, np.float32(2)]) == [None, 1.0, 2.0]
    exact = plain(np.array([1 / 3, 2.0]), float32=False)
    assert exact["dtype"] == "f8" and typed(exact).tolist() == [1 / 3, 2.0]
    assert plain(np.array([0.5], np.float32), float32=False)["dtype"] == "f4"


def test_user_text_is_escaped_everywhere(run):
    records, slices = run
    hostile = [UpdateRecord(**{**r.__dict__, "cg_stop_reason": EVIL}) for r in records]
    config = CONFIG | {"env_id": "<b>Evil-v0</b> & co", "note": EVIL}
    document = run_export.run_html(EVIL, config, hostile, slices)
    check_self_contained(document)  # still exactly three script elements
    assert EVIL not in document and "<b>Evil" not in document
    assert html.escape(EVIL) in document and "&lt;b&gt;Evil-v0&lt;/b&gt; &amp; co" in document
    text = "".join(scan(document).text)
    assert EVIL in text  # shown as text, title and heading
    data = page_data(document)
    assert EVIL in data["updates"][0]["text"]  # the JSON round trip keeps the text exact


def test_script_json_cannot_close_the_script_element():
    value = {"a": "</script><!-- &amp; \u2028", "b": [1.5, None]}
    text = script_json(value)
    assert "<" not in text and ">" not in text and "&" not in text and "\u2028" not in text
    assert json.loads(text) == value
    with pytest.raises(ValueError):
        script_json(math.nan)


def test_empty_run_has_no_slider():
    document = run_export.run_html("empty", CONFIG, [], {})
    check_self_contained(document)
    assert [a for tag, a in scan(document).tags if tag == "input"] == []
    assert "no updates yet" in document
    assert page_data(document)["updates"] == []


def test_long_runs_replay_an_evenly_spaced_subsample(monkeypatch):
    indices = run_export.replayed_indices(5000, 1000)
    assert len(indices) == 1000 and indices[0] == 0 and indices[-1] == 4999
    assert max(np.diff(indices)) - min(np.diff(indices)) <= 1
    assert run_export.replayed_indices(7, 10) == list(range(7))
    monkeypatch.setattr(run_export, "MAX_REPLAYED", 5)
    records, slices = synthetic_run(12)
    document = run_export.run_html("long", CONFIG, records, slices)
    data = page_data(document)
    assert [u["label"] for u in data["updates"]] == [1, 4, 7, 9, 12]
    assert "replays 5 of them" in document
    assert len(data["charts"]["cg"]["updates"]) == 5


def test_file_size_grows_by_kilobytes_per_update():
    """Measured sizes (see the report): the data per update stays a few kB."""
    sizes = {}
    for updates in (8, 24):
        records, slices = synthetic_run(updates)
        sizes[updates] = len(run_export.run_html("size", CONFIG, records, slices).encode())
    per_update = (sizes[24] - sizes[8]) / 16
    assert per_update < 12_000, per_update
    assert sizes[8] < len(plotly_js()) + 300_000


# ----------------------------------------------------------------------------- exact Fisher


@pytest.fixture(scope="module")
def exact_run():
    """A tiny real run with the exact Fisher; its second update is replaced by the same
    seed's second update over the exact-Fisher cap (a record without exact data)."""
    from trpo_viz.trpo import TRPOTrainer, default_config

    small = dict(n_envs=2, n_steps=128, value_batch_size=64, value_epochs=1, hidden_sizes=(8,),
                 exact_fisher=True)
    records = {}
    for name, cap in (("exact", 20_000), ("skipped", 10)):
        trainer = TRPOTrainer(default_config("CartPole-v1", exact_fisher_max_params=cap, **small))
        try:
            records[name] = [trainer.step() for _ in range(3)]
        finally:
            config = trainer.config
            trainer.close()
    mixed = [records["exact"][0], records["skipped"][1], records["exact"][2]]
    return config.to_dict(), mixed


@pytest.fixture(scope="module")
def exact_page(exact_run):
    config, records = exact_run
    return run_export.run_html("exact Fisher", config, records, {})


def test_exact_fisher_charts_travel_with_a_run_that_has_them(exact_run, exact_page):
    from trpo_viz.figures import fisher as fisher_figures
    from trpo_viz.figures.fisher_spectrum import fisher_spectrum_figure

    config, records = exact_run
    check_self_contained(exact_page)
    ids = {a.get("id") for _, a in scan(exact_page).tags}
    assert {"exact_time", "cg_exact", "spectrum"} <= ids
    data = page_data(exact_page)
    builders = {
        "cg_exact": fisher_figures.cg_vs_exact_figure,
        "spectrum": lambda r: fisher_spectrum_figure(r, config["cg_damping"]),
    }
    for kind, build in builders.items():
        for i, record in enumerate(records):
            got = rebuilt(data["charts"][kind], i)
            assert without_none(got) == without_none(figure_dict(build(record))), (kind, i)
    over_time = fisher_figures.exact_over_time_figure(records)
    assert without_none(data["exact_time"]) == without_none(figure_dict(over_time))
    assert len(data["exact_time_axes"]) == 3  # the three panels' x axis is marked


def test_embedded_exact_numbers_are_the_records(exact_run, exact_page):
    config, records = exact_run
    charts = page_data(exact_page)["charts"]
    for i in (0, 2):
        traces = {t.get("name"): t for t in rebuilt(charts["cg_exact"], i)["data"]}
        np.testing.assert_allclose(typed(traces["‖x_k − s*‖ / ‖s*‖"]["y"]),
                                   records[i].cg_exact_errors, rtol=1e-6)
        cosines = typed([math.nan if v is None else v
                         for v in traces["cos(x_k, s*)"]["y"]])
        np.testing.assert_allclose(cosines, records[i].cg_exact_cosines[1:], rtol=1e-6)
        spectrum = rebuilt(charts["spectrum"], i)["layout"]
        eigenvalues = np.asarray(records[i].fisher_eigenvalues)
        lam = config["cg_damping"]
        assert spectrum["meta"]["kappa_damped"] == pytest.approx(
            (eigenvalues.max() + lam) / (max(eigenvalues.min(), 0) + lam), rel=1e-9)
    # The update without exact data says why, in its own chart and as a gap over time.
    skipped = rebuilt(charts["cg_exact"], 1)
    assert skipped["data"] == []
    note = skipped["layout"]["annotations"][0]["text"].replace("<br>", " ")
    assert "more parameters than the run's cap" in note
    final = [t for t in page_data(exact_page)["exact_time"]["data"]
             if t.get("name", "").startswith("‖x_K")][0]["y"]
    assert final[1] is None and final[0] == pytest.approx(records[0].cg_exact_errors[-1])


def test_a_run_without_exact_data_has_no_exact_charts(run_page):
    data = page_data(run_page)
    assert set(data["charts"]) == {"cg", "line_search", "slice"}
    assert "exact_time" not in data
    assert not {"exact_time", "cg_exact", "spectrum"} & {a.get("id") for _, a in
                                                         scan(run_page).tags}


# ----------------------------------------------------------------------------- store and CLI


@pytest.fixture
def stored(tmp_path):
    from trpo_viz.runs.store import RunStore
    from trpo_viz.runs.validate import slice_to_npz
    from trpo_viz.trpo.config import default_config

    records, slices = synthetic_run(6, every_slice=2)
    path = tmp_path / "runs.sqlite3"
    with RunStore(path) as store:
        run_id = store.create_run(default_config("CartPole-v1"), name=EVIL, source="cli")
        for record in records:
            plane = slices.get(record.update)
            store.append_update(run_id, record, None if plane is None else slice_to_npz(plane),
                                None)
    return path, run_id, records


def test_export_html_reads_the_store(stored):
    from trpo_viz.runs.store import RunStore

    path, run_id, records = stored
    with RunStore(path, readonly=True) as store:
        document = run_export.export_html(store, run_id)
    check_self_contained(document)
    assert html.escape(EVIL) in document and EVIL not in document
    data = page_data(document)
    assert len(data["updates"]) == len(records)
    present = [u is not None for u in data["charts"]["slice"]["updates"]]
    assert present == [r.update % 2 == 0 for r in records]


@pytest.mark.parametrize("damage", ["junk blob", "orphan slice"])
def test_export_html_refuses_a_damaged_store(stored, damage):
    from trpo_viz.runs.store import RunStore, StoreError

    path, run_id, records = stored
    with RunStore(path) as store:
        if damage == "junk blob":
            store.db.execute("UPDATE slices SET data = ? WHERE run_id = ? AND idx = 2",
                             (b"PK not an npz", run_id))
        else:
            store.db.execute("DELETE FROM records WHERE run_id = ? AND idx = 4", (run_id,))
            store.db.execute("DELETE FROM records WHERE run_id = ? AND idx = 5", (run_id,))
        with pytest.raises(StoreError, match="damaged"):
            run_export.export_html(store, run_id)


def test_export_html_reads_one_snapshot_while_a_worker_appends(stored, monkeypatch):
    """An update committed between reading the records and the slices is not half-seen.

    Its slice without its record would look like a damaged store; read in one snapshot,
    the export holds exactly the updates committed before it began."""
    from trpo_viz.runs.store import RunStore
    from trpo_viz.runs.validate import slice_to_npz

    path, run_id, records = stored
    extra = synthetic_record(len(records), np.random.default_rng(7))
    plane = slice_to_npz(synthetic_slice(extra, np.random.default_rng(8)))
    read_records = RunStore.records

    def records_then_a_worker_appends(store, *args, **kwargs):
        out = read_records(store, *args, **kwargs)
        with RunStore(path) as worker:  # the worker's own connection commits one update
            worker.append_update(run_id, extra, plane, None)
        return out

    monkeypatch.setattr(RunStore, "records", records_then_a_worker_appends)
    with RunStore(path, readonly=True) as store:
        document = run_export.export_html(store, run_id)
        assert not store.db.in_transaction  # the snapshot is released
    data = page_data(document)
    assert [u["label"] for u in data["updates"]] == [r.update + 1 for r in records]
    monkeypatch.setattr(RunStore, "records", read_records)
    after = run_export.stored_run_html(path, run_id)  # a connection of its own
    assert len(page_data(after)["updates"]) == len(records) + 1


def test_stored_run_html_refuses_an_unknown_run_or_store(stored, tmp_path):
    from trpo_viz.runs.store import StoreError

    path, _, _ = stored
    with pytest.raises(StoreError, match="no run"):
        run_export.stored_run_html(path, "zzzzzzzzzz")
    with pytest.raises(StoreError, match="no run store"):
        run_export.stored_run_html(tmp_path / "absent.sqlite3", "zzzzzzzzzz")


# ----------------------------------------------------------------------------- page downloads


def capture_downloads(monkeypatch) -> dict:
    """Record each download button's deferred callable, by the file id its proto carries.

    AppTest's runtime drops its media file manager after every run, so the callable a
    button registered is caught on its way in: ``{file id: (callable, mime, file name)}``.
    """
    from streamlit.runtime.media_file_manager import MediaFileManager

    made: dict = {}
    register = MediaFileManager.add_deferred

    def add_deferred(self, data_callable, mimetype, coordinates, file_name=None, **kwargs):
        file_id = register(self, data_callable, mimetype, coordinates, file_name, **kwargs)
        made[file_id] = (data_callable, mimetype, file_name)
        return file_id

    monkeypatch.setattr(MediaFileManager, "add_deferred", add_deferred)
    return made


def download(at, made: dict, label: str):
    """Click-time contents of the page's download button ``label``, with its mime and name."""
    (proto,) = [b.proto for b in at.get("download_button") if b.proto.label == label]
    assert proto.deferred_file_id, f"{label!r} is not built on click"
    data_callable, mime, file_name = made[proto.deferred_file_id]
    return data_callable(), mime, file_name


def check_run_download(document: str, name: str, updates: int) -> None:
    """A page's run download: the self-contained replay of that run and its updates."""
    check_self_contained(document)
    assert f"<h1>{html.escape(name)}</h1>" in document
    assert len(page_data(document)["updates"]) == updates


def runs_cli(*argv) -> int:
    from trpo_viz.runs.command import add_runs_parser, run_runs

    parser = argparse.ArgumentParser()
    add_runs_parser(parser.add_subparsers(dest="command"))
    return run_runs(parser.parse_args(["runs", *argv]))


def test_cli_export_html_writes_the_page(stored, tmp_path):
    from trpo_viz.runs.command import RunsUsageError

    path, run_id, records = stored
    out = tmp_path / "slides" / "run.html"
    assert runs_cli("--db", str(path), "export-html", run_id, str(out)) == 0
    document = out.read_text(encoding="utf-8")
    check_self_contained(document)
    assert len(page_data(document)["updates"]) == len(records)
    with pytest.raises(RunsUsageError, match="no run"):
        runs_cli("--db", str(path), "export-html", "zzzzzzzzzz", str(tmp_path / "x.html"))
    assert not (tmp_path / "x.html").exists()


# ----------------------------------------------------------------------------- CG explorer


@pytest.fixture(scope="module")
def explorer_page():
    from trpo_viz.explorer import CompiledProblem
    from trpo_viz.figures.html import explorer_html
    from trpo_viz.presets import rotated_quadratic

    result = CompiledProblem(rotated_quadratic(50.0)).solve([0, 0], [1, 1])
    return result, explorer_html(result)


def test_explorer_page_holds_its_figures_inputs_and_table(explorer_page):
    result, document = explorer_page
    check_self_contained(document)
    figures = page_data(document)["figures"]
    assert set(figures) == {"iterates", "convergence", "spectrum", "ritz"}
    assert len(figures["iterates"]["frames"]) == result.cg.iterations + 1
    assert len(figures["ritz"]["frames"]) == result.cg.iterations + 1  # animated alike
    parsed = scan(document)
    assert sum(tag == "tr" for tag, _ in parsed.tags) >= result.cg.iterations + 2
    text = " ".join(parsed.text)
    assert result.text in text and result.cg.stop_reason in text
    # The explorer is about rounding: its numbers travel in float64, bit for bit.
    (residuals,) = [t["y"] for t in figures["convergence"]["data"]
                    if str(t.get("name")).startswith("‖r_k‖")]
    assert not isinstance(residuals, dict) or residuals["dtype"] == "f8"
    shown = typed([math.nan if v is None else v for v in residuals]
                  if isinstance(residuals, list) else residuals)
    np.testing.assert_array_equal(shown[np.isfinite(shown)],
                                  result.cg.residual_norms[result.cg.residual_norms > 0])
    iterates = figures["iterates"]["frames"][-1]["data"][1]["x"]  # CG path x1 (numpy)
    assert isinstance(iterates, dict) and iterates["dtype"] == "f8"
    np.testing.assert_array_equal(typed(iterates), result.cg.iterates[:, 0])


# ----------------------------------------------------------------------------- in a browser

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")


def offline_tab(browser, errors: list[str]):
    """A tab that may load file:// only; console errors and page errors are collected."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.route("**/*", lambda route: route.continue_() if route.request.url.startswith(
        "file://") else (errors.append(f"network: {route.request.url}"), route.abort()))
    tab = context.new_page()
    tab.set_default_timeout(60_000)
    tab.on("console", lambda m: errors.append(f"console: {m.text}") if m.type == "error" else None)
    tab.on("pageerror", lambda e: errors.append(f"pageerror: {e}"))
    return context, tab


@pytest.fixture(scope="module")
def chromium():
    from tests.browser.conftest import CHROMIUM_ARGS, unavailable

    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("playwright is not installed (pip install playwright)")
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        unavailable(f"no Chromium at {CHROMIUM} (set CHROMIUM=/path/to/chromium)")
    with sync_playwright() as playwright:
        try:
            instance = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                                  args=CHROMIUM_ARGS)
        except Exception as error:  # noqa: BLE001 - any launch failure means "no browser"
            unavailable(f"Chromium at {CHROMIUM} did not start: {error}")
        yield instance
        instance.close()


def screenshot_dir() -> Path:
    from tests.browser.conftest import SCREENSHOTS

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS


@pytest.mark.browser
def test_run_page_replays_updates_offline(chromium, run_page, run, tmp_path):
    records, _ = run
    path = tmp_path / "run.html"
    path.write_text(run_page, encoding="utf-8")
    errors: list[str] = []
    context, tab = offline_tab(chromium, errors)
    try:
        tab.goto(path.as_uri())
        number = tab.locator("#update-number")
        cg_title = tab.locator("#cg .gtitle")
        last = len(records)
        tab.wait_for_function(f"document.querySelector('#update-number').textContent === '{last}'")
        tab.wait_for_function(f"(document.querySelector('#cg .gtitle') || {{}}).textContent"
                              f"?.includes('update {last}')")
        tab.click("#prev")
        tab.wait_for_function(f"document.querySelector('#cg .gtitle').textContent"
                              f".includes('update {last - 1}')")
        assert number.text_content() == str(last - 1)
        tab.locator("#update-slider").fill("2")  # dispatches input, as dragging does
        tab.wait_for_function("document.querySelector('#cg .gtitle').textContent"
                              ".includes('update 3')")
        assert number.text_content() == "3"
        assert "update 3" in cg_title.text_content()
        # The learning curve marks the selected update; update 5 has no stored slice.
        marker_x = tab.evaluate("document.getElementById('learning').data.at(-1).x[0]")
        assert marker_x == records[2].total_timesteps
        tab.locator("#update-slider").fill("4")
        tab.wait_for_function("document.querySelector('#slice').textContent"
                              ".includes('no trust-region slice stored for update 5')")
        tab.locator("#update-slider").fill("7")
        tab.wait_for_function("document.getElementById('slice').data.length > 0")
        tab.wait_for_function("document.querySelector('#update-number').textContent === '8'")
        tab.locator("h1").click()  # focus off the slider: the arrow keys step through updates
        tab.keyboard.press("ArrowRight")
        tab.wait_for_function("document.querySelector('#update-number').textContent === '9'")
        tab.click("#play")  # plays on from here, one update at a time, and stops at the end
        tab.wait_for_function(f"document.querySelector('#update-number').textContent === "
                              f"'{last}' && document.querySelector('#play').textContent"
                              ".includes('Play')")
        tab.locator("#update-slider").fill("7")
        tab.screenshot(path=str(screenshot_dir() / "html-export-run.png"), full_page=True)
    finally:
        context.close()
    assert errors == []


@pytest.mark.browser
def test_exact_fisher_charts_follow_the_slider_offline(chromium, exact_run, exact_page,
                                                       tmp_path):
    _, records = exact_run
    path = tmp_path / "exact.html"
    path.write_text(exact_page, encoding="utf-8")
    errors: list[str] = []
    context, tab = offline_tab(chromium, errors)
    try:
        tab.goto(path.as_uri())
        tab.wait_for_function("(document.querySelector('#cg_exact .gtitle') || {})"
                              ".textContent?.includes('update 3')")
        tab.wait_for_function("document.getElementById('spectrum').data?.length > 0")
        # the over-time chart marks the selected update on each of its three panels
        tab.wait_for_function("document.getElementById('exact_time').layout?.shapes"
                              "?.filter((s) => s.x0 === 3).length === 3")
        tab.locator("#update-slider").fill("1")  # the update without exact data
        tab.wait_for_function("document.querySelector('#cg_exact').textContent"
                              ".includes('more parameters than the')")
        tab.wait_for_function("document.getElementById('exact_time').layout.shapes"
                              ".filter((s) => s.x0 === 2).length === 3")
        tab.locator("#update-slider").fill("0")
        tab.wait_for_function("document.querySelector('#cg_exact .gtitle')"
                              ".textContent.includes('update 1')")
        assert tab.evaluate("document.getElementById('cg_exact').data.length") > 0
        tab.screenshot(path=str(screenshot_dir() / "html-export-exact.png"), full_page=True)
    finally:
        context.close()
    assert errors == []
    assert len(records) == 3


@pytest.mark.browser
def test_explorer_page_animates_offline(chromium, explorer_page, tmp_path):
    result, document = explorer_page
    path = tmp_path / "cg.html"
    path.write_text(document, encoding="utf-8")
    errors: list[str] = []
    context, tab = offline_tab(chromium, errors)
    try:
        tab.goto(path.as_uri())
        tab.wait_for_function("document.getElementById('iterates')._transitionData?._frames"
                              f"?.length === {result.cg.iterations + 1}")
        tab.wait_for_function("document.querySelectorAll('#convergence .scatterlayer .trace')"
                              ".length >= 2")
        tab.screenshot(path=str(screenshot_dir() / "html-export-cg.png"), full_page=True)
    finally:
        context.close()
    assert errors == []
