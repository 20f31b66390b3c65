"""The ablation variants: each one's step on a fixed batch against numpy, and their rules."""

import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

import trpo_viz.trpo.trainer as trainer_module
from trpo_viz.hvp import HessianVectorProduct, explicit_hessian
from trpo_viz.trpo import TRPOTrainer, default_config
from trpo_viz.trpo.policy import get_flat, make_policy, set_flat
from trpo_viz.trpo.update import kl
from trpo_viz.trpo.variants import (
    VARIANT_PIECES,
    VARIANTS,
    accepted_candidate,
    step_status,
    variant,
)

ROOT = Path(__file__).resolve().parents[1]
DELTA = 0.01


def _small(name, **overrides):
    base = dict(
        n_envs=2, n_steps=128, value_batch_size=64, value_epochs=1, hidden_sizes=(8,),
        seed=4, max_kl=DELTA, variant=name,
    )  # fmt: skip
    base.update(overrides)
    return default_config("CartPole-v1", **base)


def _first_update(name, **overrides):
    """One update from the same seed: every variant sees the same batch and θ_old."""
    trainer = TRPOTrainer(_small(name, **overrides))
    record = trainer.step()
    theta_new = get_flat(trainer.policy.params)
    return trainer, record, theta_new


def _damped_fisher(trainer):
    """(F + λI) at θ_old on the batch, explicitly in float64 (from the FVP, column by column)."""
    last, cfg = trainer._last, trainer.config
    policy = make_policy(trainer.observation_space, trainer.action_space, cfg, None)
    set_flat(policy.params, last["theta_old"])
    params = [tf.Variable(tf.cast(v, tf.float64)) for v in policy.params]
    obs = tf.cast(last["obs"], tf.float64)
    old_dist = tf.constant(policy.distribution_params(params, obs).numpy())
    F = explicit_hessian(HessianVectorProduct(lambda o, d: kl(policy, params, o, d), params),
                         obs, old_dist)  # fmt: skip
    return F + cfg.cg_damping * np.eye(len(F))


def _check_line_search(record, kl_check):
    """The accepted candidate is the first finite one with gain > 0 (and KL ≤ δ if checked)."""
    ok = [
        math.isfinite(c.kl) and c.improvement > 0 and (c.kl <= record.max_kl or not kl_check)
        for c in record.candidates
    ]
    assert record.accepted_index == (ok.index(True) if any(ok) else None)


@pytest.fixture(scope="module")
def reference():
    trainer, record, theta_new = _first_update("trpo")
    out = dict(g=trainer._last["g"], theta_old=trainer._last["theta_old"],
               A=_damped_fisher(trainer), record=record, theta_new=theta_new)  # fmt: skip
    trainer.close()
    return out


def test_trpo_step_is_the_scaled_cg_direction(reference):
    trainer, record, theta_new = _first_update("trpo")
    last, A = trainer._last, reference["A"]
    s = np.asarray(last["direction"], np.float64)
    beta = np.sqrt(2 * DELTA / (s @ A @ s))
    np.testing.assert_allclose(last["full_step"], beta * s, rtol=1e-3)
    assert record.variant == "trpo" and record.step_status == "accepted"
    _check_line_search(record, kl_check=True)
    assert record.kl <= DELTA
    np.testing.assert_allclose(
        theta_new, last["theta_old"] + record.step_fraction * last["full_step"], atol=1e-6
    )


def test_every_variant_starts_from_the_same_batch(reference):
    for name in VARIANTS:
        trainer, record, _ = _first_update(name)
        assert trainer._last["g"].tobytes() == reference["g"].tobytes()
        assert trainer._last["theta_old"].tobytes() == reference["theta_old"].tobytes()
        assert record.variant == name
        trainer.close()


def test_npg_takes_the_full_natural_step_without_line_search(reference):
    trainer, record, theta_new = _first_update("npg")
    last, A = trainer._last, reference["A"]
    s = np.asarray(last["direction"], np.float64)
    np.testing.assert_allclose(last["full_step"], np.sqrt(2 * DELTA / (s @ A @ s)) * s, rtol=1e-3)
    assert len(record.candidates) == 1 and record.candidates[0].fraction == 1.0
    assert record.accepted and record.step_fraction == 1.0 and record.backtracks == 0
    assert record.kl == record.candidates[0].kl  # recorded whatever it is
    np.testing.assert_allclose(theta_new, last["theta_old"] + last["full_step"], atol=1e-6)
    # The same CG direction as TRPO's on this batch.
    trpo, _, _ = _first_update("trpo")
    np.testing.assert_array_equal(last["direction"], trpo._last["direction"])


def test_gradient_variant_steps_along_g_to_the_same_quadratic_kl(reference):
    trainer, record, theta_new = _first_update("gradient")
    last, A, g = trainer._last, reference["A"], reference["g"]
    step = np.asarray(last["full_step"], np.float64)
    cosine = step @ g / np.linalg.norm(step) / np.linalg.norm(g)
    assert cosine == pytest.approx(1.0, abs=1e-6)
    assert 0.5 * step @ A @ step == pytest.approx(DELTA, rel=1e-3)
    assert record.cg_iterations == 0 and record.cg_stop_reason == "skipped"
    _check_line_search(record, kl_check=True)
    # The natural direction gains more on the linear model at the same quadratic KL.
    assert reference["record"].expected_improvement > record.expected_improvement


