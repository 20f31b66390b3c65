"""A sweep's results as CSV and as one self-contained HTML file (no Python, no network)."""

from __future__ import annotations

import csv
import datetime
import html
import io
import math

from trpo_viz.figures.html import PLOT_CONFIG, definition_list, figure_dict, html_page, html_table
from trpo_viz.sweep import figures
from trpo_viz.sweep.results import FINAL_FRACTION, SweepResults

DEFINITIONS = (
    f"Final return: the mean return of the episodes that ended in a trial's last "
    f"{FINAL_FRACTION:.0%} of updates. Per setting, over the finished seeds: the interquartile "
    "mean (IQM, the mean of the middle half; for fewer than 4 seeds the plain mean) with a 95% "
    "stratified-bootstrap percentile interval (seeds resampled with replacement); no interval "
    "from a single seed. Learning curves: the IQM over seeds at every update, with the same "
    "kind of band (whole curves resampled)."
)


def _cell(value):
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ""
    if isinstance(value, dict):
        return " ".join(f"{k}={v}" for k, v in value.items())
    return value


def _csv(columns: dict[str, list], extra: dict[str, object] | None = None) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    names = list(extra or {}) + list(columns)
    writer.writerow(names)
    rows = max((len(v) for v in columns.values()), default=0)
    for i in range(rows):
        prefix = [_cell(v) for v in (extra or {}).values()]
        writer.writerow(prefix + [_cell(columns[n][i]) for n in columns])
    return out.getvalue()


def summary_csv(results: SweepResults) -> str:
    """One row per setting (sweep id and task in the first columns)."""
    columns = figures.summary_columns(results)
    for key in results.keys:  # the grid values as their own columns too
        columns[key] = [s.setting.get(key) for s in results.summary]
    return _csv(columns, {"sweep": results.sweep_id, "task": results.env_id})


def trials_csv(results: SweepResults) -> str:
    """One row per trial."""
    columns = figures.trial_columns(results)
    for key in results.keys:
        columns[key] = [t.setting.get(key) for t in results.trials]
    return _csv(columns, {"sweep": results.sweep_id, "task": results.env_id})


_SCRIPT = """
(function () {
  const page = JSON.parse(document.getElementById("page-data").textContent);
  for (const [id, figure] of Object.entries(page.figures)) {
    Plotly.newPlot(id, Object.assign({config: page.config}, figure));
  }
})();
"""


def sweep_html(results: SweepResults) -> str:
    """The sweep as one HTML page: learning curves with bands, final returns, both tables."""
    counts = results.counts()
    created = datetime.datetime.fromtimestamp(results.created, datetime.UTC)
    about = [("sweep", results.sweep_id), ("task", results.env_id),
             ("grid keys", ", ".join(results.keys) or "none (one setting)"),
             ("trials", ", ".join(f"{n} {s}" for s, n in counts.items() if n)),
             ("created", created.strftime("%Y-%m-%d %H:%M UTC"))]
    notes = ""
    if results.active:
        notes = ('<p class="note">Exported while the sweep was running: the summary uses '
                 "the seeds that had finished.</p>")
    figs = {"curves": figures.curves_figure(results), "finals": figures.finals_figure(results)}
    charts = "".join(f'<div id="{name}" class="chart"></div>' for name in figs)
    summary = figures.summary_columns(results)
    trials = figures.trial_columns(results)
    body = (f"<h1>Sweep {html.escape(results.sweep_id)} on {html.escape(results.env_id)}</h1>"
            f'<p class="sub">{html.escape(DEFINITIONS)}</p>{notes}'
            f"{definition_list(about)}<div class=\"grid\">{charts}</div>"
            f"<h2>Final return per setting</h2>{html_table(summary, ('setting', 'finished seeds'))}"
            f"<h2>Trials</h2>{html_table(trials, ('setting', 'status', 'run', 'error'))}"
            "<footer>Exported from trpo-viz. Self-contained: opens offline, no network."
            "</footer>")
    data = {"config": PLOT_CONFIG, "figures": {k: figure_dict(v) for k, v in figs.items()}}
    return html_page(f"Sweep {results.sweep_id}", body, data, _SCRIPT)
