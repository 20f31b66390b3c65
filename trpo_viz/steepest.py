"""Steepest descent with exact line search for (A + λI) x = b, on ``matvec``, with a full trace.

The baseline every Krylov method is measured against: each step moves along the
residual r_k = b − (A+λI)x_k (the negative gradient of q(x) = ½xᵀ(A+λI)x − bᵀx) by the
step that minimises q on that line. One product per step, like CG, but the A-norm
error only shrinks by (κ−1)/(κ+1) per step instead of CG's (√κ−1)/(√κ+1).
:func:`trpo_viz.analysis.steepest_descent_path` is the same method on an explicit
matrix, for the explorer's 2-D contour plot.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import tensorflow as tf

from trpo_viz.cg import STOP_REASONS, Matvec, dot
from trpo_viz.serialize import to_jsonable
from trpo_viz.solver_inputs import iteration_limit, replay, rhs_tensor, start_tensor

_RUNNING, _CONVERGED, _MAX_ITER, _NEGATIVE_CURVATURE, _BREAKDOWN = (
    STOP_REASONS.index(name)
    for name in ("running", "converged", "max_iter", "negative_curvature", "breakdown")
)


def steepest_descent_loop(
    matvec: Matvec,
    b: tf.Tensor,
    x0: tf.Tensor | None = None,
    damping: float | tf.Tensor = 0.0,
    max_iter: int | tf.Tensor = 10,
    rtol: float | tf.Tensor = 1e-10,
    atol: float | tf.Tensor = 0.0,
    record_vectors: bool = True,
    true_residual: bool = True,
) -> dict[str, tf.Tensor]:
    """Traceable steepest descent; see :meth:`SteepestDescent.solve` for the maths.

    Returns ``x``, ``iterations``, ``stop_code`` (index into
    :data:`trpo_viz.cg.STOP_REASONS`), ``residual_norms`` [k+1], ``alphas`` [k],
    ``curvatures`` [k, or k+1 after a non-positive one], with ``record_vectors`` also
    ``iterates`` [k+1, n], and with ``true_residual`` ``true_residual_norm``. Padded to
    ``max_iter + 1``; :meth:`SDResult.from_tensors` trims.
    """
    dtype = b.dtype
    damping = tf.cast(damping, dtype)
    max_iter = tf.cast(max_iter, tf.int32)
    threshold = tf.maximum(tf.cast(rtol, dtype) * tf.norm(b), tf.cast(atol, dtype))

    def damped_matvec(v):
        return matvec(v) + damping * v

    if x0 is None:
        x, r = tf.zeros_like(b), b
    else:
        x = tf.cast(x0, dtype)
        r = b - damped_matvec(x)
    rs = dot(r, r)

    def next_code(k, residual_norm):
        return tf.where(
            residual_norm <= threshold, _CONVERGED, tf.where(k >= max_iter, _MAX_ITER, _RUNNING)
        )

    size = max_iter + 1
    alphas = tf.TensorArray(dtype, size=size)
    curvatures = tf.TensorArray(dtype, size=size)
    norms = tf.TensorArray(dtype, size=size).write(0, tf.sqrt(rs))
    iterates = tf.TensorArray(dtype, size=size, element_shape=b.shape) if record_vectors else ()
    if record_vectors:
        iterates = iterates.write(0, x)
    code = tf.where(tf.math.is_finite(rs), next_code(0, tf.sqrt(rs)), _BREAKDOWN)

    def body(k, x, r, rs, code, alphas, curvatures, norms, iterates):
        Ar = damped_matvec(r)
        rAr = dot(r, Ar)
        alpha = rs / rAr
        x_new = x + alpha * r
        r_new = r - alpha * Ar
        rs_new = dot(r_new, r_new)
        negative_curvature = rAr <= 0  # False for NaN
        finite = tf.math.is_finite(rAr) & tf.math.is_finite(rs_new)
        accepted = finite & ~negative_curvature
        k_new = tf.where(accepted, k + 1, k)
        code = tf.where(
            negative_curvature,
            _NEGATIVE_CURVATURE,
            tf.where(finite, next_code(k_new, tf.sqrt(rs_new)), _BREAKDOWN),
        )
        alphas = alphas.write(k, alpha)
        curvatures = curvatures.write(k, rAr)
        x, r, rs = (
            tf.where(accepted, new, old) for new, old in ((x_new, x), (r_new, r), (rs_new, rs))
        )
        norms = norms.write(k + 1, tf.sqrt(rs))
        if record_vectors:
            iterates = iterates.write(k + 1, x)
        return k_new, x, r, rs, code, alphas, curvatures, norms, iterates

    k, x, _, _, code, alphas, curvatures, norms, iterates = tf.while_loop(
        lambda k, x, r, rs, code, *_: tf.equal(code, _RUNNING),
        body,
        (tf.constant(0), x, r, rs, code, alphas, curvatures, norms, iterates),
    )
    out = {
        "x": x,
        "iterations": k,
        "stop_code": code,
        "residual_norms": norms.stack(),
        "alphas": alphas.stack(),
        "curvatures": curvatures.stack(),
    }
    if true_residual:
        out["true_residual_norm"] = tf.norm(b - damped_matvec(x))
    if record_vectors:
        out["iterates"] = iterates.stack()
    return out


@dataclass
class SDResult:
    """The solution and trace of one steepest-descent solve (numpy arrays, k = iterations).

    Attributes
    ----------
    x : final iterate x_k.
    iterations : k, accepted steps (one matvec each).
    stop_reason : ``"converged"`` (‖r_k‖ ≤ max(rtol‖b‖, atol)), ``"max_iter"``,
        ``"negative_curvature"`` (r_kᵀ(A+λI)r_k ≤ 0; that step is not taken) or
        ``"breakdown"`` (NaN/Inf).
    residual_norms : ‖r_0‖ … ‖r_k‖ (recursively updated).
    alphas : step lengths α_k = r_kᵀr_k / r_kᵀ(A+λI)r_k of the accepted steps.
    curvatures : r_kᵀ(A+λI)r_k for every product taken.
    iterates : x_0 … x_k as a [k+1, n] array (None when not recorded).
    hvps : products with A (iterations, +1 for a rejected step, +1 for x0 ≠ 0).
    true_residual_norm : ‖b − (A+λI)x‖ from the returned x, or None.
    """

    x: np.ndarray
    iterations: int
    stop_reason: str
    residual_norms: np.ndarray
    alphas: np.ndarray
    curvatures: np.ndarray
    iterates: np.ndarray | None
    hvps: int
    true_residual_norm: float | None = None

    @classmethod
    def from_tensors(cls, out: dict[str, tf.Tensor], used_x0: bool) -> SDResult:
        k = int(out["iterations"])
        stop_reason = STOP_REASONS[int(out["stop_code"])]
        taken = k + (1 if stop_reason in ("negative_curvature", "breakdown") else 0)
        return cls(
            x=out["x"].numpy(),
            iterations=k,
            stop_reason=stop_reason,
            residual_norms=out["residual_norms"].numpy()[: k + 1],
            alphas=out["alphas"].numpy()[:k],
            curvatures=out["curvatures"].numpy()[:taken],
            iterates=out["iterates"].numpy()[: k + 1] if "iterates" in out else None,
            hvps=taken + int(used_x0),
            true_residual_norm=(
                float(out["true_residual_norm"]) if "true_residual_norm" in out else None
            ),
        )

    def to_dict(self) -> dict:
        """JSON-ready dict (lists instead of arrays; NaN/Inf become None)."""
        return to_jsonable(asdict(self))


class SteepestDescent:
    """Compiled steepest descent over a fixed ``matvec`` (build once per operator)."""

    def __init__(self, matvec: Matvec, record_vectors: bool = True):
        self.matvec = matvec
        self.record_vectors = record_vectors
        self._solve = tf.function(self._graph, reduce_retracing=True, autograph=False)

    def _graph(self, b, x0, damping, max_iter, rtol, atol, use_x0):
        def solve(start):
            return steepest_descent_loop(
                self.matvec, b, start, damping, max_iter, rtol, atol, self.record_vectors
            )

        return tf.cond(use_x0, lambda: solve(x0), lambda: solve(None))

    def solve(
        self,
        b,
        x0=None,
        damping: float = 0.0,
        max_iter: int | None = None,
        rtol: float = 1e-10,
        atol: float = 0.0,
        callback: Callable[[np.ndarray], None] | None = None,
        dtype: tf.DType | None = None,
    ) -> SDResult:
        """Solve (A + λI) x = b by steepest descent with exact line search.

        Parameters
        ----------
        b : right-hand side, 1-D of length n.
        x0 : starting point (default zeros, which saves one matvec).
        damping : λ added to the diagonal of A.
        max_iter : most steps (default n, though steepest descent rarely converges in n).
        rtol, atol : stop when ‖r_k‖ ≤ max(rtol·‖b‖, atol).
        callback : ``callback(x_k)`` for k = 1 … iterations, after the compiled solve.
        dtype : computation dtype (default: b's, float64 for Python lists).

        The iteration, with r_0 = b − (A+λI)x_0:
            α_k = r_kᵀr_k / r_kᵀ(A+λI)r_k,  x_{k+1} = x_k + α_k r_k,
            r_{k+1} = r_k − α_k (A+λI)r_k.
        It stops before a step with r_kᵀ(A+λI)r_k ≤ 0 (``negative_curvature``: the
        quadratic is unbounded below along r_k) and on non-finite values (``breakdown``).

        Returns
        -------
        :class:`SDResult` with the solution and its trace.
        """
        b = rhs_tensor(b, dtype)
        x0, use_x0 = start_tensor(x0, b)
        max_iter = iteration_limit(max_iter, int(b.shape[0]))
        out = self._solve(
            b,
            x0,
            tf.constant(damping, b.dtype),
            tf.constant(max_iter, tf.int32),
            tf.constant(rtol, b.dtype),
            tf.constant(atol, b.dtype),
            tf.constant(use_x0),
        )
        result = SDResult.from_tensors(out, use_x0)
        replay(callback, result.iterates)
        return result
