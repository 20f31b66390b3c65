"""A TRPO run as one self-contained HTML file: open it on a laptop, no Python, no network.

The page shows the run's settings, its learning curve and trust-region history, and
a slider (with ◀ / ▶ buttons, ←/→ keys and Play) over the updates that switches the
per-update charts: CG residuals, line search and the trust-region slice. The learning
curve and history mark the selected update. A run with the exact Fisher
(``exact_fisher``: at least one update computed it) adds, per update, CG against the
exact natural gradient and the Fisher's spectrum (:mod:`trpo_viz.figures.fisher`,
:mod:`trpo_viz.figures.fisher_spectrum`; an
update without exact data says why), and the exact natural gradient over the run,
which marks the selected update too.

Size: plotly.js (about 4.8 MB) is inlined once. Each chart kind travels as one base
figure (the first update's) plus, per update, only the top-level layout keys and trace
keys that differ from it; numeric arrays are Plotly typed arrays (base64 float32), so
an update costs a few kB, mostly its 17×17 slice grids. Runs longer than
``MAX_REPLAYED`` updates replay an evenly spaced subsample of that many updates
(first and last included); the page says so. The learning curve and history always
show every update.
"""

from __future__ import annotations

import contextlib
import html
import json
import math

import numpy as np

from trpo_viz.figures import fisher as fisher_figures
from trpo_viz.figures import trpo as trpo_figures
from trpo_viz.figures.fisher_spectrum import fisher_spectrum_figure
from trpo_viz.figures.html import PLOT_CONFIG, definition_list, figure_dict, html_page, split_common

MAX_REPLAYED = 1000  # updates with their own CG, line-search and slice charts in one file
PLAY_MS = 700  # Play: one update per this many milliseconds


def export_html(store, run_id: str) -> str:
    """The stored run ``run_id`` as one HTML document (:class:`StoreError` if unknown/damaged).

    The run's row, records and slices are read in one read transaction (one snapshot of
    the database), so a worker appending updates meanwhile cannot make a slice appear
    without its record; ``store`` must be a connection no other thread uses meanwhile.
    """
    from trpo_viz.runs.schema import StoreError
    from trpo_viz.runs.validate import slice_from_npz

    with _snapshot(store.db):
        info = store.run(run_id)
        records = store.records(run_id)
        stored_slices = store.slices(run_id)
    by_update = {record.update: record for record in records}
    slices = {}
    for update, data in stored_slices.items():
        if update not in by_update:  # written with its record in one transaction
            raise StoreError(f"the run store is damaged: the slice of update {update + 1} "
                             "has no record")
        slices[update] = slice_from_npz(data, by_update[update])
    return run_html(info.name, json.loads(info.config_json), records, slices)


def stored_run_html(db_path, run_id: str) -> str:
    """:func:`export_html` on a read-only connection of its own to the store at ``db_path``.

    For a page's download, built on click in a thread of the server's pool: it shares no
    connection with the page's script threads, and holds nothing of the page.
    """
    from trpo_viz.runs.store import RunStore

    with RunStore(db_path, readonly=True) as store:
        return export_html(store, run_id)


@contextlib.contextmanager
def _snapshot(db):
    """One read transaction on the SQLite connection ``db`` (autocommit mode), if none is open."""
    if db.in_transaction:
        yield
        return
    db.execute("BEGIN")
    try:
        yield
    finally:
        db.execute("ROLLBACK")  # nothing was written: ending the read releases the snapshot


def replayed_indices(count: int, limit: int) -> list[int]:
    """Positions of the records that get per-update charts: all, or ``limit`` evenly spaced."""
    if count <= limit:
        return list(range(count))
    return sorted({int(round(i)) for i in np.linspace(0, count - 1, limit)})


