"""The exact Fisher beside CG, against independent references (numpy, finite differences)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from trpo_viz.cg import ConjugateGradient
from trpo_viz.hvp import HessianVectorProduct, explicit_hessian, unflatten
from trpo_viz.trpo import TRPOTrainer, default_config
from trpo_viz.trpo.archive import ArchiveError
from trpo_viz.trpo.fisher import ExactFisher, FisherMatrix, fisher_spectrum, iterate_errors
from trpo_viz.trpo.policy import CategoricalPolicy, GaussianPolicy, get_flat, make_policy, set_flat
from trpo_viz.trpo.saved_run import parse_record
from trpo_viz.trpo.update import kl

ROOT = Path(__file__).resolve().parents[1]


def _policy(kind, rng):
    if kind == "categorical":
        policy = CategoricalPolicy(3, 3, hidden_sizes=(5,), rng=rng)
    else:
        policy = GaussianPolicy(3, 2, hidden_sizes=(5,), log_std_init=-0.3, rng=rng)
    # Move the output layer off its tiny initial scale so the test is not near-trivial.
    for var in policy.params:
        var.assign(var + 0.3 * rng.standard_normal(var.shape).astype(np.float32))
    return policy


def _fisher_from_fvp(policy, obs):
    """F column by column from the float64 Fisher-vector product (hvp.explicit_hessian)."""
    params = [tf.Variable(tf.cast(v, tf.float64)) for v in policy.params]
    obs = tf.constant(obs, tf.float64)
    old_dist = tf.constant(policy.distribution_params(params, obs).numpy())
    hvp = HessianVectorProduct(lambda o, d: kl(policy, params, o, d), params)
    return explicit_hessian(hvp, obs, old_dist)


def _fisher_by_finite_differences(policy, obs, h=1e-5):
    """Central differences of ∇_θ mean KL(π_old ‖ π_θ) in float64."""
    theta0 = get_flat(policy.params).astype(np.float64)
    like = [tf.Variable(tf.cast(v, tf.float64)) for v in policy.params]
    obs = tf.constant(obs, tf.float64)
    old_dist = policy.distribution_params(unflatten(tf.constant(theta0), like), obs)

    def grad(theta):
        t = tf.Variable(theta)
        with tf.GradientTape() as tape:
            value = kl(policy, unflatten(t, like), obs, old_dist)
        return tape.gradient(value, t).numpy()

    columns = [(grad(theta0 + h * e) - grad(theta0 - h * e)) / (2 * h) for e in np.eye(len(theta0))]
    F = np.stack(columns, axis=1)
    return 0.5 * (F + F.T)


def _fisher_analytic(policy, obs):
    """mean_s J_sᵀ M_s J_s with the metric written out in numpy (no KL, no HVP)."""
    theta = tf.Variable(get_flat(policy.params).astype(np.float64))
    like = [tf.Variable(tf.cast(v, tf.float64)) for v in policy.params]
    obs = tf.constant(obs, tf.float64)
    with tf.GradientTape() as tape:
        d = policy.distribution_params(unflatten(theta, like), obs)
    J = tape.jacobian(d, theta).numpy()  # [B, k, n]
    d = d.numpy()
    F = np.zeros((J.shape[2],) * 2)
    for s in range(len(d)):
        if isinstance(policy, CategoricalPolicy):
            p = np.exp(d[s] - d[s].max())
            p /= p.sum()
            M = np.diag(p) - np.outer(p, p)
        else:
            a = d.shape[1] // 2
            M = np.diag(np.concatenate([np.exp(-2 * d[s, a:]), 2 * np.ones(a)]))
        F += J[s].T @ M @ J[s]
    return F / len(d)


@pytest.mark.parametrize("kind", ["categorical", "gaussian"])
@pytest.mark.parametrize("states", [8, 40])  # F as a factor (rows < n) and explicitly
def test_exact_fisher_agrees_with_fvp_finite_differences_and_jacobians(kind, states):
    rng = np.random.default_rng(0)
    policy = _policy(kind, rng)
    obs = rng.standard_normal((states, 3))
    fisher = ExactFisher(policy, chunk=7).compute(obs)  # several chunks, a shorter last one
    assert (fisher.factor is not None) == (states == 8)
    F = fisher.dense()
    F_fvp = _fisher_from_fvp(policy, obs)
    scale = np.abs(F_fvp).max()
    assert scale > 1e-2  # not a trivial test
    np.testing.assert_allclose(F, F_fvp, rtol=0, atol=1e-10 * scale)
    np.testing.assert_allclose(_fisher_analytic(policy, obs), F_fvp, rtol=0, atol=1e-10 * scale)
    np.testing.assert_allclose(
        _fisher_by_finite_differences(policy, obs), F_fvp, rtol=0, atol=1e-6 * scale
    )
    # The products the comparison uses, in either form.
    v = rng.standard_normal((3, F.shape[0]))
    np.testing.assert_allclose(fisher.product(v), v @ F_fvp, rtol=0, atol=1e-9 * scale)


@pytest.mark.parametrize("kind", ["categorical", "gaussian"])
@pytest.mark.parametrize("states", [8, 40])
def test_exact_solution_and_spectrum_match_numpy(kind, states):
    rng = np.random.default_rng(1)
    policy = _policy(kind, rng)
    obs = rng.standard_normal((states, 3))
    fisher = ExactFisher(policy).compute(obs)
    F = _fisher_from_fvp(policy, obs)
    n, damping = F.shape[0], 1e-3
    g = rng.standard_normal(n)
    expected = np.linalg.solve(F + damping * np.eye(n), g)
    np.testing.assert_allclose(fisher.solve(damping, g), expected, rtol=1e-7, atol=0)

    spectrum = fisher_spectrum(fisher, damping)
    reference = np.linalg.eigvalsh(F)
    top = reference[-1]
    np.testing.assert_allclose(spectrum.eigenvalues, reference, rtol=0, atol=1e-10 * top)
    assert np.all(np.diff(spectrum.eigenvalues) >= 0)
    # The rank is unambiguous here: no eigenvalue between 1e-13 and 1e-9 of the largest
    # (rounding of a zero eigenvalue is ~1e-16 of it; the floor n·ε is ~1e-14).
    assert not np.any((np.abs(reference) > 1e-13 * top) & (np.abs(reference) < 1e-9 * top))
    assert spectrum.rank == np.count_nonzero(reference > 1e-9 * top)
    assert np.all(spectrum.eigenvalues[: n - spectrum.rank] == 0)  # rounding of zero, shown as 0
    smallest = max(reference[0], 0.0)
    assert spectrum.condition_damped == pytest.approx((top + damping) / (smallest + damping))
    if spectrum.rank < n:
        assert spectrum.condition == np.inf
    else:
        assert spectrum.condition == pytest.approx(top / reference[0], rel=1e-6)


def test_singular_fisher_without_damping_is_refused():
    rng = np.random.default_rng(2)
    factor = FisherMatrix(5, factor=rng.standard_normal((2, 5)))  # rank 2 < 5
    with pytest.raises(np.linalg.LinAlgError):
        factor.solve(0.0, np.ones(5))


def test_iterate_errors_follow_their_definitions():
    """On a matrix with known solution: the three measures of CG's iterates."""
    rng = np.random.default_rng(3)
    Q, _ = np.linalg.qr(rng.standard_normal((30, 30)))
    F = Q @ np.diag(np.logspace(-3, 1, 30)) @ Q.T
    F = 0.5 * (F + F.T)
    g = rng.standard_normal(30)
    damping = 1e-2
    A = F + damping * np.eye(30)
    solution = np.linalg.solve(A, g)
    cg = ConjugateGradient(lambda v: tf.linalg.matvec(tf.constant(F), v))
    iterates = cg.solve(g, damping=damping, max_iter=8, rtol=0.0).iterates
    errors = iterate_errors(FisherMatrix(30, matrix=F), damping, solution, iterates)
    assert len(errors.relative) == len(iterates) == 9
    assert errors.relative[0] == pytest.approx(1.0) and errors.cosines[0] is None
    e = iterates[5] - solution
    assert errors.relative[5] == pytest.approx(np.linalg.norm(e) / np.linalg.norm(solution))
    assert errors.relative_fnorm[5] == pytest.approx(
        np.sqrt(e @ A @ e) / np.sqrt(solution @ A @ solution)
    )
    x = iterates[5]
    assert errors.cosines[5] == pytest.approx(
        x @ solution / np.linalg.norm(x) / np.linalg.norm(solution)
    )
    # CG minimises the A-norm error over growing Krylov spaces: it never increases.
    assert np.all(np.diff(errors.relative_fnorm) <= 1e-12)


