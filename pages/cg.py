"""CG explorer: solve H x = g by conjugate gradient on Hessian-vector products, and watch it.

The page is thin: widgets, session state and layout. The maths lives in
``trpo_viz.explorer`` (one cached ``CompiledProblem`` per expression, dtype and HVP
mode), the figures in ``trpo_viz.figures``, the teaching notes in ``trpo_viz.explain``;
the caches in ``app_parts.cg_cache``, the URL-bound inputs in ``app_parts.cg_inputs``.
Every input is bound to a URL query parameter of the same name (``expr``, ``theta``,
``g``, ``x0``, ``damping``, ``iters``, ``tol``, ``dtype``, ``hvp``), so a link reproduces
the view.
"""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd
import streamlit as st
from streamlit.runtime.pages_manager import PagesManager

from app_parts import plain
from app_parts.cg_cache import (
    as_key,
    compiled_problem,
    freeze_traced_graphs,
    lanczos_spectrum,
    solver_lineup,
)
from app_parts.cg_inputs import (
    BIND,
    CHOICES,
    fmt,
    forget_replaced_preset,
    parsed,
    preset_in_use,
    sci,
    set_damping,
    url_problems,
    url_values,
    use_kappa,
    use_preset,
)
from trpo_viz import explain, presets
from trpo_viz.curvature import negative_curvature_advice
from trpo_viz.explorer import DEFAULT_TOL, MAX_EXPLICIT_N, MAX_ITER, CGSettings
from trpo_viz.expr import ExpressionError
from trpo_viz.expr.grammar import MAX_DIMENSION
from trpo_viz.figures import cg as figures
from trpo_viz.figures import krylov as krylov_figures
from trpo_viz.figures.html import explorer_html
from trpo_viz.inputs import InputError
from trpo_viz.krylov import MAX_HEATMAP_N, krylov_view
from trpo_viz.lineup import MAX_BUDGET
from trpo_viz.spectrum import DEFAULT_STEPS, MAX_STEPS

if "entered_through_app" not in st.session_state:  # run by Streamlit's legacy pages/ mode
    PagesManager.uses_pages_directory = False  # leave it (see app.py) and go through app.py
    st.rerun()

TABLE_N = 20  # up to this n the solution is an HTML table (readable as text), then a grid


# ----------------------------------------------------------------------------- state

for name, value in presets.DEFAULT_INPUTS.items():
    st.session_state.setdefault(name, value)
st.session_state.setdefault("kappa", presets.DEFAULT_KAPPA)
first_run = "url_problems" not in st.session_state
raw_url = url_values() if first_run else {}  # before the widgets take (or drop) them

# ----------------------------------------------------------------------------- inputs

st.title("Conjugate gradient on Hessian-vector products")
st.markdown(
    "Solve **H x = g** for the Hessian H of f at θ — the Newton step, or TRPO's natural "
    "gradient — by conjugate gradient, which needs only products **Hv** (never H itself), "
    "and compare every iterate with the exact solution."
)

left, right = st.columns([3, 2], vertical_alignment="bottom")
left.selectbox(
    "Preset", list(presets.PRESETS), key="preset", index=None, on_change=use_preset,
    format_func=lambda k: presets.PRESETS[k].title,
    placeholder="Load a worked example…",
)
if st.session_state.preset == "quadratic":
    right.slider("condition number κ", presets.MIN_KAPPA, presets.MAX_KAPPA, key="kappa",
                 step=1.0, on_change=use_kappa)
if preset_in_use() is not None:
    st.info(presets.PRESETS[st.session_state.preset].lesson, icon=":material/lightbulb:")

expr_col, n_col = st.columns([5, 1])
n_input = n_col.number_input(
    "n", min_value=1, max_value=MAX_DIMENSION, step=1, value=None, key="n", bind=BIND,
    placeholder="from f",
    help="dimension; empty: the highest variable index in f (or the built-in's default)")
expr = expr_col.text_input(
    "f(θ) in x1 … xn", key="expr", bind=BIND, on_change=forget_replaced_preset,
    help="Operators + − * / **, functions such as sin, exp, log, tanh; or @logistic_regression "
         "(a built-in loss with n = 1000). Press Enter to apply.",
)
expr_slot = st.empty()