def run_html(info_name: str, config: dict, records: list, slices: dict[int, dict]) -> str:
    """The page for a run named ``info_name`` with settings ``config`` (a TRPOConfig dict),
    its ``UpdateRecord``s and its trust-region slices by update index (missing: no chart)."""
    records = sorted(records, key=lambda r: r.update)
    env_id = str(config.get("env_id", "unknown task"))
    shown = [records[i] for i in replayed_indices(len(records), MAX_REPLAYED)]
    body = [f"<h1>{html.escape(info_name)}</h1>",
            f'<p class="sub">{html.escape(_summary(env_id, records))}</p>']
    data: dict = {"config": PLOT_CONFIG, "play_ms": PLAY_MS, "updates": []}
    if not records:
        body.append("<p>This run has no updates yet: there is nothing to replay.</p>")
    else:
        if len(shown) < len(records):
            body.append(f'<p class="note">This run has {len(records)} updates: the slider '
                        f"replays {len(shown)} of them, evenly spaced (first and last "
                        "included). The learning curve and history show every update.</p>")
        body.append(_CONTROLS.format(last=len(shown) - 1))
        charts = _charts(records, shown, slices, _damping(config))
        exact = ('<div id="exact_time" class="chart"></div><div id="cg_exact" class="chart">'
                 '</div><div id="spectrum" class="chart"></div>' if "exact_time" in charts
                 else "")
        body.append('<div class="grid"><div id="learning" class="chart"></div>'
                    '<div id="history" class="chart"></div>'
                    '<div id="cg" class="chart"></div><div id="line_search" class="chart"></div>'
                    f'<div id="slice" class="chart"></div>{exact}</div>')
        data.update(charts)
        data["updates"] = [_update_info(r, len(records)) for r in shown]
    body.append(f"<h2>Settings</h2>{definition_list(_settings(config))}")
    body.append("<footer>Exported from trpo-viz. Self-contained: opens offline, "
                "no network.</footer>")
    return html_page(f"TRPO run: {info_name}", "\n".join(body), data, _SCRIPT)


def _summary(env_id: str, records: list) -> str:
    means = [r.mean_return for r in records if r.mean_return is not None
             and math.isfinite(r.mean_return)]
    parts = [env_id, f"{len(records)} updates"]
    if records:
        parts.append(f"{records[-1].total_timesteps:,} timesteps")
    if means:
        parts.append(f"best mean return {max(means):.1f}")
    return " · ".join(parts)


def _settings(config: dict) -> list[tuple[str, str]]:
    return [(str(key), value if isinstance(value, str) else json.dumps(value))
            for key, value in config.items()]


def _update_info(record, total: int) -> dict:
    """What the page says about the selected update, and where the other charts mark it."""
    mean = record.mean_return
    finite_mean = mean is not None and math.isfinite(mean)
    verdict = (f"step accepted after {record.backtracks} backtracks" if record.accepted
               else "step rejected (θ restored)")
    text = (f"{record.total_timesteps:,} timesteps · "
            + (f"mean return {mean:.1f} over {len(record.episode_returns)} episodes · "
               if finite_mean else "no finished episode · ")
            + f"KL {record.kl:.3g} (δ = {record.max_kl:.3g}) · {verdict} · "
            f"CG {record.cg_iterations} iterations ({record.cg_stop_reason})")
    return {"label": record.update + 1, "of": total, "text": text,
            "timesteps": record.total_timesteps, "mean_return": mean if finite_mean else None}


def _damping(config: dict) -> float | None:
    """The run's CG damping λ from its settings (None if it is not a finite number ≥ 0)."""
    value = config.get("cg_damping")
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) and value >= 0 else None


def _charts(records: list, shown: list, slices: dict[int, dict],
            damping: float | None = None) -> dict:
    """The static charts whole; the per-update ones as a base figure plus patches.

    A run with exact-Fisher data (any update) also gets, per update, CG against the
    exact solution and the Fisher's spectrum (with the run's damping ``damping``), and
    the exact natural gradient over the run (marked like the history).
    """
    # Each figure becomes a plain dict at once: a thousand live Plotly figures would make
    # every garbage collection crawl through millions of their objects.
    per_update = {
        "cg": [figure_dict(trpo_figures.cg_residuals_figure(r)) for r in shown],
        "line_search": [figure_dict(trpo_figures.line_search_figure(r)) for r in shown],
        "slice": [None if slices.get(r.update) is None
                  else figure_dict(trpo_figures.trust_region_slice_figure(slices[r.update]))
                  for r in shown],
    }
    history = figure_dict(trpo_figures.trust_region_history_figure(records))
    out = {
        "learning": figure_dict(trpo_figures.learning_curve_figure(records)),
        "history": history,
        "history_axes": _axis_pairs(history["layout"]),
    }
    if any(fisher_figures.has_exact(r) for r in records):
        per_update["cg_exact"] = [figure_dict(fisher_figures.cg_vs_exact_figure(r))
                                  for r in shown]
        if damping is not None:
            per_update["spectrum"] = [
                figure_dict(fisher_spectrum_figure(r, damping)) for r in shown]
        exact_time = figure_dict(fisher_figures.exact_over_time_figure(records))
        out["exact_time"] = exact_time
        out["exact_time_axes"] = _y_axis_pairs(exact_time["layout"])
    out["charts"] = {kind: patched(figs) for kind, figs in per_update.items()}
    return out


