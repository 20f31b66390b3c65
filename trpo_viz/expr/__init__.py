"""Safe compiler from an untrusted formula string to a differentiable TensorFlow function.

``compile_expression("x1**3 + 2*x1*x2 + x2**2 - x1 + x3**2")`` returns a
:class:`CompiledExpression`, a callable mapping a parameter vector ``theta`` of
shape ``[n]`` to a scalar, built only from TensorFlow ops so that ``GradientTape``
(to any order) and ``tf.autodiff.ForwardAccumulator`` work through it, eagerly
or inside ``tf.function``.

Grammar
-------
* numbers: int and float literals (``3``, ``0.5``, ``1e-3``);
* variables ``x1 .. xn``; ``theta1`` and ``θ1`` are other spellings of ``x1``.
  Indices start at 1 and have no leading zeros (``x0``, ``x01`` are errors);
* constants ``pi`` and ``e`` (see :data:`CONSTANTS`);
* binary ``+ - * / **``, unary ``-`` and ``+``, parentheses;
* calls ``f(arg)`` of a function named in :data:`FUNCTION_NAMES`, with exactly one
  positional argument.

Nothing else is accepted: attribute access, subscripts, strings, comparisons,
boolean operators, ``//``, ``%``, ``@``, bit operators (``^`` is not a power: use
``**``), lambdas, comprehensions, keyword arguments, ``:=``, complex literals,
comments, several statements ... each raises :class:`ExpressionError` naming the
construct and its column. Line breaks and tabs count as spaces, so a long
formula may span lines; columns are 1-based character offsets into the whole text.

Safety
------
The text is parsed with ``ast.parse(mode="eval")`` and only a strict whitelist of
node types is accepted; the tree is then translated into closures over
``tf.math`` ops. User text is never executed by Python. Work is bounded before
and during parsing: at most :data:`MAX_EXPRESSION_CHARS` characters, bracket
nesting at most :data:`MAX_DEPTH` (checked by a character scan before the parser
runs), at most :data:`MAX_NODES` syntax nodes and :data:`MAX_DEPTH` levels of
operator/call nesting. Parser failures (syntax errors, recursion or memory
limits, over-long integer literals) become :class:`ExpressionError`. A single
chain of roughly 3000 operands (``x1+x2+...``) exceeds CPython's AST
recursion limit and is rejected as too complex; group terms with parentheses.
Constants are folded in float64 and bounded (:mod:`trpo_viz.expr.lower`).

Stages
------
Pure Python, no TensorFlow (:func:`parse_expression`, everything that can refuse):
:mod:`~trpo_viz.expr.reader` (size and bracket bounds, ``ast.parse``),
:mod:`~trpo_viz.expr.whitelist` (the node walk), :mod:`~trpo_viz.expr.lower`
(terms, constant folding, depth), :mod:`~trpo_viz.expr.frontend` (dimension);
:mod:`~trpo_viz.expr.source` holds positions and :class:`ExpressionError`,
:mod:`~trpo_viz.expr.grammar` the limits and tables. Then TensorFlow:
:mod:`~trpo_viz.expr.tf_compile` translates the terms. Importing this package does
not import TensorFlow; ``compile_expression``, ``CompiledExpression`` and
``FUNCTIONS`` (name → TensorFlow op) do, on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from trpo_viz.expr.frontend import ParsedExpression, parse_expression
from trpo_viz.expr.grammar import (
    CONSTANTS,
    FUNCTION_NAMES,
    MAX_ABS_CONSTANT,
    MAX_ABS_EXPONENT,
    MAX_DEPTH,
    MAX_DIMENSION,
    MAX_EXPRESSION_CHARS,
    MAX_NODES,
)
from trpo_viz.expr.source import ExpressionError

if TYPE_CHECKING:
    from trpo_viz.expr.tf_compile import FUNCTIONS, CompiledExpression

__all__ = [
    "CONSTANTS",
    "FUNCTIONS",
    "FUNCTION_NAMES",
    "MAX_ABS_CONSTANT",
    "MAX_ABS_EXPONENT",
    "MAX_DEPTH",
    "MAX_DIMENSION",
    "MAX_EXPRESSION_CHARS",
    "MAX_NODES",
    "CompiledExpression",
    "ExpressionError",
    "ParsedExpression",
    "compile_expression",
    "parse_expression",
]


def compile_expression(text: str, n: int | None = None) -> CompiledExpression:
    """Compile ``text`` into a :class:`CompiledExpression` of dimension ``n``.

    ``n`` defaults to the highest variable index used; if given it must be at least
    that (unused variables get zero derivatives). Raises :class:`ExpressionError`,
    before TensorFlow is imported when the text is refused.
    """
    parsed = parse_expression(text, n)
    from trpo_viz.expr.tf_compile import to_tensorflow

    return to_tensorflow(parsed)


def __getattr__(name: str):
    """``FUNCTIONS`` and ``CompiledExpression`` live with TensorFlow: import it on first use."""
    if name in ("FUNCTIONS", "CompiledExpression"):
        from trpo_viz.expr import tf_compile

        return getattr(tf_compile, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
