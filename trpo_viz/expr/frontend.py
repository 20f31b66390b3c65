"""Everything that can refuse an expression, in pure Python: read, check, lower, dimension.

:func:`parse_expression` is the first stage of
:func:`trpo_viz.expr.compile_expression`; it never imports TensorFlow, so a caller
(the command line) can refuse bad input before paying for TensorFlow's import.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass

from trpo_viz.expr import lower, reader, whitelist
from trpo_viz.expr.grammar import MAX_DIMENSION
from trpo_viz.expr.source import ExpressionError, Source
from trpo_viz.expr.terms import Term


@dataclass(frozen=True)
class ParsedExpression:
    """A valid expression: its text, dimension n, the variables used and the term tree."""

    text: str
    n: int
    variables: tuple[int, ...]
    root: Term


def parse_expression(text: str, n: int | None = None) -> ParsedExpression:
    """Parse, check and fold ``text``; raise :class:`ExpressionError` for anything invalid.

    ``n`` defaults to the highest variable index used; if given it must be at least
    that and at most ``MAX_DIMENSION``.
    """
    if not isinstance(text, str):
        raise TypeError(f"expression must be a str, not {type(text).__name__}")
    source = Source(text)
    tree = reader.read(source)
    variables = whitelist.check(tree, source)
    root = lower.lower(tree, source)
    return ParsedExpression(text, dimension(variables, n), tuple(sorted(variables)), root)


def dimension(variables: set[int], n: int | None) -> int:
    """The problem's dimension: ``n`` checked against the variables, or the highest index."""
    highest = max(variables, default=0)
    if n is None:
        if not highest:
            raise ExpressionError("expression uses no variables; give the dimension n")
        return highest
    if isinstance(n, bool):
        raise ExpressionError(f"dimension n must be an integer, got {n!r}")
    try:
        n = operator.index(n)
    except TypeError:
        raise ExpressionError(f"dimension n must be an integer, got {n!r}") from None
    if not 1 <= n <= MAX_DIMENSION:
        raise ExpressionError(f"dimension n={n} must be between 1 and {MAX_DIMENSION}")
    if n < highest:
        raise ExpressionError(f"dimension n={n} is smaller than the highest variable x{highest}")
    return n
