"""Aggregate scores over seeds with honest uncertainty (Agarwal et al. 2021, "rliable").

``iqm``  the interquartile mean: the mean of the middle half of the scores. As in
rliable (``scipy.stats.trim_mean(x, 0.25)``), ⌊n/4⌋ scores are cut from each end of the
n sorted scores, so for n < 4 it is the plain mean, for n = 4 the mean of the middle
two, for n = 8 the mean of the middle four.

``stratified_bootstrap``  the bootstrap distribution of a statistic when scores come in
strata (tasks): each replicate resamples the runs (seeds) of every task with
replacement, independently per task, and keeps the task structure, so a replicate
never has more runs of one task than the data. For a learning curve the same
resampled runs serve every point of the curve (the runs are the unit of sampling,
not the points).

``interval``  a statistic with its percentile confidence interval from that
distribution (95 % by default).

NaN marks "no value" (a seed whose curve has not reached a point, or an update in
which no episode ended yet); the ``nan_`` forms use the finite scores only. rliable
itself was not used: it pulls in matplotlib, seaborn, statsmodels and arch for these
few lines of numpy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

TRIM = 0.25  # fraction cut from each end for the interquartile mean
DEFAULT_REPS = 2000
DEFAULT_CONFIDENCE = 0.95


def iqm(scores, axis=None) -> np.ndarray | float:
    """Interquartile mean along ``axis`` (all scores when None); NaN-free input."""
    x = np.asarray(scores, dtype=np.float64)
    if axis is None:
        x, axis = x.ravel(), 0
    x = np.moveaxis(x, axis, -1)
    n = x.shape[-1]
    if n == 0:
        raise ValueError("the interquartile mean of no scores is undefined")
    cut = int(TRIM * n)
    middle = np.sort(x, axis=-1)[..., cut:n - cut]
    out = middle.mean(axis=-1)
    return float(out) if out.ndim == 0 else out


def nan_iqm(scores, axis: int = -1) -> np.ndarray:
    """Interquartile mean of the finite scores along ``axis`` (NaN where there are none)."""
    x = np.moveaxis(np.asarray(scores, dtype=np.float64), axis, -1)
    x = np.where(np.isfinite(x), x, np.nan)
    ordered = np.sort(x, axis=-1)  # NaN sorts last
    m = np.isfinite(ordered).sum(axis=-1, keepdims=True)  # finite scores per row
    cut = np.floor(TRIM * m)
    rank = np.arange(x.shape[-1])
    keep = (rank >= cut) & (rank < m - cut)
    count = keep.sum(axis=-1)
    total = np.where(keep, ordered, 0.0).sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def stratified_bootstrap(scores, statistic=nan_iqm, reps: int = DEFAULT_REPS,
                         seed: int = 0) -> np.ndarray:
    """Bootstrap replicates of ``statistic`` over runs resampled within each task.

    ``scores`` has shape (runs, tasks) or (runs, tasks, points) (a curve per run and
    task). Replicate r draws, for every task t independently, ``runs`` indices with
    replacement and takes those runs' scores of task t. ``statistic`` maps an array of
    shape (reps, runs · tasks) — or (reps, runs · tasks, points) — to (reps,) — or
    (reps, points) — reducing axis 1 (default: :func:`nan_iqm` over all runs and tasks).
    """
    x = np.asarray(scores, dtype=np.float64)
    if x.ndim == 2:
        x = x[..., None]
        squeeze = True
    elif x.ndim == 3:
        squeeze = False
    else:
        raise ValueError("scores must have shape (runs, tasks) or (runs, tasks, points)")
    runs, tasks, points = x.shape
    if runs == 0 or tasks == 0:
        raise ValueError("no scores to resample")
    if reps < 1:
        raise ValueError("reps must be at least 1")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, runs, size=(reps, runs, tasks))  # per replicate, per task
    resampled = x[idx, np.arange(tasks)[None, None, :], :]  # (reps, runs, tasks, points)
    resampled = resampled.reshape(reps, runs * tasks, points)
    out = np.asarray(_reduce(statistic, resampled))
    return out[:, 0] if squeeze else out


def _reduce(statistic, array):
    return statistic(array, axis=1)


@dataclass(frozen=True)
class Interval:
    """A point estimate with its bootstrap percentile confidence interval."""

    estimate: float
    low: float
    high: float


def interval(scores, statistic=nan_iqm, reps: int = DEFAULT_REPS,
             confidence: float = DEFAULT_CONFIDENCE, seed: int = 0) -> Interval:
    """``statistic`` of ``scores`` (runs,) or (runs, tasks) with its percentile interval."""
    x = np.asarray(scores, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    estimate = float(_reduce(statistic, x.reshape(1, -1, 1))[0, 0])
    replicates = stratified_bootstrap(x, statistic, reps, seed)
    low, high = _percentiles(replicates, confidence)
    return Interval(estimate, float(low), float(high))


def curve_band(curves, reps: int = DEFAULT_REPS, confidence: float = DEFAULT_CONFIDENCE,
               seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """IQM over runs at every point of ``curves`` (runs, points), with its interval.

    Returns (iqm, low, high), each of shape (points,); NaN where no run has a value.
    """
    x = np.asarray(curves, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError("curves must have shape (runs, points)")
    estimate = nan_iqm(x, axis=0)
    replicates = stratified_bootstrap(x[:, None, :], nan_iqm, reps, seed)  # (reps, points)
    low, high = _percentiles(replicates, confidence)
    return estimate, low, high


def _percentiles(replicates: np.ndarray, confidence: float):
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    tail = 100 * (1 - confidence) / 2
    with np.errstate(all="ignore"):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN points stay NaN
            return np.nanpercentile(replicates, [tail, 100 - tail], axis=0)
