"""GAE and the running normaliser against hand-computed values."""

import numpy as np
import pytest

from trpo_viz.trpo.rollout import RunningMeanStd, batch_moments, clip, gae_advantages


def test_gae_matches_hand_computation_with_truncation_and_termination():
    gamma, lam = 0.9, 0.8
    # One env, 5 steps: an episode truncated (time limit) at t=1, one terminated at t=3,
    # and a third still running at the end of the batch (t=4).
    rewards = np.array([[1.0], [2.0], [3.0], [4.0], [5.0]])
    values = np.array([[0.5], [0.6], [0.7], [0.8], [0.9]])
    # V of the true next state; at t=1 the final observation (bootstrapped on truncation),
    # at t=3 the terminal state (must be ignored), at t=4 the state after the batch.
    next_values = np.array([[0.6], [10.0], [0.8], [99.0], [2.0]])
    terminated = np.array([[0], [0], [0], [1], [0]], bool)
    truncated = np.array([[0], [1], [0], [0], [0]], bool)

    d4 = 5.0 + gamma * 2.0 - 0.9
    a4 = d4
    d3 = 4.0 + 0.0 - 0.8  # termination: no bootstrap
    a3 = d3  # and no trace from the next episode
    d2 = 3.0 + gamma * 0.8 - 0.7
    a2 = d2 + gamma * lam * a3
    d1 = 2.0 + gamma * 10.0 - 0.6  # truncation: bootstrap V(s_final)
    a1 = d1  # but the trace is cut
    d0 = 1.0 + gamma * 0.6 - 0.5
    a0 = d0 + gamma * lam * a1
    expected = np.array([[a0], [a1], [a2], [a3], [a4]])

    advantages, returns = gae_advantages(
        rewards, values, next_values, terminated, truncated, gamma, lam
    )
    np.testing.assert_allclose(advantages, expected, rtol=1e-6)
    np.testing.assert_allclose(returns, expected + values, rtol=1e-6)


def test_gae_lambda_one_is_discounted_return_minus_value():
    rng = np.random.default_rng(0)
    rewards = rng.standard_normal((6, 3))
    values = rng.standard_normal((6, 3))
    next_values = np.vstack([values[1:], rng.standard_normal((1, 3))])
    no = np.zeros((6, 3), bool)
    advantages, _ = gae_advantages(rewards, values, next_values, no, no, 0.95, 1.0)
    expected = np.zeros((6, 3))
    for t in range(6):
        future = sum(0.95**k * rewards[t + k] for k in range(6 - t))
        expected[t] = future + 0.95 ** (6 - t) * next_values[-1] - values[t]
    np.testing.assert_allclose(advantages, expected, rtol=1e-5, atol=1e-5)


def test_running_mean_std_matches_numpy():
    rng = np.random.default_rng(1)
    data = rng.normal(3.0, 2.0, size=(50, 4))
    rms = RunningMeanStd((4,))
    for chunk in np.split(data, 10):
        rms.update(chunk)
    np.testing.assert_allclose(rms.mean, data.mean(0), rtol=1e-4)
    np.testing.assert_allclose(rms.var, data.var(0), rtol=1e-4)
    assert rms.count == pytest.approx(50, abs=1e-3)


def test_gae_with_float32_values_is_computed_in_float64():
    """The value network's float32 outputs must not pull γ·V(s') down to float32 (NEP 50).

    Values near 100 (CartPole's 1/(1 − γ)) with small differences between steps: in float32,
    γ·V(s') would be rounded to about 4e-6 before it meets the rewards, an error as large
    as the advantages here. The reference is a plain float64 loop over the same inputs.
    """
    rng = np.random.default_rng(4)
    T, n, gamma, lam = 64, 3, 0.99, 0.98
    values = (100.0 + 1e-3 * rng.standard_normal((T, n))).astype(np.float32)
    next_values = np.vstack([values[1:], values[-1:]]).astype(np.float32)
    rewards = np.ones((T, n), np.float32)
    no = np.zeros((T, n), bool)
    advantages, returns = gae_advantages(rewards, values, next_values, no, no, gamma, lam)
    assert advantages.dtype == returns.dtype == np.float64

    v, v_next = values.astype(np.float64), next_values.astype(np.float64)
    expected = np.zeros((T, n))
    running = np.zeros(n)
    for t in reversed(range(T)):
        running = 1.0 + gamma * v_next[t] - v[t] + gamma * lam * running
        expected[t] = running
    # Float64 round-off only: a few ε64 of the largest term (≈ 100) per step of the sum.
    np.testing.assert_allclose(advantages, expected, rtol=0, atol=T * 100 * 1e-15)
    np.testing.assert_allclose(returns, expected + v, rtol=0, atol=T * 100 * 1e-15)
    assert np.abs(expected).max() < 1.0  # the advantages are small beside the values


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(2,), (2, 11), (1, 4), (7, 3), (1024,)])
def test_batch_moments_are_numpys_mean_and_var_bit_for_bit(dtype, shape):
    """The normalisers' fast path: the same bits as ``x.mean(0)``, ``x.var(0)`` (what
    VecNormalize computes), across scales where a different order of sums would show."""
    rng = np.random.default_rng(0)
    for scale in (1e-3, 1.0, 1e4):
        x = (scale * rng.standard_normal(shape) + 3 * scale).astype(dtype)
        mean, var = batch_moments(x)
        assert mean.dtype == x.mean(axis=0).dtype and var.dtype == x.var(axis=0).dtype
        assert np.array_equal(mean, x.mean(axis=0)) and np.array_equal(var, x.var(axis=0))
    x = np.array([[np.inf, 1.0], [0.0, np.nan]], dtype)
    with np.errstate(invalid="ignore"):
        for ours, numpys in zip(batch_moments(x), (x.mean(axis=0), x.var(axis=0)), strict=True):
            assert np.array_equal(ours, numpys, equal_nan=True)


def test_batch_moments_of_integers_take_numpys_path():
    x = np.array([[1, 2], [4, 7]])
    mean, var = batch_moments(x)
    assert mean.dtype == np.float64 and np.array_equal(mean, [2.5, 4.5])
    assert np.array_equal(var, [2.25, 6.25])


def test_clip_is_numpys_clip():
    x = np.array([-np.inf, -11.0, -10.0, -0.0, 0.0, 3.5, 10.0, 12.0, np.inf, np.nan])
    for low, high in ((-10.0, 10.0), (np.full(10, -1.0), np.full(10, 1.0))):
        assert np.array_equal(clip(x, low, high), np.clip(x, low, high), equal_nan=True)
        assert np.array_equal(np.signbit(clip(x, low, high)), np.signbit(np.clip(x, low, high)))
