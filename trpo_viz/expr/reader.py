"""Text to syntax tree: cheap bounds first, then ``ast.parse``, every failure a clear message."""

from __future__ import annotations

import ast

from trpo_viz.expr.grammar import MAX_DEPTH, MAX_EXPRESSION_CHARS, short
from trpo_viz.expr.source import ExpressionError, Source


def read(source: Source) -> ast.Expression:
    """Check size, comments and bracket depth, then parse ``source`` as one expression."""
    precheck(source)
    return parse(source)


def precheck(source: Source) -> None:
    """Cheap checks before the parser sees the text: size, emptiness, comments, bracket depth."""
    if len(source.text) > MAX_EXPRESSION_CHARS:
        raise source.error(
            f"expression is too long ({len(source.text)} characters; "
            f"the limit is {MAX_EXPRESSION_CHARS})"
        )
    if not source.text.strip():
        raise source.error("expression is empty")
    depth = 0
    for i, ch in enumerate(source.line):
        if ch in "([{":
            depth += 1
            if depth > MAX_DEPTH:
                raise source.error(f"brackets nested more than {MAX_DEPTH} deep", i + 1)
        elif ch in ")]}":
            depth = max(depth - 1, 0)
        elif ch == "#":
            raise source.error("comments ('#') are not allowed", i + 1)


def parse(source: Source) -> ast.Expression:
    """``ast.parse`` in eval mode; syntax errors and parser limits become ExpressionError."""
    try:
        source.encode()
        return ast.parse(source.line, mode="eval")
    except SyntaxError as exc:
        msg = (exc.msg or "invalid syntax").split(";")[0]
        column = exc.offset if exc.offset and exc.offset >= 1 else None
        if column is None and msg == "invalid syntax":
            msg, column = "unexpected end of expression", len(source.line.rstrip()) + 1
        where = f" at column {column}" if column else ""
        raise ExpressionError(f"syntax error{where}: {msg}", column) from None
    except (RecursionError, MemoryError):
        raise source.error(
            "expression is too complex to parse (too many chained or nested operations; "
            "group terms with parentheses)"
        ) from None
    except ValueError as exc:  # e.g. lone surrogates, null bytes
        raise source.error(f"invalid text: {short(str(exc), 80)}") from None
