"""What the TRPO numbers are allowed to mean: rounding diagnostics, explained variance,
the honest CG and slice figures, and runs that stop at their total timesteps."""

import argparse
import math

import numpy as np
import pytest

from trpo_viz.figures import trpo as figures
from trpo_viz.trpo import numerics
from trpo_viz.trpo.command import add_train_parser, config_from_args
from trpo_viz.trpo.config import default_config
from trpo_viz.trpo.record import UpdateRecord
from trpo_viz.trpo.trainer import TrainingFinished, TRPOTrainer


def test_residual_orthogonality_measures_the_largest_cosine_to_earlier_residuals():
    e = np.eye(4)
    assert numerics.residual_orthogonality(e) == [0.0, 0.0, 0.0, 0.0]
    r = np.array([[1.0, 0.0], [0.0, 2.0], [3.0, 4.0], [0.0, 0.0]])
    out = numerics.residual_orthogonality(r)
    assert out[:3] == pytest.approx([0.0, 0.0, 0.8])  # cos to e2 is 4/5
    assert out[3] == 0.0  # an exact zero residual is orthogonal to everything
    assert numerics.first_rounding_iteration(out) == 2
    assert numerics.first_rounding_iteration([0.0, 1e-5, numerics.ORTHOGONALITY_LOST]) is None
    assert numerics.first_rounding_iteration([0.0, math.nan]) == 1


def test_rounding_floor_and_operator_norm_estimate():
    assert numerics.rounding_floor("float32", 1.0, 2.0, 3.0) == pytest.approx(
        np.finfo(np.float32).eps * 7.0
    )
    assert numerics.rounding_floor("float64", 1.0, 0.0, 0.0) == np.finfo(np.float64).eps
    A = np.diag([1.0, 10.0])
    directions = np.array([[1.0, 0.0], [0.0, 2.0]])
    curvatures = [d @ A @ d for d in directions]
    assert numerics.operator_norm_estimate(curvatures, directions) == pytest.approx(10.0)


@pytest.mark.parametrize(
    "ev, relvar, text",
    [
        (0.75, 0.06, "0.75"),
        (-6.91, 3e-10, "n/a (returns nearly constant)"),  # CartPole at 500: every R ≈ 100
        (0.5, 1e-8, "n/a (returns nearly constant)"),
        (math.nan, 0.0, "n/a (returns nearly constant)"),
        (math.nan, None, "n/a (returns constant)"),
        (0.12345, None, "0.12"),  # records saved before the relative variance existed
    ],
)
def test_explained_variance_text(ev, relvar, text):
    assert numerics.explained_variance_text(ev, relvar) == text


def test_explained_variance_and_relative_variance():
    R = np.array([1.0, 2.0, 3.0, 4.0])
    assert numerics.explained_variance(R, R) == 1.0
    assert numerics.explained_variance(np.full(4, R.mean()), R) == pytest.approx(0.0)
    assert math.isnan(numerics.explained_variance(R, np.ones(4)))
    assert numerics.relative_variance(np.ones(5)) == 0.0
    assert numerics.relative_variance(R) == pytest.approx(np.var(R) / np.mean(R**2))
    assert "1 − Var(R − V) / Var(R)" in numerics.EXPLAINED_VARIANCE_HELP


def _record(**fields) -> UpdateRecord:
    base = dict(update=0, total_timesteps=512, cg_iterations=5, cg_stop_reason="max_iter",
                cg_residuals=[1.0, 0.5, 0.2, 1e-7, 1e-9, 1e-12])  # fmt: skip
    return UpdateRecord(**(base | fields))


def test_cg_figure_marks_rounding_and_shows_the_true_residual():
    record = _record(
        cg_true_residual=3e-7,
        cg_orthogonality=[0.0, 1e-7, 1e-4, 0.3, 0.9, 0.5],
        cg_rounding_floor=2e-6,
    )
    fig = figures.cg_residuals_figure(record)
    traces = {t.name: t for t in fig.data if t.name}
    exact = traces["‖r_k‖ (recursive)"]
    lost = traces["‖r_k‖ after orthogonality is lost (rounding)"]
    assert list(exact.x) == [0, 1, 2] and list(lost.x) == [2, 3, 4, 5]
    true = traces["true ‖g − (F+λI)s‖"]
    assert list(true.x) == [5] and list(true.y) == [3e-7]
    assert list(traces["below float32's reach (rounding floor)"].y) == [2e-6, 2e-6]
    note = numerics.cg_precision_note(record)
    assert "From iteration 3 on" in note and "below 2.0e-06" in note
    assert "3.00e-07" in note and "float64" in note


