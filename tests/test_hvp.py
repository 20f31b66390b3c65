"""Hessian-vector products against explicit Hessians (nested tapes, hand-derived, numpy)."""

import numpy as np
import pytest
import tensorflow as tf

from trpo_viz.hvp import HessianVectorProduct, explicit_hessian, flatten, unflatten

MODES = ["reverse", "forward"]


def _source_example(theta):
    x1, x2, x3 = tf.unstack(theta)
    return x1**3 + 2 * x1 * x2 + x2**2 - x1 + x3**2


def _nested_tape_hessian(fn, x):
    """Independent reference: the Jacobian of the gradient with two GradientTapes."""
    x = tf.constant(x)
    with tf.GradientTape() as outer:
        outer.watch(x)
        with tf.GradientTape() as inner:
            inner.watch(x)
            y = fn(x)
        grad = inner.gradient(y, x)
    return outer.jacobian(grad, x).numpy()


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dtype", [tf.float64, tf.float32])
def test_source_example_hessian_vector_products(mode, dtype):
    theta = tf.Variable(tf.constant([3.0, 1.0, 5.0], dtype))
    hvp = HessianVectorProduct(lambda: _source_example(theta), [theta], mode)
    hand_hessian = np.array([[6 * 3.0, 2, 0], [2, 2, 0], [0, 0, 2]])  # ∂²f by hand at (3, 1, 5)
    v = np.array([0.5, -1.0, 2.0])
    got = hvp(tf.constant(v, dtype)).numpy()
    assert got.dtype == dtype.as_numpy_dtype
    np.testing.assert_allclose(got, hand_hessian @ v, rtol=1e-6)
    np.testing.assert_allclose(explicit_hessian(hvp), hand_hessian, rtol=1e-6)


def _random_function(rng, n):
    """A random smooth non-quadratic function of n variables with its numpy-free TF form."""
    a = tf.constant(rng.normal(size=(n, n)))
    c = tf.constant(rng.normal(size=n))

    def fn(x):
        return (
            tf.reduce_sum(tf.sin(tf.linalg.matvec(a, x)))
            + tf.reduce_sum(c * x**3) / 6
            + tf.math.log1p(tf.reduce_sum(x**2))
        )

    return fn


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_hvp_matches_nested_tape_hessian_on_random_functions(mode, seed):
    rng = np.random.default_rng(seed)
    n = 7
    fn = _random_function(rng, n)
    point = rng.normal(size=n)
    reference = _nested_tape_hessian(fn, point)
    theta = tf.Variable(point)
    hvp = HessianVectorProduct(lambda: fn(theta), [theta], mode)
    for _ in range(3):
        v = rng.normal(size=n)
        np.testing.assert_allclose(hvp(v).numpy(), reference @ v, rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(
        explicit_hessian(hvp, chunk_size=3), reference, rtol=1e-9, atol=1e-10
    )


class TinyNet(tf.Module):
    """Parameters as plain tf.Variables (Keras 3 variables break ForwardAccumulator)."""

    def __init__(self, rng):
        super().__init__()
        self.w1 = tf.Variable(rng.normal(size=(3, 4)))
        self.b1 = tf.Variable(rng.normal(size=4))
        self.w2 = tf.Variable(rng.normal(size=(4, 2)))

    def __call__(self, x):
        return tf.tanh(x @ self.w1 + self.b1) @ self.w2


@pytest.mark.parametrize("mode", MODES)
def test_hvp_over_a_list_of_network_variables(mode):
    """The TRPO use: a loss over several tf.Variables, with data passed as arguments."""
    rng = np.random.default_rng(3)
    net = TinyNet(rng)
    variables = [net.w1, net.b1, net.w2]
    x, y = tf.constant(rng.normal(size=(5, 3))), tf.constant(rng.normal(size=(5, 2)))

    def loss(x, y):
        return tf.reduce_mean((net(x) - y) ** 2)

    # Reference: the same loss as a function of one flat vector, differentiated twice.
    shapes = [v.shape for v in variables]

    def flat_loss(flat):
        parts = zip(tf.split(flat, [12, 4, 8]), shapes, strict=True)
        w1, b1, w2 = (tf.reshape(p, s) for p, s in parts)
        return tf.reduce_mean((tf.tanh(x @ w1 + b1) @ w2 - y) ** 2)

    reference = _nested_tape_hessian(flat_loss, flatten(variables).numpy())
    hvp = HessianVectorProduct(loss, variables, mode)
    v = rng.normal(size=hvp.size)
    np.testing.assert_allclose(hvp(v, x, y).numpy(), reference @ v, rtol=1e-9, atol=1e-12)


def test_unused_variables_have_zero_second_derivatives():
    theta = tf.Variable(tf.constant([1.0, 2.0, 3.0], tf.float64))
    hvp = HessianVectorProduct(lambda: theta[0] ** 4, [theta])
    np.testing.assert_allclose(explicit_hessian(hvp), np.diag([12.0, 0.0, 0.0]))


def test_flatten_unflatten_round_trip():
    like = [tf.Variable(tf.zeros((2, 3))), tf.Variable(tf.zeros(4))]
    flat = tf.range(10, dtype=tf.float32)
    parts = unflatten(flat, like)
    assert [p.shape for p in parts] == [(2, 3), (4,)]
    np.testing.assert_array_equal(flatten(parts).numpy(), flat.numpy())


def test_unknown_mode_is_rejected():
    theta = tf.Variable([1.0])
    with pytest.raises(ValueError, match="unknown HVP mode"):
        HessianVectorProduct(lambda: theta[0] ** 2, [theta], mode="sideways")


def test_compiled_hvp_does_not_retrace_when_theta_changes():
    theta = tf.Variable(tf.constant([3.0, 1.0, 5.0], tf.float64))
    hvp = HessianVectorProduct(lambda: _source_example(theta), [theta])
    v = tf.constant([1.0, 0.0, 0.0], tf.float64)
    first = hvp(v).numpy()
    theta.assign([-1.0, 0.0, 0.0])
    second = hvp(v).numpy()
    # ∂²f/∂x1² = 6 x1 (through tf.pow's gradient: equal to rounding, not bit for bit)
    assert first[0] == pytest.approx(18.0, rel=1e-12)
    assert second[0] == pytest.approx(-6.0, rel=1e-12)
    assert hvp._hvp.experimental_get_tracing_count() == 1