def _axis_pairs(layout: dict) -> list[list[str]]:
    """Each x axis of a (subplot) layout with its y axis, as shape references [x, y]."""
    pairs = []
    for key in sorted(k for k in layout if k.startswith("xaxis")):
        xref = "x" + key[len("xaxis"):]
        pairs.append([xref, str((layout[key] or {}).get("anchor", "y"))])
    return pairs or [["x", "y"]]


def _y_axis_pairs(layout: dict) -> list[list[str]]:
    """Each y axis with the x axis it is anchored to (panels stacked on one shared x)."""
    pairs = []
    for key in sorted(k for k in layout if k.startswith("yaxis")):
        yref = "y" + key[len("yaxis"):]
        pairs.append([str((layout[key] or {}).get("anchor", "x")), yref])
    return pairs or [["x", "y"]]


def patched(dicts: list[dict | None]) -> dict:
    """Figures of one kind (:func:`figure_dict` dicts) as ``{"layout", "traces", "updates"}``:
    the first present figure's layout and traces, and for each figure (None: absent) the
    differences, ``{"layout": patch, "traces": [[base index or None, patch], ...]}``.

    A trace is patched onto the base trace at its own index when both have the same
    type, else it travels whole (base index None)."""
    present = [i for i, d in enumerate(dicts) if d is not None]
    if not present:
        return {"layout": {}, "traces": [], "updates": [None] * len(dicts)}
    base = dicts[present[0]]
    base_traces = base["data"]
    updates: list = [None] * len(dicts)
    layouts = split_common([dicts[i]["layout"] for i in present], base["layout"])
    for i, layout in zip(present, layouts, strict=True):
        updates[i] = {"layout": layout, "traces": [[None, trace] for trace in dicts[i]["data"]]}
    for j, base_trace in enumerate(base_traces):
        matching = [i for i in present if j < len(dicts[i]["data"])
                    and dicts[i]["data"][j].get("type") == base_trace.get("type")]
        traces = split_common([dicts[i]["data"][j] for i in matching], base_trace)
        for i, patch in zip(matching, traces, strict=True):
            updates[i]["traces"][j] = [j, patch]
    return {"layout": base["layout"], "traces": base_traces, "updates": updates}


_CONTROLS = """<div class="controls">
<button type="button" id="play" aria-label="play">▶ Play</button>
<button type="button" id="prev" aria-label="previous update">◀</button>
<input type="range" id="update-slider" min="0" max="{last}" step="1" value="{last}"
 aria-label="update">
<button type="button" id="next" aria-label="next update">▶</button>
<span>update <strong id="update-number"></strong> of <span id="update-total"></span></span>
</div>
<p id="update-text" class="sub"></p>"""

