"""What the TRPO views share with the core (trpo_viz.trpo.live): limits, the form, each
update's stored slice, rollout pictures, and run files read back from their archive."""

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from trpo_viz.figures import trpo as figures
from trpo_viz.trpo import live
from trpo_viz.trpo.config import default_config
from trpo_viz.trpo.live import ReplayError, RunLimitError, config_from_form, read_run_file

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def run(cartpole_trained_run):
    return cartpole_trained_run  # conftest: three stored CartPole updates, shared by the session


def test_each_update_keeps_its_trust_region_slice(run):
    assert sorted(run.slices) == [r.update for r in run.records] == [0, 1, 2]
    plane = run.slices[2]
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
    replay = read_run_file(run.archive)  # what the library's download wrote
    assert replay.config == run.config
    assert [r.to_dict() for r in replay.records] == [r.to_dict() for r in run.records]
    assert sorted(replay.slices) == sorted(run.slices)
    for update, plane in run.slices.items():
        np.testing.assert_array_equal(replay.slices[update]["improvement"], plane["improvement"])
        assert replay.slices[update]["accepted"] == plane["accepted"]


def test_figures_build_from_records_and_slices(run):
    record = run.records[-1]
    slice_fig = figures.trust_region_slice_figure(run.slices[record.update])
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
    rollout = run.rollout  # the worker renders one after every update here
    assert rollout.note is None and rollout.update == run.records[-1].update
    gif = Image.open(io.BytesIO(rollout.gif))
    assert gif.format == "GIF" and 1 < gif.n_frames <= 60  # 120 states, every 2nd
    assert gif.size == (live.FRAME_SIZE[1], live.FRAME_SIZE[0])


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
        (dict(pg_lr=1000.0), r"Learning rate \(vanilla-pg\): must be between 0.0001 and 100, "
                             r"got 1000"),
        (dict(pg_lr=0.0), r"Learning rate \(vanilla-pg\): must be between 0.0001 and 100"),
        (dict(pg_lr=float("nan")), r"Learning rate \(vanilla-pg\): .* got nan"),
        (dict(pg_lr="1e-2"), r"Learning rate \(vanilla-pg\): must be a number between 0.0001 "
                             r"and 100, got '1e-2'"),
        (dict(max_kl=True), r"δ \(max KL\): must be a number"),
        (dict(variant="ppo"), r"Variant: must be one of trpo, npg, no-kl-check, gradient, "
                              r"vanilla-pg, got 'ppo'"),
        (dict(variant=None), r"Variant: must be one of"),
        (dict(exact_fisher="yes"), r"Exact Fisher beside CG: must be on or off"),
        (dict(exact_fisher=1), r"Exact Fisher beside CG: must be on or off"),
    ],
)
def test_bad_or_excessive_settings_are_refused(overrides, message):
    with pytest.raises(ValueError, match=message):
        config_from_form("CartPole-v1", **overrides)


@pytest.mark.parametrize("data", [b"not a zip", b""])
def test_unreadable_uploads_are_refused(data):
    with pytest.raises(ReplayError, match="^not a trpo-viz run file: "):
        read_run_file(data)


def test_archive_without_records_is_refused():
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("hello.txt", "hi")
    with pytest.raises(RunLimitError, match="not a trpo-viz run"):
        read_run_file(buffer.getvalue())


def test_files_over_the_upload_limit_are_refused_unread(monkeypatch, run):
    monkeypatch.setattr(live, "MAX_UPLOAD_BYTES", len(run.archive) - 1)
    with pytest.raises(ReplayError, match="larger than"):
        read_run_file(run.archive)
    monkeypatch.setattr(live, "MAX_UPLOAD_BYTES", len(run.archive))
    assert len(read_run_file(run.archive).records) == 3


# ------------------------------------------------------------------ the form's new fields


def test_variant_pg_lr_and_exact_fisher_are_applied_exactly():
    config = config_from_form("CartPole-v1", variant="vanilla-pg", pg_lr=2.5, exact_fisher=True,
                              seed=7)
    assert (config.variant, config.pg_lr, config.exact_fisher, config.seed) == (
        "vanilla-pg", 2.5, True, 7)
    text = live.describe_config(config)
    assert "variant vanilla-pg (Δ = 2.5·g: no Fisher, no trust region, no line search)" in text
    assert "exact Fisher beside CG every update (4,610 parameters, cap 20,000;" in text
    assert "F from 1,024 Jacobian rows" in text
    assert live.describe_config(default_config("CartPole-v1")).endswith(
        "variant TRPO (natural step by CG scaled to δ, line search with KL ≤ δ); exact Fisher off")
    assert live.form_differences(config, dict(variant="npg", pg_lr=2.5, exact_fisher=False)) == [
        "Variant", "Exact Fisher beside CG"]


