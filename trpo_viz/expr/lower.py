"""Checked syntax tree to :mod:`~trpo_viz.expr.terms`, folding constants in float arithmetic.

Constants are folded in plain float64 arithmetic (never Python integer powers):
literals or constant subexpressions whose magnitude exceeds ``MAX_ABS_CONSTANT`` or
which are undefined (``1/0``, ``log(0)``), constant exponents beyond
``MAX_ABS_EXPONENT``, division by a constant zero and operator/call nesting deeper
than ``MAX_DEPTH`` are errors. Runs only on a tree that passed
:func:`trpo_viz.expr.whitelist.check`.
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable

from trpo_viz.expr.grammar import (
    CONSTANTS,
    FOLD,
    MAX_ABS_CONSTANT,
    MAX_ABS_EXPONENT,
    MAX_DEPTH,
    PRODUCT_OPS,
    SUM_OPS,
    VARIABLE,
)
from trpo_viz.expr.source import Source
from trpo_viz.expr.terms import Apply, Constant, Negate, Power, Product, Sum, Term, Variable

_ARITHMETIC = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
}


def lower(tree: ast.Expression, source: Source) -> Term:
    """The term for a whitelisted tree; raises ExpressionError for bad constants or depth."""
    return _Lowering(source).term(tree.body, 1)


def _format_number(v: float) -> str:
    return str(int(v)) if v.is_integer() and abs(v) < 1e15 else repr(v)


class _Lowering:
    def __init__(self, source: Source) -> None:
        self.source = source

    def term(self, node: ast.expr, depth: int) -> Term:
        source = self.source
        if depth > MAX_DEPTH:
            raise source.error(
                f"expression nested more than {MAX_DEPTH} levels deep", source.node_column(node)
            )
        if isinstance(node, ast.Constant):
            if abs(node.value) > MAX_ABS_CONSTANT:
                raise source.error(
                    f"number {source.segment(node)} is too large (limit {MAX_ABS_CONSTANT:g})",
                    source.node_column(node),
                )
            return Constant(float(node.value))
        if isinstance(node, ast.Name):
            if node.id in CONSTANTS:
                return Constant(CONSTANTS[node.id])
            return Variable(int(VARIABLE.fullmatch(node.id)[2]))
        if isinstance(node, ast.UnaryOp):
            inner = self.term(node.operand, depth + 1)
            if isinstance(node.op, ast.UAdd):
                return inner
            if isinstance(inner, Constant):
                return Constant(-inner.value)
            return Negate(inner)
        if isinstance(node, ast.Call):
            name = node.func.id
            arg = self.term(node.args[0], depth + 1)
            if isinstance(arg, Constant):
                return self.fold(node, FOLD[name], arg.value)
            return Apply(name, arg)
        if isinstance(node.op, SUM_OPS):
            return self.chain(node, SUM_OPS, depth)
        if isinstance(node.op, PRODUCT_OPS):
            return self.chain(node, PRODUCT_OPS, depth)
        return self.power(node, depth)

    def fold(self, node: ast.AST, func: Callable[..., float], *args: float) -> Constant:
        """Evaluate a constant subexpression in float math, rejecting bad results."""
        source = self.source
        try:
            value = float(func(*args))
        except OverflowError:
            raise source.error(
                f"constant {source.segment(node)} is too large (overflow)",
                source.node_column(node),
            ) from None
        except (ArithmeticError, ValueError) as exc:
            reason = "division by zero" if isinstance(exc, ZeroDivisionError) else str(exc)
            raise source.error(
                f"constant {source.segment(node)} is undefined ({reason})",
                source.node_column(node),
            ) from None
        if not math.isfinite(value) or abs(value) > MAX_ABS_CONSTANT:
            raise source.error(
                f"constant {source.segment(node)} is too large or not finite "
                f"(limit {MAX_ABS_CONSTANT:g})",
                source.node_column(node),
            )
        return Constant(value)

    def chain(self, node: ast.BinOp, ops: tuple[type, ...], depth: int) -> Term:
        """A left-associative chain of + - (or * /), flattened without recursion.

        A constant prefix is folded as the tree would fold it (``1 + 2 - x1``
        becomes ``3 - x1``); constants after the first variable stay in place.
        """
        links: list[tuple[ast.BinOp | None, ast.operator, ast.expr]] = []
        while isinstance(node, ast.BinOp) and isinstance(node.op, ops):
            links.append((node, node.op, node.right))
            node = node.left
        links.append((None, ops[0](), node))
        links.reverse()
        operands: list[tuple[bool, Term]] = []  # (is the second operator: - or /, term)
        folded = True
        for whole, op, operand_node in links:
            operand = self.term(operand_node, depth + 1)
            constant = isinstance(operand, Constant)
            if isinstance(op, ast.Div) and constant and operand.value == 0.0:
                raise self.source.error("division by zero", self.source.node_column(operand_node))
            if folded and operands and constant:
                prefix = operands[0][1].value
                operands = [(False, self.fold(whole, _ARITHMETIC[type(op)], prefix, operand.value))]
                continue
            folded = folded and constant
            operands.append((isinstance(op, (ast.Sub, ast.Div)), operand))
        if len(operands) == 1:
            return operands[0][1]
        return Sum(tuple(operands)) if ops is SUM_OPS else Product(tuple(operands))

    def power(self, node: ast.BinOp, depth: int) -> Term:
        base = self.term(node.left, depth + 1)
        exponent = self.term(node.right, depth + 1)
        if isinstance(exponent, Constant):
            k = exponent.value
            if abs(k) > MAX_ABS_EXPONENT:
                raise self.source.error(
                    f"exponent {_format_number(k)} is too large (at most "
                    f"{MAX_ABS_EXPONENT} in absolute value)",
                    self.source.node_column(node.right),
                )
            if isinstance(base, Constant):
                return self.fold(node, math.pow, base.value, k)
            if k == 1:  # x**1 is x (and avoids the NaN second derivative of pow(x, 1) at 0)
                return base
        return Power(base, exponent)
