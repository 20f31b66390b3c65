"""Preconditioned conjugate gradient for (A + λI) x = b with a diagonal (Jacobi) preconditioner.

A separate algorithm from :mod:`trpo_viz.cg`: every step applies M⁻¹ to the new
residual, and α, β are ratios of r_kᵀM⁻¹r_k instead of r_kᵀr_k. It is CG on the
symmetrically preconditioned system (M^{-1/2}(A+λI)M^{-1/2}) y = M^{-1/2}b, x = M^{-1/2}y,
written so that only M⁻¹ is ever applied. With M = I every quantity equals plain CG's:
z_k = r_k, so r_kᵀz_k = r_kᵀr_k and the α_k, β_k, x_k, r_k, p_k recurrences are those of
:func:`trpo_viz.cg.cg_loop` term for term (tests check this).

:func:`pcg_loop` is traceable graph code; :class:`PreconditionedCG` compiles it once
per operator, with M⁻¹ = diag(1/m) passed as a tensor (a new preconditioner, b, x0, λ
or tolerance does not retrace). The Jacobi diagonal comes from :mod:`trpo_viz.jacobi`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import tensorflow as tf

from trpo_viz.cg import STOP_REASONS, Matvec, dot
from trpo_viz.jacobi import JacobiPreconditioner
from trpo_viz.serialize import to_jsonable
from trpo_viz.solver_inputs import iteration_limit, replay, rhs_tensor, start_tensor

_RUNNING, _CONVERGED, _MAX_ITER, _NEGATIVE_CURVATURE, _BREAKDOWN = (
    STOP_REASONS.index(name)
    for name in ("running", "converged", "max_iter", "negative_curvature", "breakdown")
)

Precondition = Callable[[tf.Tensor], tf.Tensor]


def pcg_loop(
    matvec: Matvec,
    b: tf.Tensor,
    precondition: Precondition,
    x0: tf.Tensor | None = None,
    damping: float | tf.Tensor = 0.0,
    max_iter: int | tf.Tensor = 10,
    rtol: float | tf.Tensor = 1e-10,
    atol: float | tf.Tensor = 0.0,
    record_vectors: bool = True,
    true_residual: bool = True,
) -> dict[str, tf.Tensor]:
    """Traceable preconditioned CG; see :meth:`PreconditionedCG.solve` for the maths.

    ``precondition(r)`` applies M⁻¹ (symmetric positive definite). Returns a dict of
    tensors padded to ``max_iter + 1``: ``x``, ``iterations``, ``stop_code`` (index into
    :data:`trpo_viz.cg.STOP_REASONS`), ``residual_norms`` (‖r_k‖), ``preconditioned_norms``
    (√(r_kᵀM⁻¹r_k)), ``alphas``, ``betas``, ``curvatures``; with ``record_vectors`` also
    ``iterates``, ``residuals``, ``directions``; with ``true_residual`` also
    ``true_residual_norm`` = ‖b − (A+λI)x‖ (one extra matvec).
    """
    dtype = b.dtype
    damping = tf.cast(damping, dtype)
    max_iter = tf.cast(max_iter, tf.int32)
    threshold = tf.maximum(tf.cast(rtol, dtype) * tf.norm(b), tf.cast(atol, dtype))

    def damped_matvec(v):
        return matvec(v) + damping * v

    if x0 is None:
        x = tf.zeros_like(b)
        r = b
    else:
        x = tf.cast(x0, dtype)
        r = b - damped_matvec(x)
    z = precondition(r)
    rz = dot(r, z)  # r_kᵀM⁻¹r_k > 0 for an SPD preconditioner and r_k ≠ 0
    r_norm = tf.norm(r)

    def next_code(k, residual_norm):
        return tf.where(
            residual_norm <= threshold,
            _CONVERGED,
            tf.where(k >= max_iter, _MAX_ITER, _RUNNING),
        )

    size = max_iter + 1
    scalars = {name: tf.TensorArray(dtype, size=size) for name in ("alpha", "beta", "pAp")}
    norms = {
        "r": tf.TensorArray(dtype, size=size).write(0, r_norm),
        "z": tf.TensorArray(dtype, size=size).write(0, tf.sqrt(tf.maximum(rz, 0))),
    }
    vectors = {}
    if record_vectors:
        vectors = {
            name: tf.TensorArray(dtype, size=size, element_shape=b.shape).write(0, value)
            for name, value in (("x", x), ("r", r), ("p", z))
        }
    start_ok = tf.math.is_finite(rz) & tf.math.is_finite(r_norm) & (rz >= 0)
    code = tf.where(start_ok, next_code(0, r_norm), _BREAKDOWN)

    def body(k, x, r, p, rz, code, scalars, norms, vectors):
        Ap = damped_matvec(p)
        pAp = dot(p, Ap)
        alpha = rz / pAp
        x_new = x + alpha * p
        r_new = r - alpha * Ap
        z_new = precondition(r_new)
        rz_new = dot(r_new, z_new)
        beta = rz_new / rz
        p_new = z_new + beta * p
        r_norm_new = tf.norm(r_new)

        negative_curvature = pAp <= 0  # False for NaN
        finite = (
            tf.math.is_finite(pAp) & tf.math.is_finite(rz_new) & tf.math.is_finite(r_norm_new)
        )
        accepted = finite & ~negative_curvature
        k_new = tf.where(accepted, k + 1, k)
        code = tf.where(
            negative_curvature,
            _NEGATIVE_CURVATURE,
            tf.where(finite & (rz_new >= 0), next_code(k_new, r_norm_new), _BREAKDOWN),
        )
        scalars = {
            "alpha": scalars["alpha"].write(k, alpha),
            "beta": scalars["beta"].write(k, beta),
            "pAp": scalars["pAp"].write(k, pAp),
        }
        # A rejected step leaves the state as it was; the trace keeps p_kᵀAp_k to show why.
        x, r, p, rz = (
            tf.where(accepted, new, old)
            for new, old in ((x_new, x), (r_new, r), (p_new, p), (rz_new, rz))
        )
        norms = {
            "r": norms["r"].write(k + 1, tf.norm(r)),
            "z": norms["z"].write(k + 1, tf.sqrt(tf.maximum(rz, 0))),
        }
        if record_vectors:
            vectors = {
                "x": vectors["x"].write(k + 1, x),
                "r": vectors["r"].write(k + 1, r),
                "p": vectors["p"].write(k + 1, p),
            }
        return k_new, x, r, p, rz, code, scalars, norms, vectors

    k, x, _, _, _, code, scalars, norms, vectors = tf.while_loop(
        lambda k, x, r, p, rz, code, *_: tf.equal(code, _RUNNING),
        body,
        (tf.constant(0), x, r, z, rz, code, scalars, norms, vectors),
    )
    out = {
        "x": x,
        "iterations": k,
        "stop_code": code,
        "residual_norms": norms["r"].stack(),
        "preconditioned_norms": norms["z"].stack(),
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
class PCGResult:
    """The solution and trace of one preconditioned CG solve (numpy arrays, k = iterations).

    Attributes
    ----------
    x : final iterate x_k.
    iterations : k, accepted steps (one matvec each).
    stop_reason : as :class:`trpo_viz.cg.CGResult` (``"converged"`` when
        ‖r_k‖ ≤ max(rtol‖b‖, atol), ``"max_iter"``, ``"negative_curvature"``, ``"breakdown"``).
    residual_norms : ‖r_0‖ … ‖r_k‖, r_k = b − (A+λI)x_k (recursively updated).
    preconditioned_norms : √(r_kᵀM⁻¹r_k), the norm PCG's α, β are built from.
    alphas, betas, curvatures : as in CG (α_k = r_kᵀz_k / p_kᵀ(A+λI)p_k,
        β_k = r_{k+1}ᵀz_{k+1} / r_kᵀz_k). Their Lanczos matrix
        (:func:`trpo_viz.krylov.lanczos_tridiagonal`) is that of M^{-1/2}(A+λI)M^{-1/2}.
    iterates, residuals, directions : x_k, r_k, p_k as [k+1, n] arrays (None when not
        recorded).
    matvecs : products with A in the solve (iterations, +1 for a rejected step, +1 for x0).
    setup_hvps : products spent building the preconditioner.
    hvps : matvecs + setup_hvps, the total the solve cost.
    preconditioner : a one-line description (method, products, modified entries).
    true_residual_norm : ‖b − (A+λI)x‖ from the returned x, or None.
    """

    x: np.ndarray
    iterations: int
    stop_reason: str
    residual_norms: np.ndarray
    preconditioned_norms: np.ndarray
    alphas: np.ndarray
    betas: np.ndarray
    curvatures: np.ndarray
    iterates: np.ndarray | None
    residuals: np.ndarray | None
    directions: np.ndarray | None
    matvecs: int
    setup_hvps: int
    hvps: int
    preconditioner: str
    true_residual_norm: float | None = None

    @classmethod
    def from_tensors(
        cls, out: dict[str, tf.Tensor], used_x0: bool, setup_hvps: int, preconditioner: str
    ) -> PCGResult:
        k = int(out["iterations"])
        stop_reason = STOP_REASONS[int(out["stop_code"])]
        taken = k + (1 if stop_reason in ("negative_curvature", "breakdown") else 0)
        vectors = {
            name: (out[name].numpy()[: k + 1] if name in out else None)
            for name in ("iterates", "residuals", "directions")
        }
        matvecs = taken + int(used_x0)
        return cls(
            x=out["x"].numpy(),
            iterations=k,
            stop_reason=stop_reason,
            residual_norms=out["residual_norms"].numpy()[: k + 1],
            preconditioned_norms=out["preconditioned_norms"].numpy()[: k + 1],
            alphas=out["alphas"].numpy()[:k],
            betas=out["betas"].numpy()[:k],
            curvatures=out["curvatures"].numpy()[:taken],
            matvecs=matvecs,
            setup_hvps=setup_hvps,
            hvps=matvecs + setup_hvps,
            preconditioner=preconditioner,
            true_residual_norm=(
                float(out["true_residual_norm"]) if "true_residual_norm" in out else None
            ),
            **vectors,
        )

    def to_dict(self) -> dict:
        """JSON-ready dict (lists instead of arrays; NaN/Inf become None)."""
        return to_jsonable(asdict(self))


class PreconditionedCG:
    """Compiled Jacobi-preconditioned CG over a fixed ``matvec``.

    Build once per operator; :meth:`solve` takes the preconditioner as data, so new
    diagonals, right-hand sides, starts, λ and tolerances reuse one traced graph.
    """

    def __init__(self, matvec: Matvec, record_vectors: bool = True):
        self.matvec = matvec
        self.record_vectors = record_vectors
        self._solve = tf.function(self._graph, reduce_retracing=True, autograph=False)

    def _graph(self, b, inverse_diagonal, x0, damping, max_iter, rtol, atol, use_x0):
        def solve(start):
            return pcg_loop(
                self.matvec,
                b,
                lambda r: inverse_diagonal * r,
                start,
                damping,
                max_iter,
                rtol,
                atol,
                self.record_vectors,
            )

        return tf.cond(use_x0, lambda: solve(x0), lambda: solve(None))

    def solve(
        self,
        b,
        preconditioner: JacobiPreconditioner | None = None,
        x0=None,
        damping: float = 0.0,
        max_iter: int | None = None,
        rtol: float = 1e-10,
        atol: float = 0.0,
        callback: Callable[[np.ndarray], None] | None = None,
        dtype: tf.DType | None = None,
    ) -> PCGResult:
        """Solve (A + λI) x = b by conjugate gradient preconditioned with M = diag(m).

        Parameters
        ----------
        b : right-hand side, 1-D of length n.
        preconditioner : a :class:`~trpo_viz.jacobi.JacobiPreconditioner` holding an
            exact or estimated diag(A); M = diag(|diag(A) + λ|) with tiny entries raised
            to a floor (see :meth:`~trpo_viz.jacobi.JacobiPreconditioner.inverse_diagonal`).
            None: M = I, which is plain CG with no set-up cost.
        x0 : starting point (default zeros, which saves one matvec).
        damping : λ added to the diagonal of A.
        max_iter : most steps (default n).
        rtol, atol : stop when ‖r_k‖ ≤ max(rtol·‖b‖, atol) (the unpreconditioned residual,
            the same rule as CG and as ``scipy.sparse.linalg.cg`` with ``M=``).
        callback : ``callback(x_k)`` for k = 1 … iterations, after the compiled solve.
        dtype : computation dtype (default: b's, float64 for Python lists).

        The iteration, with r_0 = b − (A+λI)x_0, z_0 = M⁻¹r_0, p_0 = z_0:
            α_k = r_kᵀz_k / p_kᵀ(A+λI)p_k,   x_{k+1} = x_k + α_k p_k,
            r_{k+1} = r_k − α_k (A+λI)p_k,   z_{k+1} = M⁻¹r_{k+1},
            β_k = r_{k+1}ᵀz_{k+1} / r_kᵀz_k,  p_{k+1} = z_{k+1} + β_k p_k.
        x_k minimises the (A+λI)-norm error over x_0 + span{z_0, (M⁻¹A)z_0, …}; the
        convergence rate depends on the spectrum of M⁻¹(A+λI) instead of A+λI. It stops
        before a step with p_kᵀ(A+λI)p_k ≤ 0 (``negative_curvature``) and on non-finite
        values (``breakdown``).

        Returns
        -------
        :class:`PCGResult`; ``hvps`` counts the preconditioner's set-up products too.
        """
        b = rhs_tensor(b, dtype)
        n = int(b.shape[0])
        x0, use_x0 = start_tensor(x0, b)
        max_iter = iteration_limit(max_iter, n)
        if preconditioner is None:
            inverse, modified, setup, description = np.ones(n), 0, 0, "none (M = I)"
        else:
            if preconditioner.diagonal.shape != (n,):
                raise ValueError(
                    f"preconditioner has {preconditioner.diagonal.size} entries, b has {n}"
                )
            inverse, modified = preconditioner.inverse_diagonal(damping)
            setup = preconditioner.hvps
            description = preconditioner.describe(modified)
        out = self._solve(
            b,
            tf.constant(inverse, b.dtype),
            x0,
            tf.constant(damping, b.dtype),
            tf.constant(max_iter, tf.int32),
            tf.constant(rtol, b.dtype),
            tf.constant(atol, b.dtype),
            tf.constant(use_x0),
        )
        result = PCGResult.from_tensors(out, use_x0, setup, description)
        replay(callback, result.iterates)
        return result
