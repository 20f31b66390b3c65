"""A checked expression as a small tree of plain terms (no ``ast``, no TensorFlow).

Constant subexpressions are already folded into one :class:`Constant`; the
TensorFlow stage (:mod:`trpo_viz.expr.tf_compile`) only translates these terms.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Constant:
    value: float


@dataclass(frozen=True)
class Variable:
    index: int  # 1-based: x1 is theta[0]


@dataclass(frozen=True)
class Negate:
    operand: Term


@dataclass(frozen=True)
class Apply:
    function: str  # a name in grammar.FUNCTION_NAMES
    operand: Term


@dataclass(frozen=True)
class Sum:
    """t₀ ± t₁ ± …: ``terms`` holds (subtract, term) pairs; the first is never subtracted."""

    terms: tuple[tuple[bool, Term], ...]


@dataclass(frozen=True)
class Product:
    """f₀ ×/÷ f₁ ×/÷ … left to right: ``factors`` holds (divide, factor) pairs."""

    factors: tuple[tuple[bool, Term], ...]


@dataclass(frozen=True)
class Power:
    """base ** exponent; not both constant (that is folded), exponent ≠ 1 when constant."""

    base: Term
    exponent: Term


Term = Constant | Variable | Negate | Apply | Sum | Product | Power
