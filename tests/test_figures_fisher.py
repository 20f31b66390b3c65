"""Figures of CG against the exact natural gradient: records from tiny real runs in,
the plotted numbers checked against the records and against numpy."""

import math

import numpy as np
import plotly.graph_objects as go
import pytest

from trpo_viz.figures import fisher as figures
from trpo_viz.figures import plain
from trpo_viz.figures.fisher_spectrum import fisher_spectrum_figure
from trpo_viz.trpo.numerics import first_rounding_iteration

SMALL = dict(n_envs=2, n_steps=128, value_batch_size=64, value_epochs=1, hidden_sizes=(8,))


def _run(env_id, updates, **overrides):
    from trpo_viz.trpo import TRPOTrainer, default_config

    trainer = TRPOTrainer(default_config(env_id, **{**SMALL, **overrides}))
    try:
        return trainer.config, [trainer.step() for _ in range(updates)]
    finally:
        trainer.close()


@pytest.fixture(scope="module")
def runs():
    """Real records: CartPole with the exact Fisher (float32 CG), the same seed with the
    exact Fisher over its cap (no data), the gradient variant (no CG), and Pendulum with
    float64 CG (a diagonal Gaussian: F is non-singular there)."""
    return {
        "exact": _run("CartPole-v1", 3, exact_fisher=True),
        "too_large": _run("CartPole-v1", 2, exact_fisher=True, exact_fisher_max_params=10),
        "gradient": _run("CartPole-v1", 1, exact_fisher=True, variant="gradient"),
        "pendulum": _run("Pendulum-v1", 1, exact_fisher=True, fvp_dtype="float64"),
        "plain": _run("CartPole-v1", 1),
    }


def _trace(fig, name_start):
    (trace,) = [t for t in fig.data if t.name and t.name.startswith(name_start)]
    return trace


def _ritz_traces(fig):
    """The Ritz-value trace and the trace of their rounding copies (None if no copies)."""
    copies = [t for t in fig.data if t.name and t.name.startswith("copies of a converged")]
    return _trace(fig, "Ritz values of F + λI"), (copies[0] if copies else None)


def _text(fig) -> str:
    return " ".join(a.text for a in fig.layout.annotations).replace("<br>", " ")


def _valid(fig) -> go.Figure:
    """The figures are built without validation: every one must pass it (returned as built)."""
    go.Figure(fig.to_dict())  # raises on an unknown property or a bad value
    return fig


def _kappa_damped(eigenvalues, damping) -> float:
    values = np.asarray(eigenvalues, np.float64)
    return (values.max() + damping) / (max(values.min(), 0.0) + damping)


# ----------------------------------------------------------------------------- one update


def test_cg_figure_plots_the_records_errors_and_cosines(runs):
    _, records = runs["exact"]
    for record in records:
        fig = _valid(figures.cg_vs_exact_figure(record))
        k = record.cg_iterations
        assert k >= 2 and figures.exact_fisher_note(record) is None
        relative = _trace(fig, "‖x_k − s*‖ / ‖s*‖")
        assert list(relative.x) == list(range(k + 1))
        np.testing.assert_array_equal(relative.y, record.cg_exact_errors)
        np.testing.assert_array_equal(_trace(fig, "‖x_k − s*‖_A").y, record.cg_exact_errors_fnorm)
        cosine = _trace(fig, "cos(x_k, s*)")
        assert list(cosine.x) == list(range(1, k + 1))  # no cosine at k = 0, where x_0 = 0
        np.testing.assert_array_equal(cosine.y, record.cg_exact_cosines[1:])
        assert cosine.yaxis == "y2"