col_theta, col_g, col_x0 = st.columns(3)
col_theta.text_input("θ (the point)", key="theta", bind=BIND)
col_g.text_input("g (right-hand side)", key="g", bind=BIND)
col_x0.text_input("x0 (start; empty = zeros)", key="x0", bind=BIND)
theta_slot, g_slot, x0_slot = col_theta.empty(), col_g.empty(), col_x0.empty()

cols = st.columns(5)
damping = cols[0].number_input("damping λ", min_value=0.0, max_value=1e6, step=0.1,
                               format="%g", key="damping", bind=BIND)
# value=None: empty means "the default", so every number (0 included) stays in the URL.
iters = cols[1].number_input("max iterations", min_value=0, max_value=MAX_ITER, step=1,
                             value=None, key="iters", bind=BIND, placeholder="n",
                             help=f"empty: n (at most {MAX_ITER})")
tol = cols[2].number_input("tolerance ‖r‖/‖g‖", min_value=0.0, max_value=1.0, step=1e-10,
                           value=None, format="%.1e", key="tol", bind=BIND,
                           placeholder="auto",
                           help="empty: " + ", ".join(f"{t:g} in {d}"
                                                      for d, t in DEFAULT_TOL.items()))
dtype = cols[3].radio("dtype", CHOICES["dtype"], key="dtype", bind=BIND, horizontal=True)
hvp = cols[4].radio("HVP mode", CHOICES["hvp"], key="hvp", bind=BIND, horizontal=True,
                    help="reverse-over-reverse or forward-over-reverse differentiation")
if first_run:
    st.session_state.url_problems = url_problems(raw_url)
bad_url = st.session_state.url_problems
for name, col in zip(("damping", "iters", "tol", "dtype", "hvp"), cols, strict=True):
    if name in bad_url:
        message, used = bad_url[name]
        if st.session_state[name] != used:  # the user has changed it since: not news any more
            del bad_url[name]
        else:
            col.error(plain(message), icon=":material/error:")
if "n" in bad_url:
    message, used = bad_url["n"]
    if st.session_state.n != used:
        del bad_url["n"]
    else:
        n_col.error(plain(message), icon=":material/error:")
n_wanted = None if n_input is None else int(n_input)

# ----------------------------------------------------------------------------- solve

problem = None
try:
    with st.spinner("Compiling f and its Hessian-vector product…", show_time=True):
        problem = compiled_problem(expr.strip(), dtype, hvp, n_wanted)
except (ExpressionError, InputError) as error:  # anything else is a bug: let it show
    expr_slot.error(plain(error), icon=":material/error:")

result = None
if problem is not None:
    n = problem.n
    theta = parsed(st.session_state.theta, "θ", n, theta_slot)
    g = parsed(st.session_state.g, "g", n, g_slot)
    x0 = parsed(st.session_state.x0, "x0", n, x0_slot) if st.session_state.x0.strip() else None
    vectors_ok = theta is not None and g is not None and (x0 is not None or
                                                          not st.session_state.x0.strip())
    if vectors_ok:
        settings = CGSettings(damping=float(damping), tol=None if tol is None else float(tol),
                              max_iter=None if iters is None else int(iters))
        slow = n > 100
        message = (f"Solving; forming the exact {n}×{n} Hessian for comparison costs n = {n} "
                   "HVPs…" if slow else "Solving…")
        try:
            with st.spinner(message, show_time=True):
                result = problem.solve(theta, g, settings, x0=x0)
            freeze_traced_graphs((expr.strip(), n_wanted, dtype, hvp))
        except InputError as error:
            st.error(plain(error), icon=":material/error:")

# This page's globals outlive the run (widget callbacks and download callables hold them
# while Streamlit keeps the session, 2 minutes after its tab is gone): no compiled problem
# in them, or an evicted one stays alive.
problem = None
if result is None:
    st.stop()
if result.problems:  # nothing below would be mathematics: say what happened, draw nothing
    st.header("No answer")
    for problem in result.problems:
        st.error(plain(problem), icon=":material/error:")
    st.stop()

# ----------------------------------------------------------------------------- the answer

cg = result.cg
st.header("Answer")
metrics = st.columns(3) + st.columns(3)
metrics[0].metric("iterations", cg.iterations)
metrics[1].metric("HVPs used", cg.matvecs, help="plus one to check the true residual")
metrics[2].metric("stop reason", cg.stop_reason.replace("_", " "))
metrics[3].metric("‖r_k‖ (recursive)", sci(cg.residual_norms[-1]),
                  help="CG's residual, updated as r_{k+1} = r_k − α_k (H+λI)p_k")
