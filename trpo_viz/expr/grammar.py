"""The expression language as data: limits, constants, functions, accepted syntax nodes.

Pure Python (no TensorFlow). The function list pairs each name with its float
version, used to fold constant subexpressions; the TensorFlow op of each name is
in :mod:`trpo_viz.expr.tf_compile`.
"""

from __future__ import annotations

import ast
import math
import re
from collections.abc import Callable

MAX_EXPRESSION_CHARS = 20_000
MAX_NODES = 20_000
MAX_DEPTH = 60
MAX_DIMENSION = 10_000
MAX_ABS_CONSTANT = 1e100
MAX_ABS_EXPONENT = 100


def _sigmoid(v: float) -> float:
    if v >= 0:
        return 1.0 / (1.0 + math.exp(-v))
    z = math.exp(v)
    return z / (1.0 + z)


def _softplus(v: float) -> float:
    return max(v, 0.0) + math.log1p(math.exp(-abs(v)))


# name -> float version of the function, for constant folding
FOLD: dict[str, Callable[[float], float]] = {
    "sin": math.sin,
    "cos": math.cos,
    "tan": math.tan,
    "exp": math.exp,
    "log": math.log,
    "sqrt": math.sqrt,
    "tanh": math.tanh,
    "sigmoid": _sigmoid,
    "softplus": _softplus,
    "abs": abs,
    "square": lambda v: v * v,
    "log1p": math.log1p,
    "expm1": math.expm1,
    "sinh": math.sinh,
    "cosh": math.cosh,
    "arcsin": math.asin,
    "asin": math.asin,
    "arccos": math.acos,
    "acos": math.acos,
    "arctan": math.atan,
    "atan": math.atan,
    "arcsinh": math.asinh,
    "asinh": math.asinh,
    "arccosh": math.acosh,
    "acosh": math.acosh,
    "arctanh": math.atanh,
    "atanh": math.atanh,
    "erf": math.erf,
}
FUNCTION_NAMES: frozenset[str] = frozenset(FOLD)
CONSTANTS: dict[str, float] = {"pi": math.pi, "e": math.e}

VARIABLE = re.compile(r"(x|theta|θ)([0-9]+)")
MAX_INDEX_DIGITS = len(str(MAX_DIMENSION))

# fmt: off
# Whitelisted node types; everything else found by the walk is rejected.
ALLOWED_NODES = (
    ast.Expression, ast.BinOp, ast.UnaryOp, ast.Call, ast.Name, ast.Constant, ast.Load,
    ast.Add, ast.Sub, ast.Mult, ast.Div, ast.Pow, ast.UAdd, ast.USub,
)
SUM_OPS = (ast.Add, ast.Sub)
PRODUCT_OPS = (ast.Mult, ast.Div)
OPERATOR_SYMBOLS = {
    ast.FloorDiv: "//", ast.Mod: "%", ast.MatMult: "@", ast.LShift: "<<", ast.RShift: ">>",
    ast.BitOr: "|", ast.BitXor: "^", ast.BitAnd: "&", ast.Not: "not", ast.Invert: "~",
    ast.And: "and", ast.Or: "or", ast.Eq: "==", ast.NotEq: "!=", ast.Lt: "<", ast.LtE: "<=",
    ast.Gt: ">", ast.GtE: ">=", ast.Is: "is", ast.IsNot: "is not", ast.In: "in",
    ast.NotIn: "not in",
}
NODE_NAMES = {
    ast.Attribute: "attribute access", ast.Subscript: "subscript", ast.Slice: "slice",
    ast.Lambda: "lambda", ast.IfExp: "conditional expression", ast.NamedExpr: "assignment ':='",
    ast.ListComp: "list comprehension", ast.SetComp: "set comprehension",
    ast.DictComp: "dict comprehension", ast.GeneratorExp: "generator expression",
    ast.List: "list", ast.Tuple: "tuple", ast.Set: "set", ast.Dict: "dict",
    ast.JoinedStr: "f-string", ast.FormattedValue: "f-string", ast.Starred: "starred expression",
    ast.keyword: "keyword argument", ast.Await: "await", ast.Yield: "yield",
    ast.YieldFrom: "yield", ast.comprehension: "comprehension",
}
# fmt: on


def short(s: str, limit: int = 30) -> str:
    """``s`` cut to ``limit`` characters for a message."""
    return s if len(s) <= limit else s[: limit - 3] + "..."
