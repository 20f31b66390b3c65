"""The whitelist walk: every syntax node is checked; the leftmost problem is reported.

:func:`check` returns the variable indices that occur. Nothing is evaluated here.
"""

from __future__ import annotations

import ast
import math
from collections.abc import Callable

from trpo_viz.expr.grammar import (
    ALLOWED_NODES,
    CONSTANTS,
    FUNCTION_NAMES,
    MAX_DIMENSION,
    MAX_INDEX_DIGITS,
    MAX_NODES,
    NODE_NAMES,
    OPERATOR_SYMBOLS,
    VARIABLE,
    short,
)
from trpo_viz.expr.source import Source

Reject = Callable[[str, int | None], None]


def check(tree: ast.Expression, source: Source) -> set[int]:
    """Walk every node (iteratively) and reject anything off the whitelist.

    All problems are collected and the leftmost is reported as an ExpressionError.
    Returns the 1-based indices of the variables used.
    """
    problems: list[tuple[float, str, int | None]] = []

    def reject(message: str, column: int | None) -> None:
        problems.append((column if column is not None else math.inf, message, column))

    variables: set[int] = set()
    call_names: set[int] = set()
    count = 0
    for node in ast.walk(tree):
        count += 1
        if count > MAX_NODES:
            raise source.error(f"expression has more than {MAX_NODES} syntax nodes")
        if not isinstance(node, ALLOWED_NODES):
            if isinstance(node, (ast.operator, ast.unaryop, ast.boolop, ast.cmpop)):
                continue  # reported (with a column) by the parent
            reject(*describe(node, source))
        elif isinstance(node, ast.BinOp) and not isinstance(node.op, ALLOWED_NODES):
            symbol = OPERATOR_SYMBOLS.get(type(node.op), "?")
            hint = " (use ** for powers)" if symbol == "^" else ""
            reject(
                f"operator '{symbol}' is not allowed{hint}",
                source.symbol_column(symbol, node.left, node.right),
            )
        elif isinstance(node, ast.UnaryOp) and not isinstance(node.op, ALLOWED_NODES):
            symbol = OPERATOR_SYMBOLS.get(type(node.op), "?")
            reject(f"operator '{symbol}' is not allowed", source.node_column(node))
        elif isinstance(node, ast.Constant):
            if type(node.value) not in (int, float):
                kind = {str: "string", bytes: "bytes", complex: "complex number"}.get(
                    type(node.value), repr(node.value)
                )
                reject(f"{kind} literal is not allowed", source.node_column(node))
        elif isinstance(node, ast.Call):
            check_call(node, source, reject)
            if isinstance(node.func, ast.Name):
                call_names.add(id(node.func))
        elif isinstance(node, ast.Name) and id(node) not in call_names:
            problem = check_name(node.id, variables)
            if problem:
                reject(problem, source.node_column(node))
    if problems:
        _, message, column = min(problems, key=lambda p: p[0])
        raise source.error(message, column)
    return variables


def describe(node: ast.AST, source: Source) -> tuple[str, int | None]:
    """Message and column for a node type that is not allowed at all."""
    name = NODE_NAMES.get(type(node), type(node).__name__)
    if isinstance(node, ast.Attribute):
        column = source.find_column(b".", node.value.end_col_offset)
        return f"attribute access '.{short(node.attr)}' is not allowed", column
    if isinstance(node, ast.Subscript):
        return "subscript '[...]' is not allowed", source.find_column(
            b"[", node.value.end_col_offset
        )
    if isinstance(node, ast.Compare):
        symbol = OPERATOR_SYMBOLS.get(type(node.ops[0]), "?")
        column = source.symbol_column(symbol, node.left, node.comparators[0])
        return f"comparison '{symbol}' is not allowed", column
    if isinstance(node, ast.BoolOp):
        symbol = OPERATOR_SYMBOLS.get(type(node.op), "?")
        column = source.symbol_column(symbol, node.values[0], node.values[1])
        return f"boolean operator '{symbol}' is not allowed", column
    if isinstance(node, ast.keyword):
        label = f"'{node.arg}=...'" if node.arg else "'**...'"
        return f"keyword argument {label} is not allowed", source.node_column(node)
    if isinstance(node, ast.expr_context):
        return "assignment target is not allowed", None
    return f"{name} is not allowed", source.node_column(node)


def check_call(node: ast.Call, source: Source, reject: Reject) -> None:
    """A call must name a function in the list and pass exactly one positional argument."""
    column = source.node_column(node)
    func = node.func
    if not isinstance(func, ast.Name):
        if isinstance(func, ALLOWED_NODES):  # e.g. sin(x1)(2); else func is reported
            reject("only functions named in FUNCTIONS can be called", column)
    elif func.id not in FUNCTION_NAMES:
        if func.id in CONSTANTS or VARIABLE.fullmatch(func.id):
            reject(f"'{short(func.id)}' is not a function", column)
        else:
            reject(f"unknown function '{short(func.id)}'", column)
    elif not node.keywords and len(node.args) != 1:  # keywords are reported themselves
        reject(f"{func.id}() takes exactly one argument ({len(node.args)} given)", column)


def check_name(name: str, variables: set[int]) -> str | None:
    """The problem with a name that is not a call target, or None; records variable indices."""
    if name in CONSTANTS:
        return None
    match = VARIABLE.fullmatch(name)
    if match:
        digits = match[2]
        if digits.startswith("0"):
            if digits.strip("0"):
                return f"variable '{short(name)}' must not have leading zeros"
            return f"variable indices start at 1 ('{short(name)}' is not a variable)"
        if len(digits) > MAX_INDEX_DIGITS or int(digits) > MAX_DIMENSION:
            return f"variable '{short(name)}' exceeds the maximum dimension {MAX_DIMENSION}"
        variables.add(int(digits))
        return None
    if name in FUNCTION_NAMES:
        return f"function '{name}' must be called, e.g. {name}(x1)"
    return f"unknown name '{short(name)}' (variables are x1, x2, ...; constants pi, e)"
