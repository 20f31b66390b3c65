"""The TensorFlow stage: a parsed expression's terms become closures over ``tf.math`` ops.

Everything that can be refused was refused by :mod:`trpo_viz.expr.frontend`;
this module only translates. The result is differentiable to any order with
``GradientTape`` and ``tf.autodiff.ForwardAccumulator``, eagerly or inside
``tf.function``. Folded constants are float64 and cast to ``theta``'s dtype at call
time (so a constant above ~3e38 is ``inf`` in float32).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import tensorflow as tf

from trpo_viz.expr.frontend import ParsedExpression
from trpo_viz.expr.terms import Apply, Constant, Negate, Power, Product, Sum, Term, Variable

FUNCTIONS: dict[str, Callable] = {
    "sin": tf.math.sin,
    "cos": tf.math.cos,
    "tan": tf.math.tan,
    "exp": tf.math.exp,
    "log": tf.math.log,
    "sqrt": tf.math.sqrt,
    "tanh": tf.math.tanh,
    "sigmoid": tf.math.sigmoid,
    "softplus": tf.math.softplus,
    "abs": tf.math.abs,
    "square": tf.math.square,
    "log1p": tf.math.log1p,
    "expm1": tf.math.expm1,
    "sinh": tf.math.sinh,
    "cosh": tf.math.cosh,
    "arcsin": tf.math.asin,
    "asin": tf.math.asin,
    "arccos": tf.math.acos,
    "acos": tf.math.acos,
    "arctan": tf.math.atan,
    "atan": tf.math.atan,
    "arcsinh": tf.math.asinh,
    "asinh": tf.math.asinh,
    "arccosh": tf.math.acosh,
    "acosh": tf.math.acosh,
    "arctanh": tf.math.atanh,
    "atanh": tf.math.atanh,
    "erf": tf.math.erf,
}

# Builds a term's tensor from the variables used (index -> scalar tensor) and theta's dtype.
Builder = Callable[[Mapping[int, tf.Tensor], tf.DType], tf.Tensor]


@dataclass(frozen=True)
class CompiledExpression:
    """A compiled formula: ``expr(theta)`` is a scalar of ``theta.dtype``.

    ``theta`` has shape ``[n]``; ``variables`` are the 1-based indices that occur.
    The gradient w.r.t. ``theta`` is always a dense tensor (zeros for unused
    variables). Where the gradient does not depend on ``theta`` (linear or constant
    formulas), TensorFlow reports second derivatives as unconnected: pass
    ``unconnected_gradients=tf.UnconnectedGradients.ZERO`` to ``jvp``/``gradient``.
    """

    text: str
    n: int
    variables: tuple[int, ...]
    _root: Term = field(repr=False, compare=False)
    _build: Builder = field(repr=False, compare=False)

    @tf.autograph.experimental.do_not_convert  # plain TF ops, no tensor-dependent control flow
    def __call__(self, theta: tf.Tensor) -> tf.Tensor:
        theta = tf.convert_to_tensor(theta)
        if not theta.dtype.is_floating:
            raise TypeError(f"theta must be a floating-point tensor, got {theta.dtype.name}")
        theta.shape.assert_is_compatible_with([self.n])
        if isinstance(self._root, Constant):  # no variables: keep the result connected to theta
            return tf.constant(self._root.value, theta.dtype) + tf.reduce_sum(
                _connected_zero(theta)
            )
        if 4 * len(self.variables) >= self.n:  # one unstack when most variables are used
            parts = tf.unstack(theta, num=self.n)
            xs = {i: parts[i - 1] for i in self.variables}
        else:  # a few slices avoid an n-way unstack (and n zero gradients) for large n
            xs = {i: theta[i - 1] for i in self.variables}
        return self._build(xs, theta.dtype)


def to_tensorflow(parsed: ParsedExpression) -> CompiledExpression:
    """The callable for a parsed expression."""
    return CompiledExpression(
        parsed.text, parsed.n, parsed.variables, parsed.root, builder(parsed.root)
    )


def _connected_zero(x: tf.Tensor) -> tf.Tensor:
    """Exact zeros shaped like ``x`` whose derivative w.r.t. ``x`` is 0 (not None)."""
    return tf.math.multiply_no_nan(x, tf.zeros_like(x))


def builder(term: Term) -> Builder:
    """The builder of ``term``; the tree's depth is bounded by the frontend (MAX_DEPTH)."""
    if isinstance(term, Constant):
        value = term.value
        return lambda xs, dtype: tf.constant(value, dtype)
    if isinstance(term, Variable):
        index = term.index
        return lambda xs, dtype: xs[index]
    if isinstance(term, Negate):
        inner = builder(term.operand)
        return lambda xs, dtype: tf.math.negative(inner(xs, dtype))
    if isinstance(term, Apply):
        op, arg = FUNCTIONS[term.function], builder(term.operand)
        return lambda xs, dtype: op(arg(xs, dtype))
    if isinstance(term, Sum):
        return _sum_builder([(negate, builder(t)) for negate, t in term.terms])
    if isinstance(term, Product):
        return _product_builder([(divide, builder(f)) for divide, f in term.factors])
    if isinstance(term, Power):
        return _power_builder(term)
    raise TypeError(f"not a term: {term!r}")


def _power_builder(term: Power) -> Builder:
    base = builder(term.base)
    k = term.exponent.value if isinstance(term.exponent, Constant) else None
    if k == 0:  # exactly 1, derivative 0, still connected to the base
        return lambda xs, dtype: _connected_zero(base(xs, dtype)) + 1
    if k == 2:
        return lambda xs, dtype: tf.math.square(base(xs, dtype))
    exponent = builder(term.exponent)
    return lambda xs, dtype: tf.math.pow(base(xs, dtype), exponent(xs, dtype))


def _sum_builder(operands: list[tuple[bool, Builder]]) -> Builder:
    def build(xs: Mapping[int, tf.Tensor], dtype: tf.DType) -> tf.Tensor:
        plus = [term(xs, dtype) for negate, term in operands if not negate]
        minus = [term(xs, dtype) for negate, term in operands if negate]
        if not minus:
            return tf.math.add_n(plus)
        if not plus:
            return tf.math.negative(tf.math.add_n(minus))
        return tf.math.add_n(plus) - tf.math.add_n(minus)

    return build


def _product_builder(operands: list[tuple[bool, Builder]]) -> Builder:
    def build(xs: Mapping[int, tf.Tensor], dtype: tf.DType) -> tf.Tensor:
        result = operands[0][1](xs, dtype)
        for divide, factor in operands[1:]:
            value = factor(xs, dtype)
            result = result / value if divide else result * value
        return result

    return build
