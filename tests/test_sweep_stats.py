"""IQM and stratified bootstrap against hand-computed cases and scipy's trim_mean."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as scipy_stats

from trpo_viz.sweep.stats import curve_band, interval, iqm, nan_iqm, stratified_bootstrap


@pytest.mark.parametrize(
    "scores, expected",
    [
        ([7.0], 7.0),  # n = 1: nothing cut
        ([1.0, 2.0, 9.0], 4.0),  # n = 3: ⌊3/4⌋ = 0 cut, the plain mean
        ([4.0, 1.0, 3.0, 2.0], 2.5),  # n = 4: one cut from each end -> mean(2, 3)
        ([10.0, 1.0, 2.0, 3.0, 4.0], 3.0),  # n = 5: one cut -> mean(2, 3, 4)
        ([1, 2, 3, 4, 100, 5, 6, 7], 4.5),  # n = 8: two cut -> mean(3, 4, 5, 6)
        ([-50, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 400], 1.5),  # n = 12: three cut -> mean(1,1,1,2,2,2)
    ],
)
def test_iqm_by_hand(scores, expected):
    assert iqm(scores) == pytest.approx(expected, rel=1e-12)


def test_iqm_matches_scipy_trim_mean():
    rng = np.random.default_rng(3)
    for n in range(1, 30):
        x = rng.standard_cauchy(n)
        assert iqm(x) == pytest.approx(scipy_stats.trim_mean(x, 0.25), rel=1e-12, abs=1e-12)
    matrix = rng.normal(size=(6, 9))
    np.testing.assert_allclose(iqm(matrix, axis=1), scipy_stats.trim_mean(matrix, 0.25, axis=1))


def test_nan_iqm_uses_the_finite_scores_of_each_row():
    x = np.array([[1.0, 2.0, 3.0, 4.0], [np.nan, 5.0, np.inf, 1.0], [np.nan] * 4])
    out = nan_iqm(x, axis=1)
    assert out[0] == pytest.approx(2.5)
    assert out[1] == pytest.approx(3.0)  # finite {5, 1}: n = 2, nothing cut
    assert np.isnan(out[2])


def _fractions(values, support):
    return np.array([np.mean(np.isclose(values, s)) for s in support])


def test_bootstrap_of_two_runs_has_the_hand_derived_distribution():
    """Runs {a, b}: a resample is aa, ab, ba or bb, so the mean is a, (a+b)/2 or b with
    probabilities 1/4, 1/2, 1/4 (the IQM of two scores is their mean)."""
    a, b, reps = 2.0, 6.0, 8000
    replicates = stratified_bootstrap(np.array([[a], [b]]), reps=reps, seed=1)
    expected = np.array([0.25, 0.5, 0.25])
    got = _fractions(replicates, [a, (a + b) / 2, b])
    assert got.sum() == pytest.approx(1.0)  # nothing outside the support
    sigma = np.sqrt(expected * (1 - expected) / reps)
    assert np.all(np.abs(got - expected) < 5 * sigma)
    ci = interval([a, b], reps=reps, seed=1)
    assert (ci.estimate, ci.low, ci.high) == pytest.approx((4.0, a, b))


def test_bootstrap_is_stratified_by_task():
    """Task 1 has runs {0, 0}, task 2 runs {10, 20}. Within-task resampling keeps two
    runs of each task, so the mean of the four scores is (x + y)/4, x, y ∈ {10, 20}:
    5, 7.5 or 10 with probabilities 1/4, 1/2, 1/4. Pooled resampling of all four
    scores would give other values (0, 2.5, 15, …)."""
    scores = np.array([[0.0, 10.0], [0.0, 20.0]])  # (runs, tasks)
    reps = 8000
    replicates = stratified_bootstrap(scores, statistic=lambda x, axis: x.mean(axis=axis),
                                      reps=reps, seed=2)
    got = _fractions(replicates, [5.0, 7.5, 10.0])
    assert got.sum() == pytest.approx(1.0)
    expected = np.array([0.25, 0.5, 0.25])
    assert np.all(np.abs(got - expected) < 5 * np.sqrt(expected * (1 - expected) / reps))


def test_constant_scores_give_a_zero_width_interval():
    ci = interval([3.0, 3.0, 3.0, 3.0, 3.0])
    assert ci.low == ci.estimate == ci.high == 3.0


def test_interval_contains_the_estimate_and_narrows_with_more_seeds():
    rng = np.random.default_rng(0)
    few = interval(rng.normal(100, 10, size=5), seed=0)
    many = interval(rng.normal(100, 10, size=80), seed=0)
    assert few.low <= few.estimate <= few.high
    assert many.low <= many.estimate <= many.high
    assert (many.high - many.low) < (few.high - few.low)


def test_curve_band_resamples_whole_runs():
    """Run i's curve is the constant i: every replicate picks whole runs, so each
    replicate curve is flat, and the band is flat too. The IQM of runs {0, 1, 2}
    (n = 3: their mean) is 1, and its replicates range over means of three picks."""
    curves = np.repeat(np.arange(3.0)[:, None], 7, axis=1)
    estimate, low, high = curve_band(curves, reps=4000)
    np.testing.assert_allclose(estimate, 1.0)
    assert np.ptp(low) == 0 and np.ptp(high) == 0
    assert 0.0 <= low[0] < 1.0 < high[0] <= 2.0


def test_curve_band_with_missing_points():
    curves = np.array([[1.0, 2.0, np.nan], [3.0, 4.0, np.nan], [5.0, np.nan, np.nan]])
    estimate, low, high = curve_band(curves, reps=500)
    assert estimate[0] == pytest.approx(3.0) and estimate[1] == pytest.approx(3.0)
    assert np.isnan(estimate[2]) and np.isnan(low[2]) and np.isnan(high[2])
    assert low[0] <= estimate[0] <= high[0]


def test_bad_input_is_refused():
    with pytest.raises(ValueError):
        iqm([])
    with pytest.raises(ValueError):
        stratified_bootstrap(np.zeros(3))
    with pytest.raises(ValueError):
        interval([1.0, 2.0], confidence=1.5)
