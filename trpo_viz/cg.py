"""Conjugate gradient for (A + λI) x = b, touching A only through ``matvec``, with a full trace.

The loop is TensorFlow graph code (``tf.while_loop``): :func:`cg_loop` can be
traced inside any ``tf.function`` (TRPO compiles it together with its
Fisher-vector product), and :class:`ConjugateGradient` wraps it in a compiled
function for the explorer and the command line.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import tensorflow as tf

from trpo_viz.serialize import to_jsonable

STOP_REASONS = ("running", "converged", "max_iter", "negative_curvature", "breakdown")
_RUNNING, _CONVERGED, _MAX_ITER, _NEGATIVE_CURVATURE, _BREAKDOWN = range(5)

Matvec = Callable[[tf.Tensor], tf.Tensor]


def dot(a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
    """aᵀb as ``reduce_sum(a * b)``: a tree reduction, accurate in float32.

    ``tf.tensordot`` sums sequentially on CPU: at n = 10⁵ in float32 its relative
    error is about 1.6e-5, against 4e-8 for this pairwise sum; CG's α and β are
    ratios of such inner products.
    """
    return tf.reduce_sum(a * b)


def cg_loop(
    matvec: Matvec,
    b: tf.Tensor,
    x0: tf.Tensor | None = None,
    damping: float | tf.Tensor = 0.0,
    max_iter: int | tf.Tensor = 10,
    rtol: float | tf.Tensor = 1e-10,
    atol: float | tf.Tensor = 0.0,
    record_vectors: bool = True,
    true_residual: bool = True,
    r0: tf.Tensor | None = None,
) -> dict[str, tf.Tensor]:
    """Traceable conjugate gradient; see :meth:`ConjugateGradient.solve` for the maths.

    Returns a dict of tensors: ``x`` (final iterate), ``iterations`` (k),
    ``stop_code`` (index into :data:`STOP_REASONS`), ``residual_norms`` [k+1],
    ``alphas`` [k], ``betas`` [k], ``curvatures`` [k, or k+1 when the stop was
    negative curvature], and when ``record_vectors`` (a trace-time Python bool)
    ``iterates``, ``residuals``, ``directions``, each [k+1, n]. With
    ``true_residual`` (a trace-time bool) also ``true_residual_norm``: ‖b − (A+λI)x_k‖
    recomputed from x_k with one extra matvec. The recursive ‖r_k‖ drifts from it once
    it nears the dtype's rounding floor (about 1e-7·‖b‖·κ in float32), so a "converged"
    below that floor is a statement about the recursion, not about x_k.
    Arrays are padded to ``max_iter + 1``; :meth:`CGResult.from_tensors` trims them.
    """
    dtype = b.dtype

    def as_dtype(value):  # a Python float goes straight to dtype, never through float32
        return tf.cast(value, dtype) if tf.is_tensor(value) else tf.constant(value, dtype)

    damping = as_dtype(damping)
    max_iter = tf.cast(max_iter, tf.int32)
    threshold = tf.maximum(as_dtype(rtol) * tf.norm(b), as_dtype(atol))

    def damped_matvec(v):
        return matvec(v) + damping * v

    if x0 is None:
        x = tf.zeros_like(b)
        r = b  # r0 = b - A·0, no product needed
    else:
        x = tf.cast(x0, dtype)
        r = b - damped_matvec(x) if r0 is None else r0
    rs = dot(r, r)

    def next_code(k, residual_norm):
        return tf.where(
            residual_norm <= threshold,
            _CONVERGED,
            tf.where(k >= max_iter, _MAX_ITER, _RUNNING),
        )

    size = max_iter + 1
    scalars = {name: tf.TensorArray(dtype, size=size) for name in ("alpha", "beta", "pAp")}
    norms = tf.TensorArray(dtype, size=size).write(0, tf.sqrt(rs))
    vectors = {}
    if record_vectors:
        vectors = {
            name: tf.TensorArray(dtype, size=size, element_shape=b.shape).write(0, value)
            for name, value in (("x", x), ("r", r), ("p", r))
        }
    code = tf.where(tf.math.is_finite(rs), next_code(0, tf.sqrt(rs)), _BREAKDOWN)

    def body(k, x, r, p, rs, code, scalars, norms, vectors):
        Ap = damped_matvec(p)
        pAp = dot(p, Ap)
        alpha = rs / pAp
        x_new = x + alpha * p
        r_new = r - alpha * Ap
        rs_new = dot(r_new, r_new)
        beta = rs_new / rs
        p_new = r_new + beta * p

        negative_curvature = pAp <= 0  # False for NaN
        finite = tf.math.is_finite(pAp) & tf.math.is_finite(rs_new)
        accepted = finite & ~negative_curvature
        k_new = tf.where(accepted, k + 1, k)
        code = tf.where(
            negative_curvature,
            _NEGATIVE_CURVATURE,
            tf.where(finite, next_code(k_new, tf.sqrt(rs_new)), _BREAKDOWN),
        )
        # A rejected step leaves the state as it was; the trace keeps p_kᵀAp_k to show why.
        scalars = {
            "alpha": scalars["alpha"].write(k, alpha),
            "beta": scalars["beta"].write(k, beta),
            "pAp": scalars["pAp"].write(k, pAp),
        }
        x, r, p, rs = (
            tf.where(accepted, new, old)
            for new, old in ((x_new, x), (r_new, r), (p_new, p), (rs_new, rs))
        )
        norms = norms.write(k + 1, tf.sqrt(rs))
        if record_vectors:
            vectors = {
                "x": vectors["x"].write(k + 1, x),
                "r": vectors["r"].write(k + 1, r),
                "p": vectors["p"].write(k + 1, p),
            }
        return k_new, x, r, p, rs, code, scalars, norms, vectors

    k, x, _, _, _, code, scalars, norms, vectors = tf.while_loop(
        lambda k, x, r, p, rs, code, *_: tf.equal(code, _RUNNING),
        body,
        (tf.constant(0), x, r, r, rs, code, scalars, norms, vectors),
    )
    out = {
        "x": x,
        "iterations": k,
        "stop_code": code,
        "residual_norms": norms.stack(),
        "alphas": scalars["alpha"].stack(),
        "betas": scalars["beta"].stack(),
        "curvatures": scalars["pAp"].stack(),
    }
    if true_residual:
        out["true_residual_norm"] = tf.norm(b - damped_matvec(x))
    if record_vectors:
        out |= {
            "iterates": vectors["x"].stack(),
            "residuals": vectors["r"].stack(),
            "directions": vectors["p"].stack(),
        }
    return out


@dataclass
class CGResult:
    """The solution and the trace of one CG solve (numpy arrays, k = iterations).

    Attributes
    ----------
    x : final iterate x_k.
    iterations : k, the number of accepted CG steps (each costs one matvec).
    stop_reason : ``"converged"`` (‖r_k‖ ≤ max(rtol‖b‖, atol)), ``"max_iter"``,
        ``"negative_curvature"`` (p_kᵀ(A+λI)p_k ≤ 0: A is not positive definite
        along p_k; x_k is the last iterate before it), or ``"breakdown"`` (NaN/Inf).
    residual_norms : ‖r_0‖ … ‖r_k‖.
    alphas, betas : α_0 … α_{k-1} and β_0 … β_{k-1} of the accepted steps.
    curvatures : p_iᵀ(A+λI)p_i for every product taken: k entries, or k+1 when the
        last one was non-positive (it is the reason for the stop).
    iterates, residuals, directions : x_0 … x_k, r_0 … r_k, p_0 … p_k as [k+1, n]
        arrays (None when not recorded). p_k is the direction the next step would take.
    matvecs : products with A used (iterations, +1 for a rejected step, +1 for x0 ≠ 0),
        not counting the one that checks the true residual.
    true_residual_norm : ‖b − (A+λI)x‖ recomputed from the returned x (None when not
        computed). Compare with ``residual_norms[-1]``, the recursively updated one.
    """

    x: np.ndarray
    iterations: int
    stop_reason: str
    residual_norms: np.ndarray
    alphas: np.ndarray
    betas: np.ndarray
    curvatures: np.ndarray
    iterates: np.ndarray | None
    residuals: np.ndarray | None
    directions: np.ndarray | None
    matvecs: int
    true_residual_norm: float | None = None

    @classmethod
    def from_tensors(cls, out: dict[str, tf.Tensor], used_x0: bool = False) -> CGResult:
        k = int(out["iterations"])
        stop_reason = STOP_REASONS[int(out["stop_code"])]
        taken = k + (1 if stop_reason in ("negative_curvature", "breakdown") else 0)
        vectors = {
            name: (out[name].numpy()[: k + 1] if name in out else None)
            for name in ("iterates", "residuals", "directions")
        }
        return cls(
            x=out["x"].numpy(),
            iterations=k,
            stop_reason=stop_reason,
            residual_norms=out["residual_norms"].numpy()[: k + 1],
            alphas=out["alphas"].numpy()[:k],
            betas=out["betas"].numpy()[:k],
            curvatures=out["curvatures"].numpy()[:taken],
            matvecs=taken + int(used_x0),
            true_residual_norm=(
                float(out["true_residual_norm"]) if "true_residual_norm" in out else None
            ),
            **vectors,
        )

    def to_dict(self) -> dict:
        """JSON-ready dict (lists instead of arrays; NaN/Inf become None)."""
        return to_jsonable(asdict(self))


class ConjugateGradient:
    """Compiled conjugate gradient over a fixed ``matvec``.

    Build once per operator (the compiled graph is reused across calls with new
    b, x0, λ, tolerances and iteration limits, none of which retrace), then call
    :meth:`solve`.
    """

    def __init__(self, matvec: Matvec, record_vectors: bool = True):
        self.matvec = matvec
        self.record_vectors = record_vectors
        # autograph=False: the loop is an explicit tf.while_loop; nothing needs converting.
        self._solve = tf.function(self._graph, reduce_retracing=True, autograph=False)

    def _graph(self, b, x0, damping, max_iter, rtol, atol, use_x0):
        # x0 is zeros when unused, so r0 = b needs no product. One loop is traced, not one
        # per branch of a tf.cond: each traced product compiles a copy of the HVP graph.
        r0 = tf.cond(use_x0, lambda: b - (self.matvec(x0) + tf.cast(damping, b.dtype) * x0),
                     lambda: b)
        return cg_loop(self.matvec, b, x0, damping, max_iter, rtol, atol, self.record_vectors,
                       r0=r0)

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
    ) -> CGResult:
        """Solve (A + λI) x = b by conjugate gradient.

        Parameters
        ----------
        b : right-hand side, 1-D of length n.
        x0 : starting point (default zeros; a zero start saves one matvec).
        damping : λ ≥ 0 added to the diagonal (Tikhonov damping, as TRPO uses).
        max_iter : most CG steps (default n; exact arithmetic converges in ≤ n).
        rtol, atol : stop when ‖r_k‖ ≤ max(rtol·‖b‖, atol), r_k = b − (A+λI)x_k
            (the same rule as ``scipy.sparse.linalg.cg``).
        callback : called as ``callback(x_k)`` for k = 1 … iterations after the
            compiled solve, like SciPy's per-iterate callback (needs recorded vectors).
        dtype : computation dtype (default: b's, float64 for Python lists).

        The iteration, with r_0 = p_0 = b − (A+λI)x_0:
            α_k = r_kᵀr_k / p_kᵀ(A+λI)p_k,  x_{k+1} = x_k + α_k p_k,
            r_{k+1} = r_k − α_k (A+λI)p_k,  β_k = r_{k+1}ᵀr_{k+1} / r_kᵀr_k,
            p_{k+1} = r_{k+1} + β_k p_k.
        It stops before a step whose curvature p_kᵀ(A+λI)p_k ≤ 0
        (``negative_curvature``) or is not finite (``breakdown``).

        Returns
        -------
        :class:`CGResult` with the solution and the full trace.
        """
        if not isinstance(b, tf.Tensor):
            b = np.asarray(b, dtype=np.float64 if dtype is None else dtype.as_numpy_dtype)
        b = tf.convert_to_tensor(b, dtype=dtype)
        if b.dtype not in (tf.float32, tf.float64):
            raise ValueError(f"b must be float32 or float64, not {b.dtype.name}")
        n = int(b.shape[0])
        use_x0 = x0 is not None
        x0 = tf.zeros_like(b) if x0 is None else tf.constant(np.asarray(x0), b.dtype)
        max_iter = n if max_iter is None else int(max_iter)
        if max_iter < 0:
            raise ValueError("max_iter must be non-negative")
        out = self._solve(
            b,
            x0,
            tf.constant(damping, b.dtype),
            tf.constant(max_iter, tf.int32),
            tf.constant(rtol, b.dtype),
            tf.constant(atol, b.dtype),
            tf.constant(use_x0),
        )
        result = CGResult.from_tensors(out, used_x0=use_x0)
        if callback is not None:
            if result.iterates is None:
                raise ValueError("callback needs record_vectors=True")
            for xk in result.iterates[1:]:
                callback(xk)
        return result