def test_rounding_level_is_eps_times_kappa_and_is_said(runs):
    config, records = runs["exact"]
    record = records[-1]
    kappa = _kappa_damped(record.fisher_eigenvalues, config.cg_damping)
    level = np.finfo(np.float32).eps * kappa
    assert figures.rounding_level(record) == pytest.approx(level, rel=1e-6)
    fig = figures.cg_vs_exact_figure(record)
    band = _trace(fig, "ε·κ(F+λI) in float32")
    assert band.fill == "tonexty"
    np.testing.assert_allclose(band.y, [level, level], rtol=1e-6)
    text = _text(fig)
    assert "rounding noise, not mathematics" in text and f"{level:.1e}" in text
    # The ring sits at the first k whose error is at or below the level, if there is one.
    below = [k for k, e in enumerate(record.cg_exact_errors) if e <= level]
    rings = [t for t in fig.data if t.marker and t.marker.symbol == "circle-open"]
    if below:
        assert [list(t.x) for t in rings] == [[below[0]]]
        assert f"reaches it at k = {below[0]}" in text
    else:
        assert rings == [] and "stays above it" in text
    k_lost = first_rounding_iteration(record.cg_orthogonality)
    assert (f"From k = {k_lost}" in text) == (k_lost is not None)


def test_rounding_level_follows_the_dtype(runs):
    """float64 CG on Pendulum: ε64·κ, and a curve that reaches it is ringed there."""
    config, (record,) = runs["pendulum"]
    assert record.cg_dtype == "float64"
    kappa = _kappa_damped(record.fisher_eigenvalues, config.cg_damping)
    assert figures.rounding_level(record) == pytest.approx(np.finfo(np.float64).eps * kappa,
                                                           rel=1e-6)
    errors = record.cg_exact_errors
    level = errors[-1]  # a level the curve reaches: the first k at or below it is found
    expected = min(k for k, e in enumerate(errors) if e <= level)
    assert figures.first_below(errors, level) == expected
    assert figures.first_below([1.0, math.nan, 0.5], 0.6) == 2  # NaN never counts
    assert figures.first_below([1.0, 0.9], 0.5) is None


def test_a_record_without_exact_data_says_why(runs):
    _, too_large = runs["too_large"]
    _, (plain,) = runs["plain"]
    for record, words in ((too_large[0], "more parameters than the run's cap"),
                          (plain, "started without")):
        note = figures.exact_fisher_note(record)
        assert words in note and not figures.has_exact(record)
        fig = _valid(figures.cg_vs_exact_figure(record))
        assert list(fig.data) == [] and words in _text(fig)
    singular = type(plain)(0, 0, exact_fisher_status="singular")
    assert "singular" in figures.exact_fisher_note(singular)


def test_variant_without_cg_shows_its_one_iterate_and_the_gradient_cosine(runs):
    _, (record,) = runs["gradient"]
    assert record.cg_iterations == 0 and len(record.cg_exact_errors) == 1
    fig = _valid(figures.cg_vs_exact_figure(record))
    assert list(_trace(fig, "‖x_k − s*‖ / ‖s*‖").y) == [pytest.approx(1.0)]
    assert f"cos(g, s*) = {record.exact_step_cosine:.4f}" in _text(fig)


# ----------------------------------------------------------------------------- spectrum


def test_condition_numbers_are_numpys(runs):
    for name in ("exact", "pendulum"):
        config, records = runs[name]
        record = records[-1]
        values = np.asarray(record.fisher_eigenvalues)
        lam = config.cg_damping
        kappa, kappa_damped = figures.condition_numbers(record, lam)
        assert kappa_damped == pytest.approx(_kappa_damped(values, lam), rel=1e-12)
        if values.min() > 0:
            assert kappa == pytest.approx(values.max() / values.min(), rel=1e-12)
        else:
            assert kappa == math.inf
        # the trainer's own κ(F + λI) says the same
        assert kappa_damped == pytest.approx(record.fisher_condition_damped, rel=1e-9)
        # damping can only lower the condition number of a positive semi-definite F
        assert kappa_damped <= kappa


