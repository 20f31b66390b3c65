"""Argument handling shared by the compiled solvers (PCG, MINRES, steepest descent).

The same conversions :meth:`trpo_viz.cg.ConjugateGradient.solve` makes: b becomes a
float32/float64 tensor (float64 for Python lists), x0 a tensor of b's dtype, and the
iteration limit a checked non-negative int defaulting to n.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import tensorflow as tf


def rhs_tensor(b, dtype: tf.DType | None = None) -> tf.Tensor:
    """b as a 1-D float32/float64 tensor; ValueError for another dtype or shape."""
    if not isinstance(b, tf.Tensor):
        b = np.asarray(b, dtype=np.float64 if dtype is None else dtype.as_numpy_dtype)
    b = tf.convert_to_tensor(b, dtype=dtype)
    if b.dtype not in (tf.float32, tf.float64):
        raise ValueError(f"b must be float32 or float64, not {b.dtype.name}")
    if b.shape.rank != 1:
        raise ValueError(f"b must be a vector, not shape {b.shape}")
    return b


def start_tensor(x0, b: tf.Tensor) -> tuple[tf.Tensor, bool]:
    """(x0 as b's dtype, whether one was given); zeros when x0 is None."""
    if x0 is None:
        return tf.zeros_like(b), False
    x0 = tf.constant(np.asarray(x0), b.dtype)
    if x0.shape != b.shape:
        raise ValueError(f"x0 has shape {x0.shape}, b has {b.shape}")
    return x0, True


def iteration_limit(max_iter: int | None, n: int) -> int:
    max_iter = n if max_iter is None else int(max_iter)
    if max_iter < 0:
        raise ValueError("max_iter must be non-negative")
    return max_iter


def replay(callback: Callable[[np.ndarray], None] | None, iterates: np.ndarray | None) -> None:
    """Call ``callback(x_k)`` for k = 1 … iterations, as SciPy's solvers do per iterate."""
    if callback is None:
        return
    if iterates is None:
        raise ValueError("callback needs record_vectors=True")
    for xk in iterates[1:]:
        callback(xk)
