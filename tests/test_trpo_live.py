"""LiveRun (what the TRPO page holds): limits, slices kept per update, archives, replay."""

import io
import zipfile

import numpy as np
import pytest
from PIL import Image

from trpo_viz.figures import trpo as figures
from trpo_viz.trpo import live
from trpo_viz.trpo.config import default_config
from trpo_viz.trpo.live import LiveRun, RunLimitError, config_from_form


@pytest.fixture(scope="module")
def run():
    run = LiveRun.start(default_config("CartPole-v1", n_steps=256, n_envs=2))
    for _ in range(3):
        run.step()
    yield run
    run.close()


def test_each_update_keeps_its_trust_region_slice(run):
    assert sorted(run.slices) == [r.update for r in run.records] == [0, 1, 2]
    plane = run.slice_for(2)
    assert plane["improvement"].shape == plane["kl"].shape == (live.SLICE_GRID, live.SLICE_GRID)
    # θ_old itself (a = b = 0) has zero improvement and zero KL.
    i0 = int(np.argmin(np.abs(plane["betas"])))
    j0 = int(np.argmin(np.abs(plane["alphas"])))
    assert plane["alphas"][j0] == 0 and plane["betas"][i0] == 0
    assert abs(plane["improvement"][i0, j0]) < 1e-6 and abs(plane["kl"][i0, j0]) < 1e-7
    record = run.records[2]
    if record.accepted:
        assert plane["accepted"] == pytest.approx((record.step_fraction, 0.0))


def test_archive_round_trip_replays_records_and_slices(run):
    data = run.to_bytes()
    replay = LiveRun.replay(data)
    assert not replay.live
    assert [r.to_dict() for r in replay.records] == [r.to_dict() for r in run.records]
    for update, plane in run.slices.items():
        np.testing.assert_array_equal(replay.slices[update]["improvement"], plane["improvement"])
        assert replay.slices[update]["accepted"] == plane["accepted"]
    with pytest.raises(RunLimitError):
        replay.to_bytes()


def test_figures_build_from_records_and_slices(run):
    record = run.records[-1]
    slice_fig = figures.trust_region_slice_figure(run.slice_for(record.update))
    names = {trace.name for trace in slice_fig.data}
    assert {"KL = δ (trust region)", "line-search candidates", "θ_old"} <= names
    assert len(figures.line_search_figure(record).data[0].x) == len(record.candidates)
    cg_fig = figures.cg_residuals_figure(record)
    iterations = {x for t in cg_fig.data if t.name and t.name.startswith("‖r_k‖") for x in t.x}
    assert iterations == set(range(record.cg_iterations + 1))
    history = figures.trust_region_history_figure(run.records)
    assert list(history.data[0].x) == [1, 2, 3]
    curve = figures.learning_curve_figure(run.records)
    assert len(curve.data[0].y) == sum(len(r.episode_returns) for r in run.records)


def test_rollout_frames_become_an_animated_gif(run):
    frames = run.refresh_frames(max_frames=20, every=1)
    assert 0 < len(frames) <= 10 and frames[0].shape[:2] == live.FRAME_SIZE
    gif = Image.open(io.BytesIO(run.rollout_gif))
    assert gif.format == "GIF" and 1 < gif.n_frames <= len(frames)  # PIL merges repeats
    assert gif.size == (live.FRAME_SIZE[1], live.FRAME_SIZE[0])
    assert run.frames_update == len(run.records)


def test_ellipse_of_the_quadratic_model():
    m = np.array([[2.0, 0.0], [0.0, 8.0]])
    points = figures._ellipse(m, 0.01, np.linspace(0, 2 * np.pi, 50))
    np.testing.assert_allclose(0.5 * np.einsum("in,ij,jn->n", points, m, points), 0.01)
    assert figures._ellipse(np.diag([1.0, -1.0]), 0.01, np.linspace(0, 1, 5)) is None


@pytest.mark.parametrize(
    "overrides, message",
    [
        (dict(n_steps=8192, n_envs=2), "batch size"),
        (dict(hidden_sizes=(1024,)), "limited"),
        (dict(max_kl=-0.1), r"δ \(max KL\): must be between 1e-06 and 1, got -0.1"),
        (dict(gamma=float("nan")), r"γ \(discount\): must be between 0 and 1, got nan"),
        (dict(hidden_sizes=()), r"Hidden sizes: needs at least one layer size"),
        (dict(bogus=1), "unknown settings"),
    ],
)
def test_bad_or_excessive_settings_are_refused(overrides, message):
    with pytest.raises(ValueError, match=message):
        config_from_form("CartPole-v1", **overrides)


def test_server_wide_limit_on_concurrent_runs(monkeypatch):
    monkeypatch.setattr(live, "MAX_CONCURRENT_RUNS", 0)
    with pytest.raises(RunLimitError, match="already training"):
        LiveRun.start(default_config("CartPole-v1"))


@pytest.mark.parametrize("data", [b"not a zip", b""])
def test_unreadable_uploads_are_refused(data):
    with pytest.raises(RunLimitError):
        LiveRun.replay(data)


def test_archive_without_records_is_refused():
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("hello.txt", "hi")
    with pytest.raises(RunLimitError, match="not a trpo-viz run"):
        LiveRun.replay(buffer.getvalue())