metrics[4].metric("‖g − (H+λI)x_k‖ (true)", sci(result.true_residual_norm),
                  help=f"the residual of the answer, recomputed by one more HVP in {dtype}")
metrics[5].metric("final relative error", sci(result.final_error))

answer = {"component": [f"x{i + 1}" for i in range(result.n)],
          "CG solution x_k": [fmt(v) for v in cg.x]}
if result.exact is not None:
    answer["exact H⁻¹g"] = [fmt(v) for v in result.exact]
if result.settings.damping > 0 and result.reference is not None:
    answer["exact (H+λI)⁻¹g"] = [fmt(v) for v in result.reference]
answer_frame = pd.DataFrame(answer)
if result.n <= TABLE_N:
    st.table(answer_frame.set_index("component"))
else:
    st.dataframe(answer_frame, hide_index=True, height=280)

tol_text = f"{result.settings.tol:g}" + (f" (the {dtype} default)" if tol is None else "")
summary = (f"CG {explain.STOP_REASON_TEXT[cg.stop_reason]} after {cg.iterations} iteration(s) "
           f"with tol = {tol_text}. Final residual: recursive ‖r_k‖ = "
           f"{sci(cg.residual_norms[-1])}, true ‖g − (H+λI)x_k‖ = "
           f"{sci(result.true_residual_norm)}")
if result.final_error is not None:
    summary += f"; relative error ‖x − x*‖/‖x*‖ = {sci(result.final_error)}"
st.markdown(plain(summary + ". " + explain.hvp_comparison(result)))
for note in result.notes:
    st.warning(plain(note), icon=":material/science:")

if result.hessian is None:
    st.info(f"n = {result.n} > {MAX_EXPLICIT_N}: H is not formed, so there is no exact solution "
            "to compare with (CG itself never needs H).", icon=":material/info:")
elif result.reference is None:
    st.warning("H + λI is singular (or numerically so) at this θ: H⁻¹g does not exist. "
               "CG still runs on the Krylov space of g; add damping λ > 0 for a unique answer.",
               icon=":material/error:")
elif result.exact is None:
    st.info("H itself is singular here; the damped system (H+λI)x = g has the unique answer "
            "shown.", icon=":material/info:")
curvature = explain.curvature_message(result)
if curvature:
    st.warning(curvature, icon=":material/turn_right:")
advice = negative_curvature_advice(
    cg, result.settings.damping,
    eigenvalues=None if result.eigenvalues is None
    else result.eigenvalues - result.settings.damping)
if advice is not None:
    st.markdown("**What negative curvature means.** " + plain(advice.explanation))
    offer = st.columns([2, 3], vertical_alignment="center")
    offer[0].button(f"Use damping λ = {advice.suggested_damping:.3g}", key="use_damping",
                    on_click=set_damping, args=(advice.suggested_damping,),
                    icon=":material/healing:")
    offer[1].caption("Or compare with MINRES, which needs no positive curvature: turn on the "
                     "solver line-up below.")
if cg.stop_reason == "max_iter" and cg.iterations < result.n:
    st.info("CG stopped at the iteration limit before reaching the tolerance: raise "
            "max iterations to continue.", icon=":material/info:")

# ----------------------------------------------------------------------------- iterates

st.header("Iterates")
st.caption("Press ▶ Play, or drag the slider over k; the animation runs in your browser.")
st.plotly_chart(figures.iterates_figure(result), key="iterates_chart")

st.header("Convergence")
convergence = figures.convergence_figure(result)
if convergence is None:
    st.info("Nothing to plot on a log scale: every residual and error is 0 (x0 already "
            "solves the system, or g = 0).", icon=":material/info:")
else:
    st.plotly_chart(convergence, key="convergence_chart")
    if figures.rounding_band_level(result) is not None:
        st.caption(f"Grey band: below {result.residual_floor:.1e} the recursive ‖r_k‖ describes "
                   f"no iterate; it is {dtype} rounding, not convergence (see the note above).")
    elif dtype == "float32":
        st.caption("float32 (ε ≈ 1.2e-7) resolves relative residuals only to about ε·κ; the "
                   "dotted true residual shows what the iterates x_k achieve.")

