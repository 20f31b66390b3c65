"""Figures of the Krylov view and the line-up, checked against an independent numpy CG."""

from types import SimpleNamespace

import numpy as np
import pytest

from trpo_viz.figures import krylov as figures
from trpo_viz.krylov import krylov_view


def numpy_cg(a: np.ndarray, b: np.ndarray, steps: int) -> SimpleNamespace:
    """Textbook CG in float64 from x0 = 0, recording what krylov_view reads."""
    x = np.zeros_like(b)
    r = b.copy()
    p = r.copy()
    alphas, betas, curvatures, iterates, norms = [], [], [], [x.copy()], [np.linalg.norm(r)]
    stop = "max_iter"
    for _ in range(steps):
        curvature = p @ a @ p
        curvatures.append(curvature)
        if curvature <= 0:
            stop = "negative_curvature"
            break
        alpha = (r @ r) / curvature
        x = x + alpha * p
        r_new = r - alpha * (a @ p)
        beta = (r_new @ r_new) / (r @ r)
        alphas.append(alpha)
        betas.append(beta)
        iterates.append(x.copy())
        norms.append(np.linalg.norm(r_new))
        p = r_new + beta * p
        r = r_new
    return SimpleNamespace(alphas=np.array(alphas), betas=np.array(betas),
                           curvatures=np.array(curvatures), residual_norms=np.array(norms),
                           iterates=np.array(iterates), stop_reason=stop, iterations=len(alphas))


@pytest.fixture
def spd_view():
    rng = np.random.default_rng(3)
    q, _ = np.linalg.qr(rng.standard_normal((6, 6)))
    eigenvalues = np.array([0.5, 1.0, 2.0, 4.0, 8.0, 30.0])
    a = (q * eigenvalues) @ q.T
    b = rng.standard_normal(6)
    cg = numpy_cg(a, b, 6)
    reference = np.linalg.solve(a, b)
    return krylov_view(cg, hessian=a, reference=reference), a, b, cg, reference


def test_ritz_points_reach_the_true_spectrum(spd_view):
    view, a, *_ = spd_view
    fig = figures.ritz_figure(view)
    ritz = next(t for t in fig.data if t.name == "Ritz values of T_k")
    ks = np.array(ritz.y)
    assert sorted(set(ks)) == list(range(1, 7))
    assert np.sum(ks == 1) == 1 and np.sum(ks == 6) == 6  # k Ritz values at step k
    final = np.sort(np.array(ritz.x)[ks == 6])
    assert final == pytest.approx(np.linalg.eigvalsh(a), rel=1e-6)
    lines = next(t for t in fig.data if t.name == "eigenvalues of H + λI")
    drawn = {round(v, 9) for v in lines.x if v is not None}
    assert drawn == {round(v, 9) for v in np.linalg.eigvalsh(a)}


def test_ritz_values_are_animated_with_the_iterates(spd_view):
    """Frame k holds the rows of T_1 … T_k, rings T_k's k Ritz values; the axes stay put."""
    view, *_ = spd_view
    fig = figures.ritz_figure(view)
    assert [f.name for f in fig.frames] == [str(k) for k in range(7)]
    assert fig.layout.sliders[0].active == 6 and fig.layout.updatemenus  # Play, at the last k
    for k in (0, 3, 6):
        rows, ringed = fig.frames[k].data
        assert sorted(set(rows.y)) == list(range(1, k + 1))
        assert list(ringed.y) == [k] * k
        assert sorted(ringed.x) == pytest.approx(np.sort(view.ritz_values[k - 1]) if k else [])
    assert fig.layout.xaxis.range is not None and fig.layout.yaxis.range is not None
    lo, hi = fig.layout.xaxis.range
    assert lo <= min(np.concatenate(view.ritz_values)) and hi >= max(view.eigenvalues)


def test_extreme_ritz_values_come_first(spd_view):
    view, a, *_ = spd_view
    eigenvalues = np.linalg.eigvalsh(a)
    # Ritz values lie within [λ_min, λ_max]; the isolated λ_max = 30 is found early
    third = view.ritz_values[2]
    assert eigenvalues[0] <= third[0] and third[-1] <= eigenvalues[-1]
    assert abs(third[-1] - eigenvalues[-1]) / eigenvalues[-1] < 0.1


