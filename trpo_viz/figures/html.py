"""Self-contained HTML pages from Plotly figures: one file, no server, no network.

A page built here opens from disk on a laptop without Python: plotly.js is inlined
once, every figure travels as JSON in the page, and a Content-Security-Policy forbids
the page any network access (no ``<script src>``, no fetch, no CDN). Text that comes
from outside (run names, expressions) is HTML-escaped; JSON inside ``<script>`` has
``<``, ``>`` and ``&`` escaped as ``\\u003c`` … so that no string can close the tag.

:func:`explorer_html` is the CG explorer's page; :mod:`trpo_viz.runs.html` builds a
TRPO run's page from the same parts.
"""

from __future__ import annotations

import base64
import functools
import html
import json
import math

import numpy as np

# The page may run its own inline scripts and styles and show data: images (Plotly's
# "download as PNG"); everything else, network access above all, is refused.
CSP = ("default-src 'none'; script-src 'unsafe-inline' 'unsafe-eval'; "
       "style-src 'unsafe-inline'; img-src data: blob:; font-src data:")
PLOT_CONFIG = {"responsive": True, "displaylogo": False, "showLink": False}
MAX_LISTED = 12  # entries of a vector shown as text before "…"
FLOAT32_RTOL = 1e-6  # float64 data travels as float32 when this faithful (halves its size)

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 1.5rem auto;
       max-width: 1400px; padding: 0 1rem; color: #222; }
