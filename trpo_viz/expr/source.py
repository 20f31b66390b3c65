"""The expression text, positions in it, and the error that names them.

``ast`` reports UTF-8 byte offsets into one line; messages give 1-based character
columns into the whole text. Line breaks become spaces (same length), so a formula
may span lines and every column is an offset into the whole text.
"""

from __future__ import annotations

import ast

from trpo_viz.expr.grammar import short


class ExpressionError(ValueError):
    """An expression that cannot be compiled; ``column`` is 1-based, or None."""

    def __init__(self, message: str, column: int | None = None) -> None:
        super().__init__(message)
        self.column = column

    def __reduce__(self):
        return type(self), (str(self), self.column)


class Source:
    """One expression text: ``text`` as given, ``line`` (one line) and its UTF-8 bytes."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.line = text.replace("\r", " ").replace("\n", " ")
        self.line_bytes = b""  # set by encode(), which may fail on lone surrogates

    def encode(self) -> None:
        self.line_bytes = self.line.encode("utf-8")

    def error(self, message: str, column: int | None = None) -> ExpressionError:
        """An :class:`ExpressionError` whose message ends with ``at column N`` when known."""
        if column is not None:
            message = f"{message} at column {column}"
        return ExpressionError(message, column)

    def column(self, byte_offset: int) -> int:
        """1-based character column of a UTF-8 byte offset (what ``ast`` reports)."""
        return len(self.line_bytes[:byte_offset].decode("utf-8", "replace")) + 1

    def node_column(self, node: ast.AST) -> int | None:
        # some nodes (comprehension, arguments, contexts, operators) carry no position
        return self.column(node.col_offset) if "col_offset" in node._attributes else None

    def symbol_column(self, symbol: str, left: ast.AST, right: ast.AST) -> int | None:
        """Column of ``symbol`` between the end of ``left`` and the start of ``right``."""
        start, end = left.end_col_offset, right.col_offset
        found = self.line_bytes.find(symbol.split()[0].encode(), start, end)
        return self.column(found) if found >= 0 else self.node_column(left)

    def find_column(self, text: bytes, start: int) -> int:
        """Column of the first ``text`` at or after byte offset ``start``."""
        return self.column(self.line_bytes.find(text, start))

    def segment(self, node: ast.AST) -> str:
        """The (shortened) text of ``node``, for messages."""
        raw = self.line_bytes[node.col_offset : node.end_col_offset]
        return short(raw.decode("utf-8", "replace"))