def test_cg_figure_and_note_for_a_clean_solve_and_for_old_records():
    clean = _record(
        cg_residuals=[1.0, 0.1, 0.01], cg_iterations=2, cg_true_residual=0.01,
        cg_orthogonality=[0.0, 1e-8, 1e-8], cg_rounding_floor=1e-7, cg_dtype="float64",
    )  # fmt: skip
    names = {t.name for t in figures.cg_residuals_figure(clean).data}
    assert "‖r_k‖ after orthogonality is lost (rounding)" not in names
    assert numerics.cg_precision_note(clean).startswith("The whole curve is within float64's")
    old = UpdateRecord.from_dict(
        {k: v for k, v in _record().to_dict().items()
         if k not in ("cg_true_residual", "cg_orthogonality", "cg_rounding_floor", "cg_dtype")}
    )  # fmt: skip
    assert old.cg_true_residual is None and old.cg_orthogonality == []
    fig = figures.cg_residuals_figure(old)
    assert [t.name for t in fig.data] == ["‖r_k‖ (recursive)"]
    assert "before residual diagnostics existed" in numerics.cg_precision_note(old)


def test_converged_says_which_residual():
    record = _record(cg_stop_reason="converged", cg_residuals=[1.0, 1.7e-12],
                     cg_true_residual=3.8e-8)  # fmt: skip
    assert numerics.cg_stop_text(record) == (
        "converged by the recursive residual (1.70e-12); the true residual of s is 3.80e-08"
    )
    assert numerics.cg_stop_text(_record(cg_stop_reason="converged", cg_residuals=[1.0, 1e-6],
                                         cg_true_residual=1.2e-6)) == "converged"  # fmt: skip


def test_slice_draws_the_damped_model_and_offers_the_undamped_one():
    M = np.array([[0.02, 0.004], [0.004, 0.02]])
    plane = dict(
        alphas=np.linspace(-1, 1, 5), betas=np.linspace(-1, 1, 5),
        improvement=np.zeros((5, 5)), kl=np.zeros((5, 5)), quadratic_form=M,
        quadratic_form_undamped=M - 0.004 * np.eye(2), candidates=np.zeros((0, 2)),
        max_kl=0.01, accepted=None,
    )  # fmt: skip
    traces = {t.name: t for t in figures.trust_region_slice_figure(plane).data}
    assert "KL = δ (trust region)" in traces
    assert traces["½xᵀ(F+λI)x = δ (quadratic model, damped)"].visible is not False
    undamped = traces["½xᵀFx = δ (undamped Fisher)"]
    assert undamped.visible == "legendonly"
    x = np.stack([undamped.x, undamped.y])
    np.testing.assert_allclose(0.5 * np.einsum("in,ij,jn->n", x, M - 0.004 * np.eye(2), x), 0.01)
    del plane["quadratic_form_undamped"]  # a slice saved before: only the damped ellipse
    assert "½xᵀFx = δ (undamped Fisher)" not in {
        t.name for t in figures.trust_region_slice_figure(plane).data
    }


def _tiny(**overrides):
    values = dict(n_envs=2, n_steps=128, hidden_sizes=(8,), value_epochs=1) | overrides
    return default_config("CartPole-v1", **values)


def test_trainer_slice_has_the_undamped_form_and_records_the_diagnostics():
    trainer = TRPOTrainer(_tiny())
    record = trainer.step()
    plane = trainer.trust_region_slice([0.0, 1.0], [0.0, 1.0])
    step, g_step = plane["natural_step"].astype(float), plane["gradient_step"].astype(float)
    basis = np.stack([step, g_step])
    np.testing.assert_allclose(
        plane["quadratic_form"] - plane["quadratic_form_undamped"],
        trainer.config.cg_damping * basis @ basis.T,
        rtol=1e-12,
    )
    assert plane["damping"] == trainer.config.cg_damping
    assert record.cg_true_residual > 0 and record.cg_rounding_floor > 0
    assert record.returns_relative_variance > 0
    assert len(record.cg_orthogonality) == record.cg_iterations + 1
    share = numerics.damping_share(record, trainer.config.cg_damping)
    assert 0 < share < 1
    trainer.close()


def test_runs_stop_at_their_total_timesteps():
    trainer = TRPOTrainer(_tiny(total_timesteps=600))  # batches of 256: 3 updates, 768 steps
    trainer.train()
    assert [r.total_timesteps for r in trainer.records] == [256, 512, 768] and trainer.done
    with pytest.raises(TrainingFinished, match="768 timesteps reached"):
        trainer.step()
    assert len(trainer.records) == 3
    trainer.close()


def test_train_cli_takes_the_fvp_dtype_and_the_cg_tolerance():
    parser = argparse.ArgumentParser()
    add_train_parser(parser.add_subparsers())
    args = parser.parse_args(["train", "--fvp-dtype", "float64", "--cg-rtol", "1e-6"])
    config = config_from_args(args)
    assert config.fvp_dtype == "float64" and config.cg_rtol == 1e-6
    assert config_from_args(parser.parse_args(["train"])).fvp_dtype == "float32"
    with pytest.raises(SystemExit):
        parser.parse_args(["train", "--fvp-dtype", "float16"])


def test_default_tolerance_is_reachable_in_float32():
    config = default_config("CartPole-v1")
    assert config.cg_rtol == 1e-5 and config.fvp_dtype == "float32"
    assert config.cg_rtol >= 50 * np.finfo(np.float32).eps
    with pytest.raises(ValueError, match="fvp_dtype"):
        default_config("CartPole-v1", fvp_dtype="float16").validate()
    with pytest.raises(ValueError, match="at least one layer"):
        default_config("CartPole-v1", hidden_sizes=()).validate()