def _small(env_id, **overrides):
    base = dict(
        n_envs=2, n_steps=128, value_batch_size=64, value_epochs=1, hidden_sizes=(8,),
        exact_fisher=True,
    )  # fmt: skip
    base.update(overrides)
    return default_config(env_id, **base)


@pytest.mark.parametrize(
    "env_id, overrides",
    [("CartPole-v1", {"fvp_subsample": 0.5}), ("Pendulum-v1", {"fvp_dtype": "float64"})],
)
def test_trainer_records_cg_against_exact_solution(env_id, overrides):
    trainer = TRPOTrainer(_small(env_id, **overrides))
    trainer.step()
    record = trainer.step()
    last = trainer._last
    cfg = trainer.config
    assert record.exact_fisher_status == "computed"
    k = record.cg_iterations
    assert k >= 2
    for name in ("cg_exact_errors", "cg_exact_errors_fnorm", "cg_exact_cosines"):
        assert len(getattr(record, name)) == k + 1
    assert record.cg_exact_cosines[0] is None
    assert record.cg_exact_errors[0] == pytest.approx(1.0)

    # Recompute at θ_old on the FVP's states, with F from the FVP (not the trainer's F).
    policy = make_policy(trainer.observation_space, trainer.action_space, cfg, None)
    set_flat(policy.params, last["theta_old"])
    obs = last["obs"].numpy()
    if last["fvp_index"] is not None:
        obs = obs[last["fvp_index"]]
        assert len(obs) < len(last["obs"].numpy())
    F = _fisher_from_fvp(policy, obs)
    n, lam = F.shape[0], cfg.cg_damping
    A = F + lam * np.eye(n)
    g = np.asarray(last["g"], np.float64)
    s_star = np.linalg.solve(A, g)
    x = np.asarray(last["direction"], np.float64)  # CG's last iterate
    e = x - s_star
    assert record.cg_exact_errors[-1] == pytest.approx(
        np.linalg.norm(e) / np.linalg.norm(s_star), rel=1e-6
    )
    assert record.cg_exact_errors_fnorm[-1] == pytest.approx(
        np.sqrt(e @ A @ e / (s_star @ A @ s_star)), rel=1e-6
    )
    cosine = x @ s_star / np.linalg.norm(x) / np.linalg.norm(s_star)
    assert record.cg_exact_cosines[-1] == pytest.approx(cosine, rel=1e-9)
    assert record.exact_step_cosine == pytest.approx(cosine, rel=1e-9)

    # Exact TRPO's step: on the quadratic trust-region boundary, and the best linear gain
    # there (CG's step is on the same boundary, up to its float32 quadratic form).
    step = np.sqrt(2 * cfg.max_kl / (s_star @ A @ s_star)) * s_star
    assert record.exact_expected_improvement == pytest.approx(g @ step, rel=1e-6)
    assert record.exact_expected_improvement >= record.expected_improvement * (1 - 1e-3)
    assert record.exact_full_step_kl > 0
    if record.exact_step_fraction:
        assert record.exact_kl <= cfg.max_kl and record.exact_improvement > 0

    eigenvalues = np.linalg.eigvalsh(F)
    np.testing.assert_allclose(
        record.fisher_eigenvalues, eigenvalues, rtol=0, atol=1e-9 * eigenvalues[-1]
    )
    assert record.fisher_condition_damped == pytest.approx(
        (eigenvalues[-1] + lam) / (max(eigenvalues[0], 0) + lam), rel=1e-3
    )
    # CG's Ritz values (from its α, β only) lie within the spectrum of F + λI.
    ritz = np.asarray(record.cg_ritz_values)
    assert len(ritz) == k and np.all(np.diff(ritz) >= 0)
    assert ritz[-1] <= (eigenvalues[-1] + lam) * (1 + 1e-4)
    assert ritz[0] >= lam - 1e-4 * eigenvalues[-1]
    trainer.close()


