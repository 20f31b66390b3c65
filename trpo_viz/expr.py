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
* calls ``f(arg)`` of a function named in :data:`FUNCTIONS`, with exactly one
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

Constants are folded in plain float arithmetic (never Python integer powers):
literals or constant subexpressions whose magnitude exceeds
:data:`MAX_ABS_CONSTANT` or which are undefined (``1/0``, ``log(0)``), and
constant exponents beyond :data:`MAX_ABS_EXPONENT` are errors, as is dividing
by a constant zero. Folding uses float64; constants are cast to ``theta``'s
dtype at call time (so a constant above ~3e38 is ``inf`` in float32).
"""

from __future__ import annotations

import ast
import math
import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import tensorflow as tf

__all__ = [
    "CONSTANTS",
    "FUNCTIONS",
    "MAX_ABS_CONSTANT",
    "MAX_ABS_EXPONENT",
    "MAX_DEPTH",
    "MAX_DIMENSION",
    "MAX_EXPRESSION_CHARS",
    "MAX_NODES",
    "CompiledExpression",
    "ExpressionError",
    "compile_expression",
]

MAX_EXPRESSION_CHARS = 20_000
MAX_NODES = 20_000
MAX_DEPTH = 60
MAX_DIMENSION = 10_000
MAX_ABS_CONSTANT = 1e100
MAX_ABS_EXPONENT = 100


class ExpressionError(ValueError):
    """An expression that cannot be compiled; ``column`` is 1-based, or None."""

    def __init__(self, message: str, column: int | None = None) -> None:
        super().__init__(message)
        self.column = column

    def __reduce__(self):
        return type(self), (str(self), self.column)


def _sigmoid(v: float) -> float:
    if v >= 0:
        return 1.0 / (1.0 + math.exp(-v))
    z = math.exp(v)
    return z / (1.0 + z)


def _softplus(v: float) -> float:
    return max(v, 0.0) + math.log1p(math.exp(-abs(v)))


# name -> (TensorFlow op, float version used for constant folding)
_FUNCTION_TABLE: dict[str, tuple[Callable, Callable[[float], float]]] = {
    "sin": (tf.math.sin, math.sin),
    "cos": (tf.math.cos, math.cos),
    "tan": (tf.math.tan, math.tan),
    "exp": (tf.math.exp, math.exp),
    "log": (tf.math.log, math.log),
    "sqrt": (tf.math.sqrt, math.sqrt),
    "tanh": (tf.math.tanh, math.tanh),
    "sigmoid": (tf.math.sigmoid, _sigmoid),
    "softplus": (tf.math.softplus, _softplus),
    "abs": (tf.math.abs, abs),
    "square": (tf.math.square, lambda v: v * v),
    "log1p": (tf.math.log1p, math.log1p),
    "expm1": (tf.math.expm1, math.expm1),
    "sinh": (tf.math.sinh, math.sinh),
    "cosh": (tf.math.cosh, math.cosh),
    "arcsin": (tf.math.asin, math.asin),
    "asin": (tf.math.asin, math.asin),
    "arccos": (tf.math.acos, math.acos),
    "acos": (tf.math.acos, math.acos),
    "arctan": (tf.math.atan, math.atan),
    "atan": (tf.math.atan, math.atan),
    "arcsinh": (tf.math.asinh, math.asinh),
    "asinh": (tf.math.asinh, math.asinh),
    "arccosh": (tf.math.acosh, math.acosh),
    "acosh": (tf.math.acosh, math.acosh),
    "arctanh": (tf.math.atanh, math.atanh),
    "atanh": (tf.math.atanh, math.atanh),
    "erf": (tf.math.erf, math.erf),
}
FUNCTIONS: dict[str, Callable] = {name: ops[0] for name, ops in _FUNCTION_TABLE.items()}
_FOLD: dict[str, Callable[[float], float]] = {name: ops[1] for name, ops in _FUNCTION_TABLE.items()}
CONSTANTS: dict[str, float] = {"pi": math.pi, "e": math.e}

_VARIABLE = re.compile(r"(x|theta|θ)([0-9]+)")
_MAX_INDEX_DIGITS = len(str(MAX_DIMENSION))

# fmt: off
# Whitelisted node types; everything else found by the walk is rejected.
_ALLOWED_NODES = (
    ast.Expression, ast.BinOp, ast.UnaryOp, ast.Call, ast.Name, ast.Constant, ast.Load,
    ast.Add, ast.Sub, ast.Mult, ast.Div, ast.Pow, ast.UAdd, ast.USub,
)
_SUM_OPS = (ast.Add, ast.Sub)
_PRODUCT_OPS = (ast.Mult, ast.Div)
_OPERATOR_SYMBOLS = {
    ast.FloorDiv: "//", ast.Mod: "%", ast.MatMult: "@", ast.LShift: "<<", ast.RShift: ">>",
    ast.BitOr: "|", ast.BitXor: "^", ast.BitAnd: "&", ast.Not: "not", ast.Invert: "~",
    ast.And: "and", ast.Or: "or", ast.Eq: "==", ast.NotEq: "!=", ast.Lt: "<", ast.LtE: "<=",
    ast.Gt: ">", ast.GtE: ">=", ast.Is: "is", ast.IsNot: "is not", ast.In: "in",
    ast.NotIn: "not in",
}
_NODE_NAMES = {
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

_Builder = Callable[[Mapping[int, tf.Tensor], tf.DType], tf.Tensor]


@dataclass(frozen=True)
class _Node:
    """A compiled subexpression: its folded value when constant, else None, and a builder."""

    value: float | None
    build: _Builder


def _constant(value: float) -> _Node:
    return _Node(value, lambda xs, dtype: tf.constant(value, dtype))


def _connected_zero(x: tf.Tensor) -> tf.Tensor:
    """Exact zeros shaped like ``x`` whose derivative w.r.t. ``x`` is 0 (not None)."""
    return tf.math.multiply_no_nan(x, tf.zeros_like(x))


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
    _root: _Node = field(repr=False, compare=False)

    @tf.autograph.experimental.do_not_convert  # plain TF ops, no tensor-dependent control flow
    def __call__(self, theta: tf.Tensor) -> tf.Tensor:
        theta = tf.convert_to_tensor(theta)
        if not theta.dtype.is_floating:
            raise TypeError(f"theta must be a floating-point tensor, got {theta.dtype.name}")
        theta.shape.assert_is_compatible_with([self.n])
        if self._root.value is not None:  # no variables: keep the result connected to theta
            return tf.constant(self._root.value, theta.dtype) + tf.reduce_sum(
                _connected_zero(theta)
            )
        if 4 * len(self.variables) >= self.n:  # one unstack when most variables are used
            parts = tf.unstack(theta, num=self.n)
            xs = {i: parts[i - 1] for i in self.variables}
        else:  # a few slices avoid an n-way unstack (and n zero gradients) for large n
            xs = {i: theta[i - 1] for i in self.variables}
        return self._root.build(xs, theta.dtype)


def compile_expression(text: str, n: int | None = None) -> CompiledExpression:
    """Compile ``text`` into a :class:`CompiledExpression` of dimension ``n``.

    ``n`` defaults to the highest variable index used; if given it must be at least
    that (unused variables get zero derivatives). Raises :class:`ExpressionError`.
    """
    if not isinstance(text, str):
        raise TypeError(f"expression must be a str, not {type(text).__name__}")
    return _Compiler(text).compile(n)


def _short(s: str, limit: int = 30) -> str:
    return s if len(s) <= limit else s[: limit - 3] + "..."


def _format_number(v: float) -> str:
    return str(int(v)) if v.is_integer() and abs(v) < 1e15 else repr(v)


class _Compiler:
    def __init__(self, text: str) -> None:
        self.text = text
        # Line breaks become spaces (same length), so the source is one line and
        # every column is an offset into the whole text.
        self.source = text.replace("\r", " ").replace("\n", " ")
        self.source_bytes = b""
        self.variables: set[int] = set()

    # -- errors and positions -------------------------------------------------

    def error(self, message: str, column: int | None) -> ExpressionError:
        if column is not None:
            message = f"{message} at column {column}"
        return ExpressionError(message, column)

    def column(self, byte_offset: int) -> int:
        """1-based character column of a UTF-8 byte offset (what ``ast`` reports)."""
        return len(self.source_bytes[:byte_offset].decode("utf-8", "replace")) + 1

    def node_column(self, node: ast.AST) -> int | None:
        # some nodes (comprehension, arguments, contexts, operators) carry no position
        return self.column(node.col_offset) if "col_offset" in node._attributes else None

    def symbol_column(self, symbol: str, left: ast.AST, right: ast.AST) -> int | None:
        """Column of ``symbol`` between the end of ``left`` and the start of ``right``."""
        start, end = left.end_col_offset, right.col_offset
        found = self.source_bytes.find(symbol.split()[0].encode(), start, end)
        return self.column(found) if found >= 0 else self.node_column(left)

    def segment(self, node: ast.AST) -> str:
        raw = self.source_bytes[node.col_offset : node.end_col_offset]
        return _short(raw.decode("utf-8", "replace"))

    # -- driver -------------------------------------------------------------------

    def compile(self, n: int | None) -> CompiledExpression:
        self.precheck()
        tree = self.parse()
        self.validate(tree)
        root = self.node(tree.body, 1)
        n = self.dimension(n)
        return CompiledExpression(self.text, n, tuple(sorted(self.variables)), root)

    def precheck(self) -> None:
        """Cheap checks before the parser sees the text: size, comments, bracket depth."""
        if len(self.text) > MAX_EXPRESSION_CHARS:
            raise self.error(
                f"expression is too long ({len(self.text)} characters; "
                f"the limit is {MAX_EXPRESSION_CHARS})",
                None,
            )
        if not self.text.strip():
            raise self.error("expression is empty", None)
        depth = 0
        for i, ch in enumerate(self.source):
            if ch in "([{":
                depth += 1
                if depth > MAX_DEPTH:
                    raise self.error(f"brackets nested more than {MAX_DEPTH} deep", i + 1)
            elif ch in ")]}":
                depth = max(depth - 1, 0)
            elif ch == "#":
                raise self.error("comments ('#') are not allowed", i + 1)

    def parse(self) -> ast.Expression:
        try:
            self.source_bytes = self.source.encode("utf-8")
            return ast.parse(self.source, mode="eval")
        except SyntaxError as exc:
            msg = (exc.msg or "invalid syntax").split(";")[0]
            column = exc.offset if exc.offset and exc.offset >= 1 else None
            if column is None and msg == "invalid syntax":
                msg, column = "unexpected end of expression", len(self.source.rstrip()) + 1
            where = f" at column {column}" if column else ""
            raise ExpressionError(f"syntax error{where}: {msg}", column) from None
        except (RecursionError, MemoryError):
            raise self.error(
                "expression is too complex to parse (too many chained or nested operations; "
                "group terms with parentheses)",
                None,
            ) from None
        except ValueError as exc:  # e.g. lone surrogates, null bytes
            raise self.error(f"invalid text: {_short(str(exc), 80)}", None) from None

    # -- whitelist walk -------------------------------------------------------------

    def validate(self, tree: ast.Expression) -> None:
        """Walk every node (iteratively) and reject anything off the whitelist.

        All problems are collected and the leftmost is reported.
        """
        problems: list[tuple[float, str, int | None]] = []

        def reject(message: str, column: int | None) -> None:
            problems.append((column if column is not None else math.inf, message, column))

        call_names: set[int] = set()
        count = 0
        for node in ast.walk(tree):
            count += 1
            if count > MAX_NODES:
                raise self.error(f"expression has more than {MAX_NODES} syntax nodes", None)
            if not isinstance(node, _ALLOWED_NODES):
                if isinstance(node, (ast.operator, ast.unaryop, ast.boolop, ast.cmpop)):
                    continue  # reported (with a column) by the parent
                reject(*self.describe(node))
            elif isinstance(node, ast.BinOp) and not isinstance(node.op, _ALLOWED_NODES):
                symbol = _OPERATOR_SYMBOLS.get(type(node.op), "?")
                hint = " (use ** for powers)" if symbol == "^" else ""
                reject(
                    f"operator '{symbol}' is not allowed{hint}",
                    self.symbol_column(symbol, node.left, node.right),
                )
            elif isinstance(node, ast.UnaryOp) and not isinstance(node.op, _ALLOWED_NODES):
                symbol = _OPERATOR_SYMBOLS.get(type(node.op), "?")
                reject(f"operator '{symbol}' is not allowed", self.node_column(node))
            elif isinstance(node, ast.Constant):
                if type(node.value) not in (int, float):
                    kind = {str: "string", bytes: "bytes", complex: "complex number"}.get(
                        type(node.value), repr(node.value)
                    )
                    reject(f"{kind} literal is not allowed", self.node_column(node))
            elif isinstance(node, ast.Call):
                self.check_call(node, reject)
                if isinstance(node.func, ast.Name):
                    call_names.add(id(node.func))
            elif isinstance(node, ast.Name) and id(node) not in call_names:
                problem = self.check_name(node)
                if problem:
                    reject(problem, self.node_column(node))
        if problems:
            _, message, column = min(problems, key=lambda p: p[0])
            raise self.error(message, column)

    def describe(self, node: ast.AST) -> tuple[str, int | None]:
        """Message and column for a node type that is not allowed at all."""
        name = _NODE_NAMES.get(type(node), type(node).__name__)
        if isinstance(node, ast.Attribute):
            found = self.source_bytes.find(b".", node.value.end_col_offset)
            return f"attribute access '.{_short(node.attr)}' is not allowed", self.column(found)
        if isinstance(node, ast.Subscript):
            found = self.source_bytes.find(b"[", node.value.end_col_offset)
            return "subscript '[...]' is not allowed", self.column(found)
        if isinstance(node, ast.Compare):
            symbol = _OPERATOR_SYMBOLS.get(type(node.ops[0]), "?")
            column = self.symbol_column(symbol, node.left, node.comparators[0])
            return f"comparison '{symbol}' is not allowed", column
        if isinstance(node, ast.BoolOp):
            symbol = _OPERATOR_SYMBOLS.get(type(node.op), "?")
            column = self.symbol_column(symbol, node.values[0], node.values[1])
            return f"boolean operator '{symbol}' is not allowed", column
        if isinstance(node, ast.keyword):
            label = f"'{node.arg}=...'" if node.arg else "'**...'"
            return f"keyword argument {label} is not allowed", self.node_column(node)
        if isinstance(node, ast.expr_context):
            return "assignment target is not allowed", None
        return f"{name} is not allowed", self.node_column(node)

    def check_call(self, node: ast.Call, reject: Callable[[str, int | None], None]) -> None:
        column = self.node_column(node)
        func = node.func
        if not isinstance(func, ast.Name):
            if isinstance(func, _ALLOWED_NODES):  # e.g. sin(x1)(2); else func is reported
                reject("only functions named in FUNCTIONS can be called", column)
        elif func.id not in FUNCTIONS:
            if func.id in CONSTANTS or _VARIABLE.fullmatch(func.id):
                reject(f"'{_short(func.id)}' is not a function", column)
            else:
                reject(f"unknown function '{_short(func.id)}'", column)
        elif not node.keywords and len(node.args) != 1:  # keywords are reported themselves
            reject(f"{func.id}() takes exactly one argument ({len(node.args)} given)", column)

    def check_name(self, node: ast.Name) -> str | None:
        """Validate a name that is not a call target; records variable indices."""
        name = node.id
        if name in CONSTANTS:
            return None
        match = _VARIABLE.fullmatch(name)
        if match:
            digits = match[2]
            if digits.startswith("0"):
                if digits.strip("0"):
                    return f"variable '{_short(name)}' must not have leading zeros"
                return f"variable indices start at 1 ('{_short(name)}' is not a variable)"
            if len(digits) > _MAX_INDEX_DIGITS or int(digits) > MAX_DIMENSION:
                return f"variable '{_short(name)}' exceeds the maximum dimension {MAX_DIMENSION}"
            self.variables.add(int(digits))
            return None
        if name in FUNCTIONS:
            return f"function '{name}' must be called, e.g. {name}(x1)"
        return f"unknown name '{_short(name)}' (variables are x1, x2, ...; constants pi, e)"

    def dimension(self, n: int | None) -> int:
        highest = max(self.variables, default=0)
        if n is None:
            if not highest:
                raise self.error("expression uses no variables; give the dimension n", None)
            return highest
        if isinstance(n, bool):
            raise self.error(f"dimension n must be an integer, got {n!r}", None)
        try:
            n = operator.index(n)
        except TypeError:
            raise self.error(f"dimension n must be an integer, got {n!r}", None) from None
        if not 1 <= n <= MAX_DIMENSION:
            raise self.error(f"dimension n={n} must be between 1 and {MAX_DIMENSION}", None)
        if n < highest:
            raise self.error(
                f"dimension n={n} is smaller than the highest variable x{highest}", None
            )
        return n

    # -- translation to TensorFlow closures (the tree is already validated) ------------

    def node(self, node: ast.expr, depth: int) -> _Node:
        if depth > MAX_DEPTH:
            raise self.error(
                f"expression nested more than {MAX_DEPTH} levels deep", self.node_column(node)
            )
        if isinstance(node, ast.Constant):
            if abs(node.value) > MAX_ABS_CONSTANT:
                raise self.error(
                    f"number {self.segment(node)} is too large (limit {MAX_ABS_CONSTANT:g})",
                    self.node_column(node),
                )
            return _constant(float(node.value))
        if isinstance(node, ast.Name):
            if node.id in CONSTANTS:
                return _constant(CONSTANTS[node.id])
            index = int(_VARIABLE.fullmatch(node.id)[2])
            return _Node(None, lambda xs, dtype: xs[index])
        if isinstance(node, ast.UnaryOp):
            inner = self.node(node.operand, depth + 1)
            if isinstance(node.op, ast.UAdd):
                return inner
            if inner.value is not None:
                return _constant(-inner.value)
            return _Node(None, lambda xs, dtype: tf.math.negative(inner.build(xs, dtype)))
        if isinstance(node, ast.Call):
            return self.call(node, depth)
        if isinstance(node.op, _SUM_OPS):
            return self.chain(node, _SUM_OPS, depth)
        if isinstance(node.op, _PRODUCT_OPS):
            return self.chain(node, _PRODUCT_OPS, depth)
        return self.power(node, depth)

    def fold(self, node: ast.AST, func: Callable[..., float], *args: float) -> _Node:
        """Evaluate a constant subexpression in float math, rejecting bad results."""
        try:
            value = float(func(*args))
        except OverflowError:
            raise self.error(
                f"constant {self.segment(node)} is too large (overflow)", self.node_column(node)
            ) from None
        except (ArithmeticError, ValueError) as exc:
            reason = "division by zero" if isinstance(exc, ZeroDivisionError) else str(exc)
            raise self.error(
                f"constant {self.segment(node)} is undefined ({reason})", self.node_column(node)
            ) from None
        if not math.isfinite(value) or abs(value) > MAX_ABS_CONSTANT:
            raise self.error(
                f"constant {self.segment(node)} is too large or not finite "
                f"(limit {MAX_ABS_CONSTANT:g})",
                self.node_column(node),
            )
        return _constant(value)

    def chain(self, node: ast.BinOp, ops: tuple[type, ...], depth: int) -> _Node:
        """A left-associative chain of + - (or * /), flattened without recursion."""
        links: list[tuple[ast.BinOp | None, ast.operator, ast.expr]] = []
        while isinstance(node, ast.BinOp) and isinstance(node.op, ops):
            links.append((node, node.op, node.right))
            node = node.left
        links.append((None, ops[0](), node))
        links.reverse()
        operands: list[tuple[bool, _Node]] = []  # (is the second operator: - or /, node)
        folded = True
        for whole, op, operand_node in links:
            operand = self.node(operand_node, depth + 1)
            inverse = isinstance(op, (ast.Sub, ast.Div))
            if isinstance(op, ast.Div) and operand.value == 0.0:
                raise self.error("division by zero", self.node_column(operand_node))
            if folded and operands and operand.value is not None:
                # prefix up to here is constant: fold it like the tree would
                func = {
                    ast.Add: operator.add,
                    ast.Sub: operator.sub,
                    ast.Mult: operator.mul,
                    ast.Div: operator.truediv,
                }[type(op)]
                operands = [(False, self.fold(whole, func, operands[0][1].value, operand.value))]
                continue
            folded = folded and operand.value is not None
            operands.append((inverse, operand))
        if len(operands) == 1:
            return operands[0][1]
        if ops is _SUM_OPS:
            return _Node(None, _sum_builder(operands))
        return _Node(None, _product_builder(operands))

    def power(self, node: ast.BinOp, depth: int) -> _Node:
        base = self.node(node.left, depth + 1)
        exponent = self.node(node.right, depth + 1)
        k = exponent.value
        if k is not None and abs(k) > MAX_ABS_EXPONENT:
            raise self.error(
                f"exponent {_format_number(k)} is too large (at most "
                f"{MAX_ABS_EXPONENT} in absolute value)",
                self.node_column(node.right),
            )
        if base.value is not None and k is not None:
            return self.fold(node, math.pow, base.value, k)
        if k == 0:  # exactly 1, derivative 0, still connected to the base
            return _Node(None, lambda xs, dtype: _connected_zero(base.build(xs, dtype)) + 1)
        if k == 1:  # avoids the NaN second derivative of tf.pow(x, 1) at x = 0
            return base
        if k == 2:
            return _Node(None, lambda xs, dtype: tf.math.square(base.build(xs, dtype)))
        return _Node(
            None, lambda xs, dtype: tf.math.pow(base.build(xs, dtype), exponent.build(xs, dtype))
        )

    def call(self, node: ast.Call, depth: int) -> _Node:
        name = node.func.id
        arg = self.node(node.args[0], depth + 1)
        if arg.value is not None and name in _FOLD:
            return self.fold(node, _FOLD[name], arg.value)
        op = FUNCTIONS[name]
        return _Node(None, lambda xs, dtype: op(arg.build(xs, dtype)))


def _sum_builder(operands: list[tuple[bool, _Node]]) -> _Builder:
    def build(xs: Mapping[int, tf.Tensor], dtype: tf.DType) -> tf.Tensor:
        plus = [node.build(xs, dtype) for negate, node in operands if not negate]
        minus = [node.build(xs, dtype) for negate, node in operands if negate]
        if not minus:
            return tf.math.add_n(plus)
        if not plus:
            return tf.math.negative(tf.math.add_n(minus))
        return tf.math.add_n(plus) - tf.math.add_n(minus)

    return build


def _product_builder(operands: list[tuple[bool, _Node]]) -> _Builder:
    def build(xs: Mapping[int, tf.Tensor], dtype: tf.DType) -> tf.Tensor:
        result = operands[0][1].build(xs, dtype)
        for divide, node in operands[1:]:
            value = node.build(xs, dtype)
            result = result / value if divide else result * value
        return result

    return build