_SCRIPT = """
(function () {
  const page = JSON.parse(document.getElementById("page-data").textContent);
  const updates = page.updates;
  if (!updates.length) { return; }
  const slider = document.getElementById("update-slider");
  const clone = (value) => JSON.parse(JSON.stringify(value));

  // {...base, ...patch}, where a null in the patch removes the key.
  function merge(base, patch) {
    const out = clone(base);
    for (const [key, value] of Object.entries(patch)) {
      if (value === null) { delete out[key]; } else { out[key] = clone(value); }
    }
    return out;
  }

  function figureAt(kind, i) {
    const chart = page.charts[kind];
    const entry = chart.updates[i];
    if (entry === null) { return null; }
    const data = entry.traces.map(([j, patch]) => merge(j === null ? {} : chart.traces[j], patch));
    return {data: data, layout: merge(chart.layout, entry.layout)};
  }

  function absent(message) {
    return {data: [], layout: {
      height: 360, xaxis: {visible: false}, yaxis: {visible: false},
      annotations: [{text: message, showarrow: false, xref: "paper", yref: "paper",
                     x: 0.5, y: 0.5, font: {size: 15}}]}};
  }

  function vline([xref, yref], x) {
    return {type: "line", xref: xref, x0: x, x1: x, yref: yref + " domain", y0: 0, y1: 1,
            line: {color: "#ff7f0e", width: 2, dash: "dot"}};
  }

  // The learning curve and the per-update histories are drawn once; then only their
  // marks move. Each history marks the selected update on every x axis of its panels.
  const marker = {color: "#ff7f0e", size: 14, symbol: "diamond", line: {color: "black", width: 1}};
  const histories = [["history", page.history, page.history_axes]];
  if (page.exact_time) {
    histories.push(["exact_time", page.exact_time, page.exact_time_axes]);
  }
  let marked = false;
  function mark(info) {
    const learningShapes = (page.learning.layout.shapes || [])
      .concat([vline(["x", "y"], info.timesteps)]);
    const shapes = (figure, axes) => (figure.layout.shapes || [])
      .concat(axes.map((pair) => vline(pair, info.label)));
    const name = "update " + info.label;
    if (!marked) {
      marked = true;
      const learning = clone(page.learning);
      learning.layout.shapes = learningShapes;
      learning.data.push({type: "scatter", mode: "markers", name: name, marker: marker,
                          x: [info.timesteps], y: [info.mean_return]});
      Plotly.newPlot("learning", learning.data, learning.layout, page.config);
      for (const [id, figure, axes] of histories) {
        const drawn = clone(figure);
        drawn.layout.shapes = shapes(figure, axes);
        Plotly.newPlot(id, drawn.data, drawn.layout, page.config);
      }
      return;
    }
    Plotly.update("learning", {x: [[info.timesteps]], y: [[info.mean_return]], name: [name]},
                  {shapes: learningShapes}, [page.learning.data.length]);
    for (const [id, figure, axes] of histories) {
      Plotly.relayout(id, {shapes: shapes(figure, axes)});
    }
  }

  function draw(id, figure) {
    return Plotly.react(id, figure.data, figure.layout, page.config);
  }

  // The text follows every slider event; the charts draw at most once per frame, for the
  // latest position, so dragging through hundreds of updates stays fluid.
  let wanted = -1;
  let drawn = -1;
  let scheduled = false;
  function drawWanted() {
    scheduled = false;
    if (wanted === drawn) { return; }
    drawn = wanted;
    const info = updates[drawn];
    mark(info);
    for (const kind of Object.keys(page.charts)) {
      draw(kind, figureAt(kind, drawn) ||
           absent("no " + (kind === "slice" ? "trust-region slice" : kind) +
                  " stored for update " + info.label));
    }
  }

  function show(i) {
    i = Math.max(0, Math.min(updates.length - 1, i));
    slider.value = String(i);
    const info = updates[i];
    document.getElementById("update-number").textContent = String(info.label);
    document.getElementById("update-total").textContent = String(info.of);
    document.getElementById("update-text").textContent = info.text;
    wanted = i;
    if (!scheduled) { scheduled = true; requestAnimationFrame(drawWanted); }
  }

  let timer = null;
  const play = document.getElementById("play");
  function stop() {
    if (timer !== null) { clearInterval(timer); timer = null; play.textContent = "▶ Play"; }
  }
  play.addEventListener("click", function () {
    if (timer !== null) { stop(); return; }
    if (Number(slider.value) >= updates.length - 1) { show(0); }
    play.textContent = "❚❚ Pause";
    timer = setInterval(function () {
      const i = Number(slider.value) + 1;
      if (i >= updates.length) { stop(); } else { show(i); }
    }, page.play_ms);
  });
  slider.addEventListener("input", function () { stop(); show(Number(slider.value)); });
  document.getElementById("prev").addEventListener("click",
    function () { stop(); show(Number(slider.value) - 1); });
  document.getElementById("next").addEventListener("click",
    function () { stop(); show(Number(slider.value) + 1); });
  document.addEventListener("keydown", function (event) {
    if (event.target === slider) { return; }  // the slider moves itself
    const step = {ArrowLeft: -1, ArrowRight: 1}[event.key];
    if (step) { stop(); show(Number(slider.value) + step); event.preventDefault(); }
  });
  show(Number(slider.value));
  drawWanted();  // the first drawing does not wait for a frame (a hidden tab gets none)
})();
"""