if result.eigenvalues is not None:
    st.header("Spectrum")
    kappa_text = ("∞ (not positive definite)" if not np.isfinite(result.condition_number)
                  else f"{result.condition_number:.6g}")
    st.markdown(f"Condition number κ = **{kappa_text}**. {explain.spectrum_note(result)}")
    st.plotly_chart(figures.spectrum_figure(result), key="spectrum_chart")
    if result.n <= 10:
        names = [f"x{i + 1}" for i in range(result.n)]
        mat_left, mat_right = st.columns(2)
        mat_left.markdown("**H**")
        mat_left.table(pd.DataFrame(result.hessian, index=names, columns=names)
                       .map(lambda v: fmt(v, 6)))
        mat_right.markdown("**H⁻¹**")
        inverse = result.hessian_inverse  # computed on each access
        if inverse is not None:
            mat_right.table(pd.DataFrame(inverse, index=names, columns=names)
                            .map(lambda v: fmt(v, 6)))
        else:
            mat_right.markdown("H is singular: no inverse.")
    if result.n <= MAX_HEATMAP_N:
        heat_left, heat_right = st.columns(2)
        heat_left.plotly_chart(krylov_figures.matrix_figure(result.hessian, "H"),
                               key="hessian_heatmap")
        inverse = result.hessian_inverse
        if inverse is not None:
            heat_right.plotly_chart(krylov_figures.matrix_figure(inverse, "H⁻¹"),
                                    key="inverse_heatmap")

# ----------------------------------------------------------------------------- Krylov view

st.header("Krylov view: why CG works")
view = krylov_view(cg, hessian=result.hessian if result.reference is not None else None,
                   reference=result.reference, damping=result.settings.damping,
                   eps=float(np.finfo(result.dtype).eps))
if view.iterations == 0:
    st.info("CG took no step, so there are no Ritz values to show.", icon=":material/info:")
else:
    st.markdown(
        "CG finds the extreme eigenvalues first. After k steps CG has built Lanczos's "
        "tridiagonal matrix T_k from its α and β (no extra HVPs); the eigenvalues of T_k, the "
        "**Ritz values**, approximate eigenvalues of H + λI, the outermost ones first. The "
        "residual is r_k = p_k(H + λI) r_0 for a polynomial with p_k(0) = 1 whose roots are "
        "the Ritz values: where a root sits on an eigenvalue, that eigencomponent of the "
        "error is gone.")
    if view.eigenvalues is None:
        st.caption("H was not formed (or H + λI is singular): Ritz values only, no exact "
                   "spectrum to compare with.")
    st.plotly_chart(krylov_figures.ritz_figure(view), key="ritz_chart")
    st.session_state.krylov_k = min(st.session_state.get("krylov_k", view.iterations),
                                    view.iterations)
    k_shown = st.slider("iteration k of the residual polynomial", 0, view.iterations,
                        key="krylov_k") if view.iterations > 0 else 0
    st.plotly_chart(krylov_figures.polynomial_figure(view, k_shown), key="polynomial_chart")
    heatmap = krylov_figures.eigencomponent_figure(view)
    if heatmap is not None:
        st.plotly_chart(heatmap, key="eigencomponent_chart")
        st.caption("v_iᵀ(x_k − x*) = p_k(λ_i)·v_iᵀ(x_0 − x*): a component dies where p_k has a "
                   f"root near λ_i. Values near {np.finfo(np.float64).eps:.0e}·‖x*‖ and below "
                   "are rounding, not mathematics.")
    elif result.n > MAX_HEATMAP_N and result.hessian is not None:
        st.caption(f"The error per eigencomponent is drawn for n ≤ {MAX_HEATMAP_N}.")

# ----------------------------------------------------------------------------- line-up

st.header("Solver line-up")
text_key, theta_key, g_key = expr.strip(), as_key(result.theta), as_key(result.g)
x0_key = as_key(x0) if x0 is not None else None
lineup_on = st.toggle("Compare CG with Jacobi-PCG, MINRES and steepest descent",
                      key="lineup_on",
                      help="runs four solvers on the same HVP budget (cached per input)")