def test_exact_fisher_the_trainer_would_skip_is_refused_not_skipped():
    # 4 → 256 → 256 → 2: 67,586 parameters, above the default cap of 20,000
    with pytest.raises(RunLimitError, match=r"Exact Fisher beside CG: needs a policy of at most "
                                            r"20,000 parameters .* this one has 67,586"):
        config_from_form("CartPole-v1", exact_fisher=True, hidden_sizes=(256, 256))
    assert not config_from_form("CartPole-v1", hidden_sizes=(256, 256)).exact_fisher  # off: fine
    # A config made elsewhere (the CLI) is described as the trainer will treat it.
    cli = default_config("CartPole-v1", exact_fisher=True, exact_fisher_max_params=100)
    assert ("exact Fisher asked for but skipped: the policy has 4,610 parameters, above the "
            "cap of 100 (each update records too_large)") in live.describe_config(cli)


def test_exact_fisher_whose_matrix_is_too_large_per_update_is_refused():
    # CartPole 64×64 on 8,192 states: F is 4,610 × 4,610 (one row per state, 2 actions)
    with pytest.raises(RunLimitError, match=r"needs a 4,610 × 4,610 matrix .* 8,192 Jacobian "
                                            r"rows, 162 MiB\); at most 4,096 × 4,096"):
        config_from_form("CartPole-v1", exact_fisher=True, n_envs=2, n_steps=4096)
    assert config_from_form("CartPole-v1", exact_fisher=True, n_envs=2, n_steps=2048).exact_fisher


@pytest.mark.parametrize("env_id, hidden", [("CartPole-v1", (32,)), ("Pendulum-v1", (64,)),
                                            ("Acrobot-v1", (16, 8))])
def test_exact_fisher_size_is_the_real_policys(env_id, hidden):
    """Parameters and Jacobian rows without TensorFlow, against the real policy and F."""
    from trpo_viz.hvp import num_parameters
    from trpo_viz.trpo.fisher import ExactFisher
    from trpo_viz.trpo.trainer import TRPOTrainer

    config = default_config(env_id, n_envs=2, n_steps=64, hidden_sizes=hidden, exact_fisher=True)
    size = live.exact_fisher_size(config)
    trainer = TRPOTrainer(config)
    try:
        assert size.parameters == num_parameters(trainer.policy.params)
        obs = np.random.default_rng(0).standard_normal(
            (config.batch_size, trainer.observation_space.shape[0]))
        fisher = ExactFisher(trainer.policy).compute(obs)
        assert fisher.factor is not None  # fewer rows than parameters: kept as its factor
        assert size.rows == len(fisher.factor) and size.dim == size.rows
    finally:
        trainer.close()


def test_limits_stay_free_of_tensorflow():
    import subprocess
    import sys

    code = ("import sys; from trpo_viz.trpo.config import default_config; "
            "from trpo_viz.trpo.limits import check_exact_fisher, exact_fisher_size; "
            "c = default_config('CartPole-v1', exact_fisher=True); check_exact_fisher(c); "
            "print(exact_fisher_size(c).parameters, 'tensorflow' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, cwd=str(ROOT))
    assert out.stdout.split() == ["4610", "False"], out.stderr


def test_variant_of_is_the_same_run_with_another_variant():
    config = config_from_form("CartPole-v1", seed=11, max_kl=0.02, exact_fisher=True,
                              hidden_sizes=(32, 32))
    other = live.variant_of(config, "vanilla-pg", pg_lr=10.0)
    assert (other.variant, other.pg_lr) == ("vanilla-pg", 10.0)
    same = {k: v for k, v in config.to_dict().items() if k not in ("variant", "pg_lr")}
    assert {k: v for k, v in other.to_dict().items() if k not in ("variant", "pg_lr")} == same
    assert live.variant_of(config, "npg").pg_lr == config.pg_lr  # kept when not given
    assert config.variant == "trpo"  # the original is not changed
    with pytest.raises(ValueError, match=r"Learning rate \(vanilla-pg\): must be between "
                                         r"0.0001 and 100, got 500"):
        live.variant_of(config, "vanilla-pg", pg_lr=500.0)
    with pytest.raises(ValueError, match=r"Variant: must be one of .*got 'sgd'"):
        live.variant_of(config, "sgd")