def test_polynomial_figure_roots_and_normalisation(spd_view):
    view, a, b, cg, _ = spd_view
    k = 3
    fig = figures.polynomial_figure(view, k)
    curve = next(t for t in fig.data if t.name == f"p_{k}(λ)")
    assert curve.x[0] == 0.0 and curve.y[0] == pytest.approx(1.0)
    roots = next(t for t in fig.data if t.name == "roots = Ritz values")
    assert np.array(roots.y) == pytest.approx(np.zeros(k))
    # independent check: p_k(λ) = Π(1 − λ/θ_i) with θ_i the eigenvalues of the explicit T_k
    theta = np.array(roots.x)
    lam = np.array(curve.x)
    product = np.prod(1 - lam[:, None] / theta[None, :], axis=1)
    assert np.array(curve.y) == pytest.approx(product, rel=1e-6, abs=1e-9)
    # and r_k = p_k(A) r_0 along each eigenvector: |v_iᵀ r_k| = |p_k(λ_i)| |v_iᵀ b|
    values, vectors = np.linalg.eigh(a)
    at_eig = next(t for t in fig.data if t.name == "p_k(λ_i) at the eigenvalues")
    r_k = b - a @ cg.iterates[k]
    assert np.abs(vectors.T @ r_k) == pytest.approx(
        np.abs(np.array(at_eig.y)) * np.abs(vectors.T @ b), rel=1e-6, abs=1e-10)


def test_polynomial_figure_refuses_a_k_out_of_range(spd_view):
    with pytest.raises(ValueError):
        figures.polynomial_figure(spd_view[0], 7)


def test_eigencomponent_heatmap_is_log10_of_the_projected_error(spd_view):
    view, a, _, cg, reference = spd_view
    fig = figures.eigencomponent_figure(view)
    heat = fig.data[0]
    _, vectors = np.linalg.eigh(a)
    expected = np.abs(vectors.T @ (cg.iterates - reference).T)  # [n, k+1]
    z = np.array(heat.z, dtype=float)
    assert z[:, :3] == pytest.approx(np.log10(expected[:, :3]), abs=1e-6)
    assert heat.colorbar.ticktext[0].startswith("1e")


def test_no_heatmap_without_the_spectrum():
    a = np.diag([1.0, 2.0, 3.0])
    view = krylov_view(numpy_cg(a, np.ones(3), 3))
    assert figures.eigencomponent_figure(view) is None
    assert figures.ritz_figure(view).data[0].name == "Ritz values of T_k"


def test_negative_curvature_shows_the_rejected_step():
    a = np.array([[2.0, 1.0], [1.0, -2.0]])
    cg = numpy_cg(a, np.array([1.0, 0.2]), 2)
    assert cg.stop_reason == "negative_curvature"
    view = krylov_view(cg, hessian=a, reference=np.linalg.solve(a, [1.0, 0.2]))
    fig = figures.ritz_figure(view)
    rejected = next(t for t in fig.data if t.name.startswith("T_{k+1}"))
    assert min(rejected.x) <= 0  # the curvature CG could not use


def test_matrix_heatmap_is_diverging_and_centred():
    m = np.array([[4.0, -1.0], [-1.0, 0.5]])
    fig = figures.matrix_figure(m, "H")
    heat = fig.data[0]
    assert heat.zmid == 0 and heat.zmin == -4.0 and heat.zmax == 4.0
    colors = [c[1] for c in heat.colorscale]
    assert colors[0] != colors[-1]
    assert np.array(heat.z) == pytest.approx(m)


def test_log_values_drop_zeros_and_non_finite():
    assert figures._positive([1.0, 0.0, -1.0, np.nan, np.inf, 2e-3]) == [
        1.0, None, None, None, None, 2e-3]


def test_lineup_figure_plots_against_hvps():
    import tensorflow as tf

    from trpo_viz.lineup import SolverSuite

    a = np.diag([1.0, 3.0, 10.0, 30.0])
    matrix = tf.constant(a)
    suite = SolverSuite(lambda v: tf.linalg.matvec(matrix, v), dtype=tf.float64)
    lineup = suite.lineup(np.ones(4), budget=12, rtol=1e-10, hessian=a)
    fig = figures.lineup_figure(lineup)
    names = {t.name for t in fig.data}
    assert {"CG", "MINRES", "steepest descent", "PCG (Jacobi)"} <= names
    cg = [t for t in fig.data if t.name == "CG"]
    assert len(cg) == 3  # residual, relative error, A-norm error
    trace = lineup.traces["cg"]
    assert list(cg[0].x) == list(trace.hvps)
    expected = np.linalg.norm(np.ones(4) - trace.iterates @ a, axis=1)
    got = np.array([np.nan if v is None else v for v in cg[0].y], dtype=float)
    mask = expected > 1e-12
    assert got[mask] == pytest.approx(expected[mask], rel=1e-6)
    assert fig.layout.yaxis.type == "log" and fig.layout.yaxis.exponentformat == "power"