if lineup_on:
    budget = st.number_input("HVP budget per method", min_value=1, max_value=MAX_BUDGET,
                             value=min(MAX_BUDGET, max(20, 2 * result.n), 200), step=1,
                             key="lineup_budget")
    with st.spinner("Running the line-up…", show_time=True):
        lineup = solver_lineup(text_key, result.n, dtype, hvp, theta_key, g_key, x0_key,
                               result.settings.damping, result.settings.tol, int(budget))
    st.plotly_chart(krylov_figures.lineup_figure(lineup), key="lineup_chart")
    rows = [{"method": t.label, "iterations": t.iterations, "HVPs": t.total_hvps,
             "stop reason": t.stop_reason.replace("_", " "), "note": t.note}
            for t in lineup.traces.values()]
    st.dataframe(pd.DataFrame(rows), hide_index=True)
    st.caption("x-axis: HVPs used, set-up included (PCG pays for its diagonal; the exact "
               "route forms H from n HVPs). Residuals are recomputed from the explicit H "
               "where it was formed. A-norm errors exist only when H + λI is positive definite.")

# ----------------------------------------------------------------------------- spectrum

with st.expander("Spectrum without H (Lanczos and stochastic Lanczos quadrature)"):
    st.markdown("Lanczos on HVPs alone: k products give the extreme eigenvalues of H "
                "(Ritz values with residual bounds), a κ estimate, and, from a few random "
                "starts, the spectral density (SLQ). Of the undamped H.")
    steps = st.number_input("Lanczos steps k", min_value=1, max_value=min(MAX_STEPS, result.n),
                            value=min(DEFAULT_STEPS, result.n), step=1, key="lanczos_k")
    if st.button("Estimate the spectrum", key="lanczos_run") or st.session_state.get(
            "lanczos_done") == (text_key, dtype, hvp, theta_key, int(steps)):
        st.session_state.lanczos_done = (text_key, dtype, hvp, theta_key, int(steps))
        with st.spinner("Lanczos…", show_time=True):
            estimate, density, exact = lanczos_spectrum(text_key, result.n, dtype, hvp, theta_key,
                                                        int(steps))
        kappa_est = estimate.condition_estimate
        cols_est = st.columns(3)
        cols_est[0].metric("Lanczos + SLQ HVPs", estimate.hvps + density.hvps)
        cols_est[1].metric("κ estimate θ_max/θ_min",
                           "—" if kappa_est is None or not np.isfinite(kappa_est)
                           else f"{kappa_est:.4g}")
        cols_est[2].metric("exact κ", "—" if estimate.exact_condition is None
                           else f"{estimate.exact_condition:.4g}")
        extremes = {"": ["largest", "smallest"],
                    "Ritz value": [sci(estimate.largest[0], 6), sci(estimate.smallest[0], 6)],
                    "residual bound": [sci(estimate.largest_residual_bounds[0]),
                                       sci(estimate.smallest_residual_bounds[0])]}
        if estimate.exact_largest is not None:
            extremes["exact"] = [sci(estimate.exact_largest[0], 6),
                                 sci(estimate.exact_smallest[0], 6)]
        st.table(pd.DataFrame(extremes).set_index(""))
        st.plotly_chart(krylov_figures.spectrum_estimate_figure(estimate, density, exact),
                        key="lanczos_chart")

st.header("Trace")
trace = pd.DataFrame(figures.trace_table(result))
shown_trace = trace.copy()  # as text, so that an undefined entry reads "—"
for name in trace.columns[1:]:
    shown_trace[name] = [fmt(v, 4, "e") for v in trace[name]]
st.dataframe(shown_trace, hide_index=True, height=min(400, 38 + 35 * len(trace)))
downloads = st.columns(3)
downloads[0].download_button("Download the table (CSV)",
                             # built on click (n/a cells empty); a partial holds the table,
                             # a lambda would hold the page's globals
                             functools.partial(trace.to_csv, index=False),
                             file_name="cg_trace.csv", mime="text/csv", on_click="ignore")
downloads[1].download_button("Download the whole trace (JSON)",
                             result.to_json,  # built on click; holds the result only
                             file_name="cg_trace.json", mime="application/json",
                             on_click="ignore")
downloads[2].download_button("Download for slides (.html)",
                             functools.partial(explorer_html, result),  # built on click
                             file_name="cg_explorer.html", mime="text/html",
                             on_click="ignore", icon=":material/slideshow:",
                             help="One self-contained HTML file: the animations, charts and "
                                  "trace of this solve. It opens offline, without Python.")
st.caption("The same computation on the command line: `python -m trpo_viz cg --expr '…' "
           "--theta=… --g=… --json`.")