def test_spectrum_figure_states_kappa_with_and_without_damping(runs):
    for name in ("exact", "pendulum"):
        config, records = runs[name]
        record = records[-1]
        lam = config.cg_damping
        fig = _valid(fisher_spectrum_figure(record, lam))
        values = np.asarray(record.fisher_eigenvalues)
        kappa_damped = _kappa_damped(values, lam)
        assert fig.layout.meta["kappa_damped"] == pytest.approx(kappa_damped, rel=1e-12)
        text = _text(fig)
        assert f"κ(F + λI) = (λ_max + λ)/(λ_min + λ) = {plain.number(kappa_damped)}" in text
        zeros = int(np.count_nonzero(values == 0))
        if values.min() > 0:
            assert f"κ(F) = {plain.number(values.max() / values.min())}" in text
            assert fig.layout.meta["kappa"] == pytest.approx(values.max() / values.min())
        else:
            assert "κ(F) = ∞" in text and f"{zeros:,} of {len(values):,} eigenvalues are 0" in text
        # F's non-zero eigenvalues and F + λI's, from the largest down (runs of equal
        # values drawn as their two ends)
        undamped = _trace(fig, "eigenvalues of F (non-zero)")
        damped = _trace(fig, "eigenvalues of F + λI")
        assert max(undamped.y) == values.max() and min(undamped.y) == values[values > 0].min()
        assert damped.y[0] == pytest.approx(values.max() + lam)
        assert damped.y[-1] == pytest.approx(values.min() + lam)
        assert list(damped.x) == sorted(damped.x) and damped.x[-1] == len(values)
        assert np.all(np.diff(damped.y) <= 0)


def test_ritz_values_sit_where_they_fall_in_the_spectrum(runs):
    config, records = runs["exact"]
    record = records[-1]
    fig = fisher_spectrum_figure(record, config.cg_damping)
    ritz, copies = _ritz_traces(fig)
    drawn = [*ritz.y, *(copies.y if copies is not None else [])]
    np.testing.assert_array_equal(sorted(drawn), record.cg_ritz_values)
    damped = np.sort(np.asarray(record.fisher_eigenvalues) + config.cg_damping)[::-1]
    points = [*zip(ritz.y, ritz.x, strict=True),
              *(zip(copies.y, copies.x, strict=True) if copies is not None else [])]
    for theta, x in points:
        # position x: eigenvalues above θ are at positions before x, those below after it
        i = int(np.floor(x))
        assert 1 <= x <= len(damped)
        assert damped[i - 1] >= theta * (1 - 1e-9) or i == 1
        assert damped[min(i, len(damped) - 1)] <= theta * (1 + 1e-9) or i == len(damped)


def test_ritz_values_alone_without_exact_eigenvalues(runs):
    config, records = runs["too_large"]
    record = records[-1]
    assert record.fisher_eigenvalues == [] and record.cg_ritz_values
    fig = _valid(fisher_spectrum_figure(record, config.cg_damping))
    ritz, copies = _ritz_traces(fig)
    drawn = sorted([*ritz.y, *(copies.y if copies is not None else [])], reverse=True)
    np.testing.assert_array_equal(drawn, sorted(record.cg_ritz_values, reverse=True))
    j = sorted([*ritz.x, *(copies.x if copies is not None else [])])
    assert j == list(range(1, len(record.cg_ritz_values) + 1))  # 1 = largest, none skipped
    bound = max(record.cg_ritz_values) / min(record.cg_ritz_values)
    assert fig.layout.meta["ritz_kappa"] == pytest.approx(bound)
    text = _text(fig)
    assert f"κ(F + λI) ≥ θ_max/θ_min = {plain.number(bound)}" in text
    assert "Exact eigenvalues: not computed (the policy has more parameters than " \
           "exact_fisher_max_params)" in text
    # no CG, no Ritz values, no exact eigenvalues: a figure that says so
    _, (plain_gradient,) = runs["gradient"]
    empty = type(plain_gradient)(0, 0, variant="gradient")
    assert "no Ritz values" in _text(fisher_spectrum_figure(empty, 0.1))


