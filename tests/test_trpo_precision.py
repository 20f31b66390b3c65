"""One real TRPO update, float32 and float64 FVP/CG, against an independent float64 recomputation.

The reference is built without the trainer's KL, HVP or CG: the Fisher of the categorical
policy as an explicit float64 matrix, F = mean_s J_sᵀ (diag p_s − p_s p_sᵀ) J_s with J_s the
Jacobian of the logits (float64 forward pass at θ_old), and numpy for everything else.

Tolerances are the rounding floor of the dtype, floor = ε(‖g‖ + ‖A‖₂‖s‖) with A = F + λI
(the error of evaluating g − A s in that dtype, and where finite-precision CG's true
residual stagnates: Greenbaum 1997, §4.1), and what it implies for the solution,
‖s − s*‖ ≤ ‖A⁻¹‖₂ ‖g − A s‖.
"""

import numpy as np
import pytest
import tensorflow as tf

from trpo_viz.hvp import unflatten
from trpo_viz.trpo.config import default_config
from trpo_viz.trpo.numerics import first_rounding_iteration
from trpo_viz.trpo.trainer import TRPOTrainer

EPS = {"float32": float(np.finfo(np.float32).eps), "float64": float(np.finfo(np.float64).eps)}


def explicit_fisher(policy, theta: np.ndarray, obs: np.ndarray) -> np.ndarray:
    """F in float64 from the logits' Jacobian at theta (categorical policy)."""
    params = [
        tf.Variable(tf.cast(p, tf.float64))
        for p in unflatten(tf.constant(theta, tf.float32), policy.params)
    ]
    with tf.GradientTape() as tape:
        logits = policy.distribution_params(params, tf.constant(obs, tf.float64))
    jacobians = tape.jacobian(logits, params)
    b, k = logits.shape
    J = np.concatenate([j.numpy().reshape(b, k, -1) for j in jacobians], axis=2)
    z = logits.numpy()
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    curvature = np.einsum("bi,ij->bij", p, np.eye(k)) - np.einsum("bi,bj->bij", p, p)
    n = J.shape[2]
    return J.reshape(b * k, n).T @ np.einsum("bij,bjn->bin", curvature, J).reshape(b * k, n) / b


@pytest.fixture(scope="module")
def updates():
    """The first update in each dtype, its numbers, and the float64 reference system."""
    out = {}
    for dtype in ("float32", "float64"):
        # rtol 0 and 40 steps on 386 parameters: CG runs until its dtype stops it improving.
        config = default_config(
            "CartPole-v1", seed=3, n_envs=2, n_steps=128, hidden_sizes=(16, 16),
            value_epochs=1, cg_max_steps=40, cg_rtol=0.0, fvp_dtype=dtype,
        )  # fmt: skip
        trainer = TRPOTrainer(config)
        record = trainer.step()
        last = trainer._last  # the batch and the solve of that update
        F = explicit_fisher(trainer.policy, last["theta_old"], last["obs"].numpy())
        A = F + config.cg_damping * np.eye(len(F))
        eigenvalues = np.linalg.eigvalsh(A)
        out[dtype] = dict(
            record=record,
            theta=last["theta_old"],
            g=np.asarray(last["g"], np.float64),
            s=np.asarray(last["direction"], np.float64),
            A=A,
            norm_A=eigenvalues[-1],
            norm_A_inv=1.0 / eigenvalues[0],
        )
        trainer.close()
    return out


def floor(u, dtype) -> float:
    return EPS[dtype] * (np.linalg.norm(u["g"]) + u["norm_A"] * np.linalg.norm(u["s"]))


def test_both_dtypes_solve_the_same_system(updates):
    # Same seed, same policy, same batch: only the FVP/CG dtype differs.
    np.testing.assert_array_equal(updates["float32"]["theta"], updates["float64"]["theta"])
    np.testing.assert_array_equal(updates["float32"]["g"], updates["float64"]["g"])
    np.testing.assert_array_equal(updates["float32"]["A"], updates["float64"]["A"])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_recorded_numbers_match_the_float64_recomputation(updates, dtype):
    u = updates[dtype]
    record, g, s, A = u["record"], u["g"], u["s"], u["A"]
    assert record.cg_dtype == dtype and u["s"].size == len(A)
    # The true residual of the returned s, recomputed independently.
    true = np.linalg.norm(g - A @ s)
    assert abs(record.cg_true_residual - true) <= floor(u, dtype)
    # sᵀ(F+λI)s: evaluating A s in the dtype errs by about ε‖A‖‖s‖, so sᵀAs by ε‖A‖‖s‖².
    sAs = s @ A @ s
    assert abs(record.sFs - sAs) <= EPS[dtype] * u["norm_A"] * (s @ s)
    # The step is scaled to the quadratic trust-region boundary with that sᵀAs.
    assert 0.5 * record.step_scale**2 * sAs == pytest.approx(record.max_kl, rel=1e-5)
    assert record.cg_residuals[0] == pytest.approx(np.linalg.norm(g), rel=10 * EPS[dtype])
    assert record.cg_rounding_floor > 0 and len(record.cg_orthogonality) == len(
        record.cg_residuals
    )


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_cg_reaches_the_accuracy_its_dtype_allows(updates, dtype):
    u = updates[dtype]
    s_exact = np.linalg.solve(u["A"], u["g"])
    error = np.linalg.norm(u["s"] - s_exact) / np.linalg.norm(s_exact)
    bound = u["norm_A_inv"] * floor(u, dtype) / np.linalg.norm(s_exact)
    print(f"{dtype}: ‖s − s*‖/‖s*‖ = {error:.2e} (bound {10 * bound:.2e}), κ = "
          f"{u['norm_A'] * u['norm_A_inv']:.3g}")  # fmt: skip
    assert error <= 10 * bound
    # The true residual has stagnated at the floor: CG ran as far as the dtype allows.
    assert u["record"].cg_true_residual <= 10 * floor(u, dtype)


def test_float64_is_orders_of_magnitude_closer_and_stays_exact_cg_longer(updates):
    errors = {}
    for dtype, u in updates.items():
        s_exact = np.linalg.solve(u["A"], u["g"])
        errors[dtype] = np.linalg.norm(u["s"] - s_exact) / np.linalg.norm(s_exact)
    assert errors["float64"] < 1e-3 * max(errors["float32"], EPS["float32"])
    r32, r64 = (updates[d]["record"] for d in ("float32", "float64"))
    k32 = first_rounding_iteration(r32.cg_orthogonality)
    k64 = first_rounding_iteration(r64.cg_orthogonality)
    assert k32 is not None and (k64 is None or k64 > k32)
    # Before the float32 marker the drawn float32 curve is exact CG's (float64 stands in for
    # exact arithmetic there: its own residuals are still orthogonal) to within 1 %.
    for k in range(k32):
        assert r32.cg_residuals[k] == pytest.approx(r64.cg_residuals[k], rel=1e-2)
