"""MINRES for (A + λI) x = b with A symmetric (indefinite or singular allowed), on ``matvec``.

Paige & Saunders (1975): Lanczos builds an orthonormal basis V_k of the Krylov space
K_k(A+λI, r_0) with (A+λI)V_k = V_{k+1}T̄_k (T̄_k tridiagonal, (k+1)×k); x_k = x_0 + V_k y_k
with y_k minimising ‖β_1e_1 − T̄_k y‖, which makes ‖b − (A+λI)x_k‖ the least over
x_0 + K_k. T̄_k is QR-factorised by one Givens rotation per step, so x_k, ‖r_k‖ and
‖(A+λI)r_{k−1}‖ follow from short recurrences. Unlike CG nothing needs positive
curvature: MINRES is the method to offer when CG stops on negative curvature.

The recurrences are those of ``scipy.sparse.linalg.minres`` (a translation of the
authors' MATLAB code) without a preconditioner, so the iterates agree with its
callback's; the stopping rule is this project's (‖r_k‖ against rtol‖b‖, as in CG).
:func:`minres_loop` is traceable graph code; :class:`Minres` compiles it once per operator.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import tensorflow as tf

from trpo_viz.cg import Matvec, dot
from trpo_viz.serialize import to_jsonable
from trpo_viz.solver_inputs import iteration_limit, replay, rhs_tensor, start_tensor

MINRES_STOP_REASONS = (
    "running", "converged", "max_iter", "least_squares", "ill_conditioned", "breakdown"
)
_RUNNING, _CONVERGED, _MAX_ITER, _LEAST_SQUARES, _ILL_CONDITIONED, _BREAKDOWN = range(6)


def minres_loop(
    matvec: Matvec,
    b: tf.Tensor,
    x0: tf.Tensor | None = None,
    damping: float | tf.Tensor = 0.0,
    max_iter: int | tf.Tensor = 10,
    rtol: float | tf.Tensor = 1e-10,
    atol: float | tf.Tensor = 0.0,
    record_vectors: bool = True,
    true_residual: bool = True,
    ls_rtol: float | tf.Tensor | None = None,
) -> dict[str, tf.Tensor]:
    """Traceable MINRES; see :meth:`Minres.solve` for the maths and the stopping rule.

    Returns a dict of tensors padded to ``max_iter + 1``: ``x``, ``iterations``,
    ``stop_code`` (index into :data:`MINRES_STOP_REASONS`), ``residual_norms`` (the
    recursive ‖r_k‖ = φ̄_k), ``ar_norms`` (‖(A+λI)r_j‖, learnt one step later),
    ``alphas`` (Lanczos diagonal α_k), ``betas`` (Lanczos off-diagonal β_{k+1}),
    ``products`` (matvecs in the loop, a refused last step included), with
    ``record_vectors`` ``iterates`` [k+1, n], with ``true_residual``
    ``true_residual_norm`` = ‖b − (A+λI)x‖.
    """
    dtype = b.dtype
    eps = tf.constant(np.finfo(dtype.as_numpy_dtype).eps, dtype)
    zero = tf.constant(0, dtype)
    damping = tf.cast(damping, dtype)
    max_iter = tf.cast(max_iter, tf.int32)
    threshold = tf.maximum(tf.cast(rtol, dtype) * tf.norm(b), tf.cast(atol, dtype))
    # ls_rtol None or NaN: √eps of the dtype.
    ls_rtol = tf.sqrt(eps) if ls_rtol is None else tf.cast(ls_rtol, dtype)
    ls_rtol = tf.where(tf.math.is_nan(ls_rtol), tf.sqrt(eps), ls_rtol)

    def damped_matvec(v):
        return matvec(v) + damping * v

    if x0 is None:
        x, r0 = tf.zeros_like(b), b
    else:
        x = tf.cast(x0, dtype)
        r0 = b - damped_matvec(x)
    beta1 = tf.norm(r0)

    size = max_iter + 1
    scalars = {name: tf.TensorArray(dtype, size=size) for name in ("alpha", "beta", "ar")}
    norms = tf.TensorArray(dtype, size=size).write(0, beta1)
    iterates = tf.TensorArray(dtype, size=size, element_shape=b.shape) if record_vectors else ()
    if record_vectors:
        iterates = iterates.write(0, x)
    code = tf.where(
        tf.math.is_finite(beta1),
        tf.where(beta1 <= threshold, _CONVERGED, tf.where(max_iter <= 0, _MAX_ITER, _RUNNING)),
        _BREAKDOWN,
    )
    # Lanczos state: r1 = β_{k−1}v_{k−1}, r2 = β_k v_k (unnormalised), beta = β_k, oldb = β_{k−1}.
    # QR state: the previous rotation (cs, sn), dbar, epsln; phibar = ‖r_k‖.
    state = {
        "x": x,
        "r1": r0,
        "r2": r0,
        "beta": beta1,
        "oldb": zero,
        "dbar": zero,
        "epsln": zero,
        "phibar": beta1,
        "cs": tf.constant(-1, dtype),
        "sn": zero,
        "w": tf.zeros_like(b),
        "w2": tf.zeros_like(b),
        "tnorm2": zero,
        "gmax": zero,
        "gmin": tf.constant(np.finfo(dtype.as_numpy_dtype).max, dtype),
        "taken": tf.constant(0),  # products taken in the loop (a refused step included)
    }

    def body(k, code, s, scalars, norms, iterates):
        # Lanczos step: α_k = v_kᵀ(A+λI)v_k, β_{k+1}v_{k+1} = (A+λI)v_k − α_k v_k − β_k v_{k−1}.
        beta = s["beta"]
        v = s["r2"] / beta
        y = damped_matvec(v)
        previous = tf.where(k > 0, beta / tf.where(k > 0, s["oldb"], 1), zero)
        y = y - previous * s["r1"]
        alpha = dot(v, y)
        y = y - (alpha / beta) * s["r2"]
        new_beta = tf.norm(y)
        tnorm2 = s["tnorm2"] + alpha**2 + tf.where(k > 0, beta**2, zero) + new_beta**2
        # Apply the previous rotation to the new column of T̄_k, then the new rotation.
        cs, sn = s["cs"], s["sn"]
        delta = cs * s["dbar"] + sn * alpha
        gbar = sn * s["dbar"] - cs * alpha
        epsln = sn * new_beta
        dbar = -cs * new_beta
        root = tf.sqrt(gbar**2 + dbar**2)
        ar_norm = s["phibar"] * root  # ‖(A+λI)r_k‖ for the current x_k, known only now
        gamma = tf.maximum(tf.sqrt(gbar**2 + new_beta**2), eps)
        cs_new, sn_new = gbar / gamma, new_beta / gamma
        phi = cs_new * s["phibar"]
        phibar = sn_new * s["phibar"]
        # Search directions w_k = (v_k − ε_k w_{k−2} − δ_k w_{k−1}) / γ_k; x_{k+1} = x_k + φ_k w_k.
        w_new = (v - s["epsln"] * s["w2"] - delta * s["w"]) / gamma
        x_new = s["x"] + phi * w_new

        a_norm = tf.sqrt(tnorm2)  # ‖T̄_k‖_F, a lower estimate of ‖A+λI‖_F
        # γ_max/γ_min over R_k's diagonal: a lower estimate of cond(A+λI) on K_k.
        gmax, gmin = tf.maximum(s["gmax"], gamma), tf.minimum(s["gmin"], gamma)
        finite = tf.math.is_finite(phibar) & tf.math.is_finite(new_beta) & tf.reduce_all(
            tf.math.is_finite(x_new)
        )
        # x_k already minimises ‖r‖ over all x (‖Ar_k‖ ≈ 0 with r_k ≠ 0): the step to x_{k+1}
        # would divide by a γ near 0 and throw x far off, so it is not taken. The same for a
        # step whose γ makes the condition estimate explode, and for non-finite values.
        least_squares = root <= ls_rtol * a_norm
        ill_conditioned = gmax >= 0.1 / eps * gmin
        accepted = finite & ~least_squares & ~ill_conditioned
        k_new = tf.where(accepted, k + 1, k)
        invariant = new_beta <= 10 * eps * a_norm  # K_{k+2} = K_{k+1}: no further direction
        code = tf.where(
            ~finite,
            _BREAKDOWN,
            tf.where(
                least_squares,
                _LEAST_SQUARES,
                tf.where(
                    ill_conditioned,
                    _ILL_CONDITIONED,
                    tf.where(
                        phibar <= threshold,
                        _CONVERGED,
                        tf.where(
                            invariant,
                            _LEAST_SQUARES,
                            tf.where(k_new >= max_iter, _MAX_ITER, _RUNNING),
                        ),
                    ),
                ),
            ),
        )
        scalars = {
            "alpha": scalars["alpha"].write(k, alpha),
            "beta": scalars["beta"].write(k, new_beta),
            "ar": scalars["ar"].write(k, ar_norm),
        }
        norms = norms.write(k + 1, phibar)  # trimmed away when the step is not taken
        if record_vectors:
            iterates = iterates.write(k + 1, x_new)
        s = {
            "x": tf.where(accepted, x_new, s["x"]),
            "r1": s["r2"],
            "r2": y,
            "beta": new_beta,
            "oldb": beta,
            "dbar": dbar,
            "epsln": epsln,
            "phibar": phibar,
            "cs": cs_new,
            "sn": sn_new,
            "w": w_new,
            "w2": s["w"],
            "tnorm2": tnorm2,
            "gmax": gmax,
            "gmin": gmin,
            "taken": s["taken"] + 1,
        }
        return k_new, code, s, scalars, norms, iterates

    k, code, state, scalars, norms, iterates = tf.while_loop(
        lambda k, code, *_: tf.equal(code, _RUNNING),
        body,
        (tf.constant(0), code, state, scalars, norms, iterates),
    )
    x = state["x"]
    out = {
        "x": x,
        "iterations": k,
        "stop_code": code,
        "products": state["taken"],
        "residual_norms": norms.stack(),
        "ar_norms": scalars["ar"].stack(),
        "alphas": scalars["alpha"].stack(),
        "betas": scalars["beta"].stack(),
    }
    if true_residual:
        out["true_residual_norm"] = tf.norm(b - damped_matvec(x))
    if record_vectors:
        out["iterates"] = iterates.stack()
    return out


@dataclass
class MinresResult:
    """The solution and trace of one MINRES solve (numpy arrays, k = iterations).

    Attributes
    ----------
    x : final iterate x_k.
    iterations : k (one matvec each).
    stop_reason : ``"converged"`` (‖r_k‖ ≤ max(rtol‖b‖, atol)), ``"max_iter"``,
        ``"least_squares"`` (‖(A+λI)r‖ ≤ ls_rtol·‖T̄_k‖_F·‖r‖, or the Krylov space
        stopped growing: x_k minimises ‖r‖ over all x, and ‖r_k‖ > 0 says the system is
        singular and inconsistent), ``"ill_conditioned"`` (the condition estimate
        γ_max/γ_min reached 0.1/eps: later iterates would be rounding), or
        ``"breakdown"`` (NaN/Inf).
    residual_norms : ‖r_0‖ … ‖r_k‖ as MINRES updates them (φ̄_k; non-increasing).
    ar_norms : ‖(A+λI)r_j‖ for j = 0 … (products − 1): MINRES learns ‖(A+λI)r_j‖ in the
        step that computes x_{j+1}. After a ``least_squares`` or ``ill_conditioned``
        stop that step was refused, so the last entry belongs to the returned x_k.
    alphas, betas : the Lanczos tridiagonal of A + λI built on the way (one entry per
        product): T has diagonal ``alphas`` and off-diagonal ``betas[:-1]``; its
        eigenvalues are Ritz values of A + λI (negative ones included).
    iterates : x_0 … x_k as a [k+1, n] array (None when not recorded).
    hvps : products with A (iterations, +1 for a refused last step, +1 for x0 ≠ 0).
    true_residual_norm : ‖b − (A+λI)x‖ from the returned x, or None.
    """

    x: np.ndarray
    iterations: int
    stop_reason: str
    residual_norms: np.ndarray
    ar_norms: np.ndarray
    alphas: np.ndarray
    betas: np.ndarray
    iterates: np.ndarray | None
    hvps: int
    true_residual_norm: float | None = None

    @classmethod
    def from_tensors(cls, out: dict[str, tf.Tensor], used_x0: bool) -> MinresResult:
        k = int(out["iterations"])
        taken = int(out["products"])
        return cls(
            x=out["x"].numpy(),
            iterations=k,
            stop_reason=MINRES_STOP_REASONS[int(out["stop_code"])],
            residual_norms=out["residual_norms"].numpy()[: k + 1],
            ar_norms=out["ar_norms"].numpy()[:taken],
            alphas=out["alphas"].numpy()[:taken],
            betas=out["betas"].numpy()[:taken],
            iterates=out["iterates"].numpy()[: k + 1] if "iterates" in out else None,
            hvps=taken + int(used_x0),
            true_residual_norm=(
                float(out["true_residual_norm"]) if "true_residual_norm" in out else None
            ),
        )

    def to_dict(self) -> dict:
        """JSON-ready dict (lists instead of arrays; NaN/Inf become None)."""
        return to_jsonable(asdict(self))


class Minres:
    """Compiled MINRES over a fixed symmetric ``matvec`` (build once per operator)."""

    def __init__(self, matvec: Matvec, record_vectors: bool = True):
        self.matvec = matvec
        self.record_vectors = record_vectors
        self._solve = tf.function(self._graph, reduce_retracing=True, autograph=False)

    def _graph(self, b, x0, damping, max_iter, rtol, atol, ls_rtol, use_x0):
        def solve(start):
            return minres_loop(
                self.matvec,
                b,
                start,
                damping,
                max_iter,
                rtol,
                atol,
                self.record_vectors,
                ls_rtol=ls_rtol,
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
        ls_rtol: float | None = None,
    ) -> MinresResult:
        """Solve (A + λI) x = b by MINRES; A symmetric, possibly indefinite or singular.

        Parameters
        ----------
        b : right-hand side, 1-D of length n.
        x0 : starting point (default zeros, which saves one matvec).
        damping : λ added to the diagonal (any sign; ``scipy.sparse.linalg.minres``'s
            ``shift`` is −λ).
        max_iter : most steps (default n).
        rtol, atol : stop when ‖r_k‖ ≤ max(rtol·‖b‖, atol) (``"converged"``).
        callback : ``callback(x_k)`` for k = 1 … iterations, after the compiled solve.
        dtype : computation dtype (default: b's, float64 for Python lists).
        ls_rtol : stop with x_k when ‖(A+λI)r_k‖ ≤ ls_rtol·‖T̄‖_F·‖r_k‖
            (``"least_squares"``: the residual has stopped shrinking because b has a
            component outside the range of A + λI; x_k is a least-squares solution).
            MINRES learns ‖(A+λI)r_k‖ while computing x_{k+1}; that step is then refused,
            since on a singular, inconsistent system it divides by a γ near 0 and throws
            x far off (``scipy.sparse.linalg.minres`` takes it: ‖x‖ ~ 1e10 on a 12 × 12
            example). Default √eps of the dtype.

        Further stops: ``"ill_conditioned"`` when a step would make γ_max/γ_min, the
        condition estimate of the QR factor of T̄_k, reach 0.1/eps (scipy's ``Acond``
        test; the step is refused), and ``"breakdown"`` on NaN/Inf (likewise).

        x_k minimises ‖b − (A+λI)x‖ over x_0 + K_k(A+λI, r_0), so ‖r_k‖ never increases;
        each step costs one matvec. For positive definite A, CG reaches a smaller A-norm
        error with the same products; MINRES needs no positive curvature.

        Returns
        -------
        :class:`MinresResult` with the solution and its trace.
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
            tf.constant(np.nan if ls_rtol is None else ls_rtol, b.dtype),
            tf.constant(use_x0),
        )
        result = MinresResult.from_tensors(out, use_x0)
        replay(callback, result.iterates)
        return result
