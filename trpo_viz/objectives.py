"""Objectives f(θ) for the explorer: typed expressions, and built-in losses too large to type.

A problem text that starts with ``@`` names a built-in (``@logistic_regression``);
anything else is an expression for :func:`trpo_viz.expr.compile_expression`.
Every objective is a callable ``f(theta) -> scalar`` over a 1-D tensor with
attributes ``text`` and ``n``. :func:`check_objective` validates a text and returns
its dimension without importing TensorFlow (the CLI refuses bad input with it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from trpo_viz.expr import MAX_DIMENSION, ExpressionError, compile_expression, parse_expression
from trpo_viz.quiet import import_tensorflow

if TYPE_CHECKING:
    import tensorflow as tf


@dataclass(frozen=True, eq=False)
class LogisticRegression:
    """Mean logistic loss on generated data plus an L2 term: a convex loss with n in the thousands.

    f(θ) = mean_i softplus(−y_i x_iᵀθ) + ½ l2 ‖θ‖², with features of decaying scale so
    that H = Xᵀ diag(σ(1−σ)) X / m + l2 I is well defined but ill-conditioned: CG
    gets a good answer in far fewer HVPs than the n needed to form H.
    """

    n: int = 1000
    samples: int = 2000
    l2: float = 1e-2
    seed: int = 0
    text: str = "@logistic_regression"
    features: np.ndarray = field(init=False, repr=False)
    labels: np.ndarray = field(init=False, repr=False)

    def __post_init__(self):
        rng = np.random.default_rng(self.seed)
        scales = 1.0 / np.sqrt(
            1.0 + np.arange(self.n)
        )  # decaying feature scales: a spread spectrum
        features = rng.normal(size=(self.samples, self.n)) * scales
        truth = rng.normal(size=self.n)
        labels = np.where(features @ truth + 0.5 * rng.normal(size=self.samples) > 0, 1.0, -1.0)
        object.__setattr__(self, "features", features)
        object.__setattr__(self, "labels", labels)

    def __call__(self, theta: tf.Tensor) -> tf.Tensor:
        tf = import_tensorflow()
        x, y = self._data(theta.dtype)
        margins = y * tf.linalg.matvec(x, theta)
        data_loss = tf.reduce_mean(tf.math.softplus(-margins))
        return data_loss + 0.5 * tf.constant(self.l2, theta.dtype) * tf.reduce_sum(theta * theta)

    def _data(self, dtype):
        """X and y as tensors of ``dtype``, made once, outside any graph being traced.

        Traced functions then read them by reference. ``tf.constant(self.features)``
        inside the loss embedded the 16 MB matrix in every traced graph (f, ∇f, the HVP,
        CG, the batched HVP) and every instantiated copy: about 1 GB for this problem.
        """
        tf = import_tensorflow()
        tensors = self.__dict__.setdefault("_tensors", {})  # frozen dataclass: no setattr
        if dtype not in tensors:
            with tf.init_scope():  # eager, even while a tf.function is being traced
                tensors[dtype] = (tf.constant(self.features, dtype),
                                  tf.constant(self.labels, dtype))
        return tensors[dtype]


BUILTINS = {"logistic_regression": LogisticRegression}


def check_objective(text: str, n: int | None = None) -> int:
    """The dimension of the objective ``text`` names; ExpressionError if it names none.

    Pure Python: neither TensorFlow nor a built-in's data is touched.
    """
    builtin = _builtin(text, n)
    if builtin is not None:
        return builtin.n if n is None else n
    return parse_expression(text, n).n


def make_objective(text: str, n: int | None = None):
    """An objective from user text: ``@name`` for a built-in, else an expression.

    Raises :class:`~trpo_viz.expr.ExpressionError` with a readable message.
    """
    builtin = _builtin(text, n)
    if builtin is not None:
        return builtin() if n is None else builtin(n=n)
    return compile_expression(text, n)


def _builtin(text: str, n: int | None):
    """The built-in class ``@name`` names (n checked), or None when ``text`` is an expression."""
    stripped = (text or "").strip()
    if not stripped.startswith("@"):
        return None
    name = stripped[1:].strip()
    if name not in BUILTINS:
        known = ", ".join("@" + k for k in BUILTINS)
        raise ExpressionError(f"unknown built-in objective {stripped[:40]!r}; known: {known}")
    if n is not None and not 1 <= n <= MAX_DIMENSION:
        raise ExpressionError(f"dimension n = {n} is out of range (1 … {MAX_DIMENSION})")
    return BUILTINS[name]
