"""A stored sweep read back: its trials, their learning curves, and a summary per setting.

Definitions (shown with the numbers wherever they appear):

* A trial's **learning curve** has one point per update: x = environment steps so far,
  y = the mean return of the episodes that ended in that update, carried forward
  through updates in which none ended (none before the first episode ends).
* Its **final return** is the mean return of all episodes that ended in the last 10 %
  of its updates (at least the last update).
* Per setting, over its *finished* seeds: the final returns' interquartile mean with a
  95 % stratified-bootstrap interval (the seeds resampled; one task, so one stratum),
  median and mean; and the learning curves' IQM with the same kind of band at every
  point (whole curves resampled). With one finished seed there is no interval (None).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from trpo_viz.sweep import stats, storage
from trpo_viz.sweep.grid import setting_label

FINAL_FRACTION = 0.1


@dataclass
class TrialResult:
    run_id: str
    setting: dict
    label: str
    seed: int
    status: str  # see storage.TRIAL_STATUSES
    error: str | None
    updates: int
    timesteps: int
    budget: int  # the trial's total timesteps
    wall_s: float | None
    final_mean_return: float | None
    curve_x: np.ndarray
    curve_y: np.ndarray

    @property
    def progress(self) -> float:
        return 1.0 if self.status == "finished" else min(1.0, self.timesteps / max(self.budget, 1))


@dataclass
class SettingSummary:
    setting: dict
    label: str
    seeds: int  # trials of this setting
    finished: int  # of which finished (the summary uses these)
    iqm: float | None
    ci_low: float | None
    ci_high: float | None
    median: float | None
    mean: float | None
    wall_s_mean: float | None
    curve_x: np.ndarray = field(default_factory=lambda: np.zeros(0))
    curve_iqm: np.ndarray = field(default_factory=lambda: np.zeros(0))
    curve_low: np.ndarray = field(default_factory=lambda: np.zeros(0))
    curve_high: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def to_dict(self) -> dict:
        return {"setting": self.setting, "label": self.label, "seeds": self.seeds,
                "finished": self.finished, "iqm": self.iqm, "ci_low": self.ci_low,
                "ci_high": self.ci_high, "median": self.median, "mean": self.mean,
                "wall_s_mean": self.wall_s_mean}


@dataclass
class SweepResults:
    sweep_id: str
    env_id: str
    keys: tuple[str, ...]
    trials: list[TrialResult]
    summary: list[SettingSummary]
    created: float

    def counts(self) -> dict[str, int]:
        out = {s: 0 for s in storage.TRIAL_STATUSES}
        for t in self.trials:
            out[t.status] += 1
        return out

    @property
    def active(self) -> bool:
        return any(t.status in ("pending", "running") for t in self.trials)


@dataclass(frozen=True)
class SweepListing:
    sweep_id: str
    env_id: str
    keys: tuple[str, ...]
    trials: int
    finished: int
    active: int
    created: float


def list_sweeps(store) -> list[SweepListing]:
    """Every sweep in the store, newest first."""
    out = []
    for sweep_id, runs in storage.sweep_runs(store).items():
        statuses = [storage.trial_status(r) for r in runs]
        _, keys = storage.parse_source(runs[0].source)
        out.append(SweepListing(sweep_id, runs[0].env_id, keys, len(runs),
                                statuses.count("finished"),
                                sum(s in ("pending", "running") for s in statuses),
                                min(r.created for r in runs)))
    return sorted(out, key=lambda s: s.created, reverse=True)


def final_mean_return(episode_returns_per_update: list[list[float]]) -> float | None:
    """Mean return of the episodes ending in the last 10 % of updates (≥ 1 update)."""
    n = len(episode_returns_per_update)
    if n == 0:
        return None
    window = max(1, math.ceil(FINAL_FRACTION * n))
    pooled = [r for returns in episode_returns_per_update[-window:] for r in returns
              if r is not None and math.isfinite(r)]
    return float(np.mean(pooled)) if pooled else None


def learning_curve(records) -> tuple[np.ndarray, np.ndarray]:
    """(steps, mean return carried forward) per update; NaN before the first episode."""
    x = np.array([r.total_timesteps for r in records], dtype=np.float64)
    y = np.full(len(records), np.nan)
    last = np.nan
    for i, record in enumerate(records):
        mean = record.mean_return
        if mean is not None and math.isfinite(mean):
            last = mean
        y[i] = last
    return x, y


def load_sweep(store, sweep_id: str, cache: dict | None = None,
               reps: int = stats.DEFAULT_REPS) -> SweepResults:
    """The sweep ``sweep_id`` from the store (:class:`GridError` if it has no trials).

    ``cache`` (run id -> (updates, curve, final)) saves re-reading records that a
    previous call already read (a page refreshing a live sweep).
    """
    from trpo_viz.sweep.grid import GridError

    storage.check_sweep_id(sweep_id)
    runs = storage.sweep_runs(store, sweep_id).get(sweep_id)
    if not runs:
        raise GridError(f"there is no sweep {sweep_id!r} in the run store")
    cache = {} if cache is None else cache
    _, keys = storage.parse_source(runs[0].source)
    trials = []
    for info in runs:
        config = info.config
        setting = storage.setting_of(config, keys)
        hit = cache.get(info.id)
        if hit is not None and hit[0] == info.updates:
            _, (x, y), final = hit
        else:
            records = store.records(info.id)
            x, y = learning_curve(records)
            final = final_mean_return([r.episode_returns for r in records])
            cache[info.id] = (info.updates, (x, y), final)
        status = storage.trial_status(info)
        trials.append(TrialResult(
            info.id, setting, setting_label(setting), config.seed, status, info.error,
            info.updates, info.total_timesteps, config.total_timesteps,
            info.wall_s if status == "finished" else None,
            final if status == "finished" else None, x, y))
    trials.sort(key=lambda t: (_order(t.setting, runs, keys), t.seed))
    return SweepResults(sweep_id, runs[0].env_id, keys, trials, summarise(trials, reps),
                        min(r.created for r in runs))


def _order(setting: dict, runs, keys) -> int:
    """Settings in the order their first trial was created (the grid's order)."""
    for i, info in enumerate(runs):
        if storage.setting_of(info.config, keys) == setting:
            return i
    return len(runs)


def summarise(trials: list[TrialResult], reps: int = stats.DEFAULT_REPS) -> list[SettingSummary]:
    groups: dict[str, list[TrialResult]] = {}
    for t in trials:
        groups.setdefault(t.label, []).append(t)
    return [_summary(group, reps) for group in groups.values()]


def _summary(group: list[TrialResult], reps: int) -> SettingSummary:
    done = [t for t in group if t.status == "finished"]
    finals = np.array([t.final_mean_return for t in done if t.final_mean_return is not None],
                      dtype=np.float64)
    walls = [t.wall_s for t in done if t.wall_s is not None]
    out = SettingSummary(group[0].setting, group[0].label, len(group), len(done),
                         None, None, None, None, None,
                         float(np.mean(walls)) if walls else None)
    if finals.size:
        out.iqm = float(stats.iqm(finals))
        out.median = float(np.median(finals))
        out.mean = float(np.mean(finals))
        if finals.size >= 2:
            ci = stats.interval(finals, reps=reps)
            out.ci_low, out.ci_high = ci.low, ci.high
    curves = [t for t in done if t.curve_x.size]
    if curves:
        length = min(t.curve_x.size for t in curves)
        matrix = np.stack([t.curve_y[:length] for t in curves])
        out.curve_x = curves[0].curve_x[:length]
        out.curve_iqm, out.curve_low, out.curve_high = stats.curve_band(matrix, reps=reps)
        if len(curves) < 2:  # no interval from one run
            out.curve_low = out.curve_high = np.full(length, np.nan)
    return out