def test_vanilla_pg_is_learning_rate_times_gradient(reference):
    lr = 0.37
    trainer, record, theta_new = _first_update("vanilla-pg", pg_lr=lr)
    g = reference["g"]
    np.testing.assert_allclose(trainer._last["full_step"], lr * g, rtol=1e-6, atol=1e-9)
    assert record.accepted and record.step_scale == lr and len(record.candidates) == 1
    np.testing.assert_allclose(theta_new, reference["theta_old"] + lr * g, rtol=1e-6, atol=1e-7)
    assert record.expected_improvement == pytest.approx(lr * g @ g, rel=1e-5)


def test_no_kl_check_accepts_a_step_beyond_delta_that_improves(monkeypatch):
    """A full step three times TRPO's length (quadratic KL 9δ): TRPO backtracks to KL ≤ δ,
    no-kl-check takes the first candidate that improves the surrogate, KL or not."""
    real = trainer_module.step_size
    monkeypatch.setattr(trainer_module, "step_size", lambda sFs, max_kl: 3 * real(sFs, max_kl))
    _, loose, _ = _first_update("no-kl-check")
    _, strict, _ = _first_update("trpo")
    _check_line_search(loose, kl_check=False)
    _check_line_search(strict, kl_check=True)
    assert loose.accepted and loose.kl > DELTA and loose.actual_improvement > 0
    assert strict.accepted and strict.kl <= DELTA
    assert loose.accepted_index < strict.accepted_index


@pytest.mark.parametrize("name", VARIANTS)
def test_variants_keep_training_and_record_honestly(name):
    trainer = TRPOTrainer(_small(name, pg_lr=10.0))  # a large fixed step for vanilla-pg
    for _ in range(3):
        before = get_flat(trainer.policy.params)
        record = trainer.step()
        after = get_flat(trainer.policy.params)
        assert record.variant == name and np.all(np.isfinite(after))
        if record.accepted:
            assert record.step_status == "accepted"
            c = record.candidates[record.accepted_index]
            assert record.kl == c.kl and record.actual_improvement == c.improvement
        else:
            assert after.tobytes() == before.tobytes()
        if name in ("npg", "vanilla-pg"):
            assert len(record.candidates) == 1
    if name == "vanilla-pg":  # lr = 10 is far outside the trust region: the record shows it
        assert max(r.kl for r in trainer.records) > 10 * DELTA
    trainer.close()


def test_acceptance_rules():
    kls = [0.05, 0.02, 0.005]
    gains = [0.1, 0.05, 0.01]
    expected = {"trpo": 2, "npg": 0, "no-kl-check": 0, "gradient": 2, "vanilla-pg": 0}
    for name, index in expected.items():
        assert accepted_candidate(variant(name), kls, gains, DELTA) == index
    assert accepted_candidate(variant("no-kl-check"), kls, [-0.1, 0.05, 0.01], DELTA) == 1
    assert accepted_candidate(variant("trpo"), kls, [0.1, 0.05, -0.01], DELTA) is None
    nan = float("nan")
    assert accepted_candidate(variant("trpo"), [nan, 0.005], [0.1, 0.01], DELTA) == 1
    assert accepted_candidate(variant("npg"), [nan], [0.1], DELTA) is None
    assert accepted_candidate(variant("vanilla-pg"), [3.0], [-1.0], DELTA) == 0  # no check
    with pytest.raises(ValueError, match="variant must be one of"):
        variant("trop")
    assert set(VARIANT_PIECES) == set(VARIANTS)


def test_step_status_names_the_reason():
    trpo, vanilla = variant("trpo"), variant("vanilla-pg")
    assert step_status(False, 1.0, True, False, trpo) == "non_finite_gradient"
    assert step_status(True, math.nan, False, False, trpo) == "non_finite_curvature"
    assert step_status(True, -1.0, False, False, trpo) == "non_positive_curvature"
    assert step_status(True, 0.0, False, False, trpo) == "non_positive_curvature"
    assert step_status(True, 1.0, False, False, trpo) == "non_finite_step"
    assert step_status(True, 1.0, True, False, trpo) == "line_search_rejected"
    assert step_status(True, 1.0, True, True, trpo) == "accepted"
    assert step_status(True, -1.0, True, True, vanilla) == "accepted"  # no curvature used
    assert step_status(True, 1.0, True, False, vanilla) == "non_finite_candidate"


NO_TENSORFLOW = """
import sys
from trpo_viz.cli import main
status = main(sys.argv[1:])
assert "tensorflow" not in sys.modules, "TensorFlow was imported"
sys.exit(status)
"""


@pytest.mark.parametrize(
    "args, fragment",
    [(["--variant", "trop"], "invalid choice"), (["--pg-lr", "-1"], "pg_lr must be positive")],
)
def test_cli_refuses_bad_variant_before_tensorflow(args, fragment):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", NO_TENSORFLOW, "train", *args], cwd=ROOT, env=env,
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0]