def test_exact_fisher_changes_no_update():
    plain = TRPOTrainer(_small("CartPole-v1", exact_fisher=False, seed=3))
    exact = TRPOTrainer(_small("CartPole-v1", exact_fisher=True, seed=3))
    for _ in range(2):
        a, b = plain.step(), exact.step()
        assert a.exact_fisher_status == "" and not a.cg_exact_errors
        assert (a.kl, a.actual_improvement, a.cg_residuals) == (
            b.kl, b.actual_improvement, b.cg_residuals,
        )  # fmt: skip
    assert get_flat(plain.policy.params).tobytes() == get_flat(exact.policy.params).tobytes()


def test_too_large_policy_is_said_so():
    trainer = TRPOTrainer(_small("CartPole-v1", exact_fisher_max_params=10))
    record = trainer.step()
    assert record.exact_fisher_status == "too_large"
    assert record.cg_exact_errors == [] and record.fisher_eigenvalues == []
    assert record.metrics()["exact_fisher_status"] == "too_large"
    with pytest.raises(ValueError, match="exact_fisher_max_params"):
        default_config("CartPole-v1", exact_fisher_max_params=0).validate()


def test_exact_fields_round_trip_and_are_validated():
    trainer = TRPOTrainer(_small("CartPole-v1"))
    record = trainer.step()
    data = json.loads(json.dumps(record.to_dict()))
    assert data["cg_exact_cosines"][0] is None
    assert parse_record(data, 0).to_dict() == record.to_dict()

    def damaged(**changes):
        bad = json.loads(json.dumps(data))
        bad.update(changes)
        with pytest.raises(ArchiveError):
            parse_record(bad, 0)

    damaged(cg_exact_cosines=[0.5, *data["cg_exact_cosines"][1:]])
    damaged(cg_exact_errors=data["cg_exact_errors"][:-1])
    damaged(fisher_eigenvalues=data["fisher_eigenvalues"][::-1])
    damaged(exact_fisher_status="guessed")
    damaged(exact_fisher_status="too_large")  # lists present though not computed
    damaged(cg_ritz_values=[1.0] * (record.cg_iterations + 1))
    # A record of an older version (no exact fields at all) still loads.
    old = {k: v for k, v in data.items() if not k.startswith(("exact", "fisher", "cg_exact"))}
    old.pop("cg_ritz_values")
    old.pop("wall_exact_fisher_s")
    assert parse_record(old, 0).exact_fisher_status == ""


def test_cli_exact_fisher_adds_metrics(tmp_path):
    metrics = tmp_path / "metrics.jsonl"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [
            sys.executable, "-m", "trpo_viz", "train", "--env", "CartPole-v1", "--steps", "256",
            "--n-steps", "64", "--hidden", "8", "--exact-fisher", "--metrics", str(metrics),
            "--eval-episodes", "0", "--no-pictures", "--no-progress", "--threads", "1",
        ],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in metrics.read_text().splitlines()]
    assert len(lines) == 2
    for line in lines:
        k = line["cg_iterations"]
        assert len(line["cg_exact_errors"]) == len(line["cg_exact_cosines"]) == k + 1
        assert line["cg_exact_cosines"][0] is None
        assert all(c is not None for c in line["cg_exact_cosines"][1:])
        eigenvalues = line["fisher_eigenvalues"]
        assert len(eigenvalues) == 4 * 8 + 8 + 8 * 2 + 2  # every parameter
        assert eigenvalues == sorted(eigenvalues)