h1 { font-size: 1.5rem; margin-bottom: 0.2rem; }
h2 { font-size: 1.15rem; margin-top: 1.6rem; }
.sub { color: #555; margin-top: 0; }
.grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(560px, 1fr)); gap: 1rem; }
.chart { min-height: 360px; }
table { border-collapse: collapse; font-size: 0.85rem; }
th, td { border: 1px solid #ddd; padding: 0.2rem 0.5rem; text-align: right; }
th { background: #f4f4f4; }
td.text, th.text { text-align: left; }
.controls { position: sticky; top: 0; background: #fff; padding: 0.6rem 0; z-index: 10;
            display: flex; align-items: center; gap: 0.6rem; border-bottom: 1px solid #ddd; }
.controls input[type=range] { flex: 1; }
.controls button { font-size: 1rem; padding: 0.2rem 0.8rem; }
.note { background: #fff8e1; border-left: 4px solid #f0b400; padding: 0.4rem 0.8rem; }
.problem { background: #fdecea; border-left: 4px solid #d62728; padding: 0.4rem 0.8rem; }
footer { color: #777; font-size: 0.8rem; margin-top: 2rem; }
"""


@functools.cache
def plotly_js() -> str:
    """The plotly.js bundle that ships with the plotly package (about 4.8 MB)."""
    from plotly.offline import get_plotlyjs

    return get_plotlyjs()


def script_json(value) -> str:
    """``value`` as JSON that is safe inside a ``<script>`` element.

    ``<``, ``>`` and ``&`` only occur inside JSON strings, where ``\\u003c`` … mean the
    same characters, so no string (``</script>``, ``<!--``) can end the element early.
    NaN and ±Inf are refused: convert them first (:func:`plain`).
    """
    text = json.dumps(value, allow_nan=False, ensure_ascii=False, separators=(",", ":"))
    return (text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def figure_dict(fig, float32: bool = True) -> dict:
    """A figure as a JSON-ready dict ``{"data": [...], "layout": {...}}`` (+ ``frames``).

    Numeric arrays stay in Plotly's typed-array form (``{"dtype", "bdata"}``, base64);
    with ``float32``, float arrays travel as float32 where that is faithful to
    ``FLOAT32_RTOL`` (half the size; a chart cannot show the difference). NaN and ±Inf
    outside arrays become null (a gap, as in Plotly's own JSON).
    """
    return plain(fig.to_plotly_json(), float32)


def plain(value, float32: bool = True):
    """Recursively JSON-ready: numpy → typed arrays or Python numbers, NaN → None."""
    if isinstance(value, dict):
        if "bdata" in value and "dtype" in value:
            return _compact_typed_array(value, float32)
        return {str(k): plain(v, float32) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        if value.dtype.kind in "fiub" and value.size:
            return _typed_array(value, float32)
        return plain(value.tolist(), float32)
    if isinstance(value, list | tuple):
        return [plain(v, float32) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _typed_array(array: np.ndarray, float32: bool) -> dict:
    if array.dtype.kind == "f":
        if array.dtype != np.float32:
            array = array.astype(np.float64)
            narrow = array.astype(np.float32)
            with np.errstate(all="ignore"):  # not faithful past float32's range
                if float32 and np.isclose(narrow.astype(np.float64), array, atol=0.0,
                                          rtol=FLOAT32_RTOL, equal_nan=True).all():
                    array = narrow
        dtype = "f4" if array.dtype == np.float32 else "f8"
    elif array.dtype.kind == "b":
        array, dtype = array.astype(np.uint8), "u1"
    elif array.dtype.itemsize > 4:  # JavaScript has no 64-bit integer arrays
        fits = np.iinfo(np.int32).min <= array.min() and array.max() <= np.iinfo(np.int32).max
        array = array.astype(np.int32 if fits else np.float64)
        dtype = "i4" if fits else "f8"
    else:
        dtype = f"{array.dtype.kind}{array.dtype.itemsize}"
    spec = {"dtype": dtype,
            "bdata": base64.b64encode(np.ascontiguousarray(array).astype(
                array.dtype.newbyteorder("<")).tobytes()).decode("ascii")}
    if array.ndim > 1:
        spec["shape"] = ",".join(str(s) for s in array.shape)
    return spec


_NUMPY_DTYPES = {"f8": "<f8", "f4": "<f4", "i1": "i1", "u1": "u1", "i2": "<i2", "u2": "<u2",
                 "i4": "<i4", "u4": "<u4"}


def _compact_typed_array(spec: dict, float32: bool) -> dict:
    """Plotly's own typed array, re-encoded (as float32 where faithful and wanted)."""
    dtype = _NUMPY_DTYPES.get(spec["dtype"])
    if dtype is None:
        return dict(spec)
    array = np.frombuffer(base64.b64decode(spec["bdata"]), dtype=dtype)
    if "shape" in spec:
        array = array.reshape([int(s) for s in str(spec["shape"]).split(",")])
    return _typed_array(array, float32)


def split_common(items: list[dict], base: dict) -> list[dict]:
    """Each dict reduced to the top-level keys whose values differ from ``base``'s.

    A key of ``base`` that an item lacks maps to None there (Plotly's "unset"), so
    ``{**base, **patch}`` rebuilds the item for every purpose Plotly has.
    """
    encoded = {key: json.dumps(value, sort_keys=True) for key, value in base.items()}
    patches = []
    for item in items:
        patch = {key: value for key, value in item.items()
                 if encoded.get(key) != json.dumps(value, sort_keys=True)}
        patch.update({key: None for key in base if key not in item})
        patches.append(patch)
    return patches


def html_table(columns: dict[str, list], text_columns: tuple[str, ...] = ()) -> str:
    """Columns of numbers (None: blank) as an HTML table; headers and text escaped."""
    names = list(columns)
    rows = max((len(values) for values in columns.values()), default=0)

    def cell(name: str, value) -> str:
        kind = _text_class(name, text_columns)
        if value is None:
            return f"<td{kind}></td>"
        if isinstance(value, float):
            shown = f"{value:.6g}" if math.isfinite(value) else str(value)
        else:
            shown = str(value)
        return f"<td{kind}>{html.escape(shown)}</td>"

    head = "".join(f"<th{_text_class(n, text_columns)}>{html.escape(n)}</th>" for n in names)
    body = "".join(
        "<tr>" + "".join(cell(n, columns[n][i] if i < len(columns[n]) else None) for n in names)
        + "</tr>" for i in range(rows))
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _text_class(name: str, text_columns: tuple[str, ...]) -> str:
    return ' class="text"' if name in text_columns else ""


def vector_text(values, limit: int = MAX_LISTED) -> str:
    """A vector as short text: its first ``limit`` entries, then how many there are."""
    values = np.asarray(values, dtype=np.float64).ravel()
    shown = ", ".join(f"{v:.6g}" for v in values[:limit])
    if values.size > limit:
        shown += f", … ({values.size} entries)"
    return f"[{shown}]"


def definition_list(items: list[tuple[str, str]]) -> str:
    """``(label, text)`` pairs as an HTML table of two columns, all escaped."""
    rows = "".join(f'<tr><th class="text">{html.escape(label)}</th>'
                   f'<td class="text">{html.escape(text)}</td></tr>' for label, text in items)
    return f"<table><tbody>{rows}</tbody></table>"


def html_page(title: str, body: str, data: dict, script: str) -> str:
    """One self-contained document: ``body`` (HTML, already escaped), then plotly.js,
    ``data`` as JSON in ``<script type="application/json" id="page-data">``, and
    ``script`` (the page's own JavaScript, which reads that element)."""
    return "\n".join([
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{html.escape(title)}</title>",
        f"<style>{STYLE}</style>",
        "</head>",
        "<body>",
        body,
        '<script type="text/javascript">',
        plotly_js(),
        "</script>",
        f'<script type="application/json" id="page-data">{script_json(data)}</script>',
        f'<script type="text/javascript">\n"use strict";\n{script}\n</script>',
        "</body>",
        "</html>",
        "",
    ])


# ----------------------------------------------------------------------------- CG explorer

_EXPLORER_SCRIPT = """
(function () {
  const page = JSON.parse(document.getElementById("page-data").textContent);
  for (const [id, figure] of Object.entries(page.figures)) {
    Plotly.newPlot(id, Object.assign({config: page.config}, figure));
  }
})();
"""


def explorer_html(result) -> str:
    """A CG explorer view as one HTML file: the inputs as text, the iterate animation,
    the convergence and spectrum charts, the animated Ritz values, the problems and
    notes, and the trace table."""
    from trpo_viz.figures import cg as cg_figures

    cg = result.cg
    settings = result.settings
    figures = {"iterates": cg_figures.iterates_figure(result),
               "convergence": cg_figures.convergence_figure(result)}
    spectrum = cg_figures.spectrum_figure(result)
    if spectrum is not None:
        figures["spectrum"] = spectrum
    if not result.problems and cg.iterations >= 1:  # why CG works: the Ritz values, animated
        from trpo_viz.figures.krylov import ritz_figure
        from trpo_viz.krylov import krylov_view

        exact = result.reference is not None
        figures["ritz"] = ritz_figure(krylov_view(
            cg, hessian=result.hessian if exact else None,
            reference=result.reference, damping=settings.damping,
            eps=float(np.finfo(result.dtype).eps)))
    inputs = [
        ("f(x)", result.text),
        ("n", str(result.n)),
        ("dtype / HVP", f"{result.dtype} / {result.hvp_mode}"),
        ("θ", vector_text(result.theta)),
        ("g", vector_text(result.g)),
        ("damping λ", f"{settings.damping:g}"),
        ("max iterations", str(settings.max_iter)),
        ("tolerance", f"relative {settings.tol:g}, absolute {settings.atol:g}"),
    ]
    outcome = [
        ("f(θ)", f"{result.value:.6g}"),
        ("stop reason", str(cg.stop_reason)),
        ("iterations / HVPs", f"{cg.iterations} / {cg.matvecs}"),
        ("x (CG result)", vector_text(cg.x)),
    ]
    if result.reference is not None:
        outcome.append(("x* = (H+λI)⁻¹g", vector_text(result.reference)))
    if result.final_error is not None:
        outcome.append(("relative error ‖x − x*‖/‖x*‖", f"{result.final_error:.3e}"))
    if result.true_residual_norm is not None:
        outcome.append(("true residual ‖g − (H+λI)x‖", f"{result.true_residual_norm:.3e}"))
    if result.condition_number is not None:
        outcome.append(("condition number κ", f"{result.condition_number:.4g}"))
    messages = "".join(f'<p class="problem">{html.escape(p)}</p>' for p in result.problems)
    messages += "".join(f'<p class="note">{html.escape(n)}</p>' for n in result.notes)
    charts = "".join(f'<div id="{name}" class="chart"></div>' for name in figures)
    body = (
        "<h1>Conjugate gradient on (H + λI) x = g</h1>"
        f'<p class="sub">f(x) = {html.escape(result.text)}</p>'
        f'{messages}<div class="grid"><div><h2>Inputs</h2>{definition_list(inputs)}</div>'
        f"<div><h2>Result</h2>{definition_list(outcome)}</div></div>"
        f"{charts}"
        f"<h2>Trace</h2>{html_table(cg_figures.trace_table(result))}"
        "<footer>Exported from trpo-viz. Self-contained: opens offline, no network.</footer>"
    )
    data = {"config": PLOT_CONFIG,
            "figures": {name: figure_dict(fig, float32=False) for name, fig in figures.items()}}
    return html_page(f"CG: {result.text}", body, data, _EXPLORER_SCRIPT)