def test_rounding_copies_of_ritz_values_are_drawn_hollow_and_named(runs):
    """Against the exact Fisher: after the copies are set apart, no eigenvalue of F + λI
    has more converged Ritz values on it than its multiplicity; the copies sit on found
    ones. (A Ritz value whose bound is still above krylov.CONVERGED is never marked: it may
    sit beside a converged one on its way to becoming a copy.)"""
    config, records = runs["exact"]
    marked = 0
    for record in records:
        fig = _valid(fisher_spectrum_figure(record, config.cg_damping))
        ritz, copies = _ritz_traces(fig)
        damped = np.asarray(record.fisher_eigenvalues) + config.cg_damping
        converged = [t for t in ritz.y if not _unconverged(record, t)]
        for theta in converged:
            close = 1e-4 * theta
            on_it = np.sum(np.abs(np.asarray(converged) - theta) <= close)
            multiplicity = np.sum(np.abs(damped - theta) <= close)
            assert on_it <= max(multiplicity, 1)
        if copies is None:
            continue
        marked += len(copies.y)
        assert copies.marker.symbol == "diamond-open"
        for theta in copies.y:  # each repeats a Ritz value that is drawn, on an eigenvalue
            assert np.min(np.abs(np.asarray(ritz.y) - theta)) <= 1e-3 * theta
            assert np.min(np.abs(damped - theta)) <= 1e-3 * theta
        lost = first_rounding_iteration(record.cg_orthogonality)
        assert (f"{len(copies.y)} of the {len(record.cg_ritz_values)} Ritz values (hollow) "
                f"repeat another converged one") in _text(fig)
        assert f"lose orthogonality (from iteration {lost})" in _text(fig)
    assert marked > 0  # float32 CG on CartPole's Fisher: its top eigenvalues come back


def _unconverged(record, theta) -> bool:
    """Whether θ's residual bound is above krylov.CONVERGED of it (such values stay)."""
    from trpo_viz.krylov import CONVERGED, ritz_residual_bounds

    k = len(record.cg_ritz_values)
    r = np.asarray(record.cg_residuals, np.float64)
    c = np.asarray(record.cg_curvatures, np.float64)
    bounds = ritz_residual_bounds(r[:k] ** 2 / c[:k], r[1:k + 1] ** 2 / r[:k] ** 2, [k])[-1]
    i = int(np.argmin(np.abs(np.asarray(record.cg_ritz_values) - theta)))
    return bounds[i] > CONVERGED * theta


# ----------------------------------------------------------------------------- over time


def test_over_time_leaves_gaps_where_there_is_no_exact_data(runs):
    _, exact = runs["exact"]
    _, too_large = runs["too_large"]
    # a run whose second update has no exact data (the same seed and batch, over the cap)
    records = [exact[0], too_large[1], exact[2]]
    fig = _valid(figures.exact_over_time_figure(records))
    assert all(list(t.x) == [1, 2, 3] for t in fig.data)
    final = _trace(fig, "‖x_K − s*‖/‖s*‖")
    assert list(final.y) == [exact[0].cg_exact_errors[-1], None, exact[2].cg_exact_errors[-1]]
    fnorm = _trace(fig, "(F+λI)-norm error")
    assert fnorm.y[1] is None and fnorm.y[2] == exact[2].cg_exact_errors_fnorm[-1]
    kappa = _trace(fig, "κ(F + λI) (exact)")
    assert list(kappa.y) == [exact[0].fisher_condition_damped, None,
                             exact[2].fisher_condition_damped]
    assert _trace(fig, "rounding level").y[1] is None
    gains = _trace(fig, "exact TRPO's step")
    assert list(gains.y) == [exact[0].exact_improvement, None, exact[2].exact_improvement]
    taken = _trace(fig, "this run's step")
    assert list(taken.y) == [r.actual_improvement for r in records]  # every update has one
    ritz = _trace(fig, "θ_max/θ_min")  # CG's own bound: every update with CG has it
    assert all(v is not None for v in ritz.y)
    for value, record in zip(ritz.y, records, strict=True):
        assert value == pytest.approx(max(record.cg_ritz_values) / min(record.cg_ritz_values))
        if figures.has_exact(record):  # a lower bound on the exact κ(F + λI)
            assert value <= record.fisher_condition_damped * (1 + 1e-4)
    assert not any(t.connectgaps for t in fig.data)
    assert "1 of 3 updates have no exact-Fisher data: gaps, not zeros" in _text(fig)


def test_over_time_without_any_exact_data_says_so(runs):
    _, records = runs["too_large"]
    fig = _valid(figures.exact_over_time_figure(records))
    assert all(v is None for v in _trace(fig, "‖x_K − s*‖/‖s*‖").y)
    assert "No update has exact-Fisher data" in _text(fig)
    assert "No updates yet" in _text(figures.exact_over_time_figure([]))