def test_lineup_figure_leaves_out_a_norm_when_indefinite():
    import tensorflow as tf

    from trpo_viz.lineup import SolverSuite

    a = np.array([[2.0, 1.0], [1.0, -2.0]])
    matrix = tf.constant(a)
    suite = SolverSuite(lambda v: tf.linalg.matvec(matrix, v), dtype=tf.float64)
    lineup = suite.lineup(np.array([1.0, 0.2]), budget=6, hessian=a)
    fig = figures.lineup_figure(lineup)
    a_norm = [t for t in fig.data if t.xaxis == "x3"]
    assert a_norm == []
    assert any(t.name == "MINRES" for t in fig.data)
    assert any("not<br>positive definite" in a.text for a in fig.layout.annotations)


def test_cost_figure_marks_the_crossover_where_the_fits_meet():
    """The crossover line sits at N (a shape: data units); its label on the log axis sits at
    log10 N (an annotation's unit there), else plotly stretches the axis to 10^N."""
    import dataclasses

    from trpo_viz.cost import CostRow, fit_costs

    def row(n, explicit, cg):
        values = {f.name: None for f in dataclasses.fields(CostRow)}
        values.update(n=n, target_n=n, iters=10, explicit_seconds=explicit,
                      explicit_cpu_seconds=explicit, explicit_bytes=8 * n * n,
                      explicit_bytes_measured=True, hvp_cg_seconds=cg, hvp_cg_cpu_seconds=cg,
                      hvp_cg_bytes=100 * n, hvp_seconds=cg / 10)
        return CostRow(**values)

    # explicit ∝ N^2.3, CG ∝ N^0.2: by hand the lines meet between N = 100 and 300
    rows = [row(100, 0.001, 0.003), row(300, 0.01, 0.004), row(1000, 0.2, 0.005)]
    fits = fit_costs(rows)
    assert 100 < fits.crossover_n < 300
    fig = figures.cost_figure(rows, fits, extend_to=1e6)
    (line,) = fig.layout.shapes
    assert line.x0 == line.x1 == pytest.approx(fits.crossover_n)
    label = next(a for a in fig.layout.annotations if "crossover" in a.text)
    assert label.x == pytest.approx(np.log10(fits.crossover_n))


def test_rounding_copies_are_drawn_hollow_and_named(spd_view):
    """The markers of the Ritz trace follow the view's copy masks, row after row."""
    rng = np.random.default_rng(0)
    eigenvalues = np.concatenate([np.geomspace(1e-2, 1.0, 37), [30.0, 60.0, 100.0]])
    q, _ = np.linalg.qr(rng.normal(size=(40, 40)))
    a = (q * eigenvalues) @ q.T
    cg = numpy_cg(a, rng.normal(size=40), 40)
    view = krylov_view(cg, hessian=a, eps=float(np.finfo(np.float64).eps))
    copies = np.concatenate(view.ritz_copies)
    assert copies.sum() >= 4  # float64 CG past its loss of orthogonality finds 30, 60, 100 twice
    fig = figures.ritz_figure(view)
    ritz = next(t for t in fig.data if t.name == "Ritz values of T_k")
    symbols = np.array(ritz.marker.symbol)
    np.testing.assert_array_equal(symbols == "diamond-open", copies)
    # every copy sits on one of the outliers, which are simple eigenvalues
    assert np.all(np.min(np.abs(np.array(ritz.x)[copies][:, None] - [30.0, 60.0, 100.0]),
                         axis=1) <= 1e-6 * 100)
    assert any(t.name.startswith("copies of a converged Ritz value") for t in fig.data)
    view, *_ = spd_view  # six steps on six eigenvalues: no copies, no legend entry
    fig = figures.ritz_figure(view)
    assert not any((t.name or "").startswith("copies") for t in fig.data)
    ritz = next(t for t in fig.data if t.name == "Ritz values of T_k")
    assert set(ritz.marker.symbol) == {"circle"}
