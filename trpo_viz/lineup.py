"""Solver line-up: CG, Jacobi-preconditioned CG, MINRES and steepest descent on one problem,
one HVP budget, one x-axis (products used).

:class:`SolverSuite` holds one compiled solver of each kind over a fixed ``matvec``
(the CG is :class:`trpo_viz.cg.ConjugateGradient`, the one CG of this project).
:meth:`SolverSuite.lineup` runs them on the same b, x0, λ and tolerance, gives each as
many iterations as the budget allows after its set-up (PCG pays for its diagonal), and,
when the explicit H is given, adds the exact solve (n products to form H) and measures
every iterate against x* = (H + λI)⁻¹b with the same yardsticks.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import tensorflow as tf

from trpo_viz import analysis
from trpo_viz.cg import ConjugateGradient, Matvec
from trpo_viz.inputs import InputError
from trpo_viz.jacobi import DEFAULT_PROBES, EXACT_MAX_N, DiagonalEstimator, JacobiPreconditioner
from trpo_viz.minres import Minres
from trpo_viz.pcg import PreconditionedCG
from trpo_viz.serialize import to_jsonable
from trpo_viz.steepest import SteepestDescent

METHODS = ("cg", "pcg", "minres", "sd")
LABELS = {
    "cg": "CG",
    "pcg": "PCG (Jacobi)",
    "minres": "MINRES",
    "sd": "steepest descent",
    "exact": "exact (form H, solve)",
}
MAX_BUDGET = 2000  # HVPs one line-up may spend per method


@dataclass
class MethodTrace:
    """One method's run on the common axis of products used.

    Attributes
    ----------
    method, label : key (``cg``, ``pcg``, ``minres``, ``sd``, ``exact``) and display name.
    hvps : products used when each iterate x_0 … x_k was available (set-up included).
    residual_norms : ‖r_k‖ as the method tracked it (recursive; MINRES's φ̄_k).
    true_residual_norms : ‖b − (H+λI)x_k‖ from the explicit H, when given.
    relative_errors : ‖x_k − x*‖/‖x*‖, when x* is known.
    a_norm_errors : ‖x_k − x*‖_{H+λI}, only when H + λI is positive definite.
    iterations, stop_reason : as the solver reported them.
    setup_hvps : products spent before the first iteration (PCG's diagonal, H for exact).
    total_hvps : all products the method used.
    x : its final iterate.
    note : a sentence for the reader (budget exhausted by set-up, preconditioner used, …).
    """

    method: str
    label: str
    hvps: np.ndarray
    residual_norms: np.ndarray
    iterations: int
    stop_reason: str
    setup_hvps: int
    total_hvps: int
    x: np.ndarray
    note: str = ""
    iterates: np.ndarray | None = field(default=None, repr=False)
    true_residual_norms: np.ndarray | None = None
    relative_errors: np.ndarray | None = None
    a_norm_errors: np.ndarray | None = None

    def to_dict(self) -> dict:
        return to_jsonable(
            {
                "method": self.method,
                "label": self.label,
                "hvps": self.hvps,
                "residual_norms": self.residual_norms,
                "true_residual_norms": self.true_residual_norms,
                "relative_errors": self.relative_errors,
                "a_norm_errors": self.a_norm_errors,
                "iterations": self.iterations,
                "stop_reason": self.stop_reason,
                "setup_hvps": self.setup_hvps,
                "total_hvps": self.total_hvps,
                "solution": self.x,
                "note": self.note,
            }
        )


@dataclass
class Lineup:
    """All methods on one problem and budget.

    ``traces`` maps method key → :class:`MethodTrace` (in the order run; ``exact`` last
    when H was given). ``reference`` is x* = (H+λI)⁻¹b (None without H or when singular);
    ``positive_definite`` says whether H + λI is (None without H); ``eigenvalues`` is the
    spectrum of H + λI (None without H).
    """

    n: int
    budget: int
    damping: float
    rtol: float
    traces: dict[str, MethodTrace]
    reference: np.ndarray | None = None
    positive_definite: bool | None = None
    eigenvalues: np.ndarray | None = None

    def to_dict(self) -> dict:
        return to_jsonable(
            {
                "n": self.n,
                "budget": self.budget,
                "damping": self.damping,
                "rtol": self.rtol,
                "reference": self.reference,
                "positive_definite": self.positive_definite,
                "eigenvalues": self.eigenvalues,
                "methods": {key: trace.to_dict() for key, trace in self.traces.items()},
            }
        )


class SolverSuite:
    """One compiled solver of each kind over a fixed ``matvec`` (build once per operator)."""

    def __init__(
        self, matvec: Matvec, cg: ConjugateGradient | None = None, dtype: tf.DType | None = None
    ):
        """``cg``: an existing :class:`ConjugateGradient` over the same ``matvec`` to reuse
        (the explorer's :class:`~trpo_viz.explorer.CompiledProblem` has one). ``dtype``:
        the operator's dtype, used when a call gives none (else b's; float64 for lists)."""
        self.matvec = matvec
        self.dtype = dtype
        self.cg = cg if cg is not None else ConjugateGradient(matvec)
        self.pcg = PreconditionedCG(matvec)
        self.minres = Minres(matvec)
        self.sd = SteepestDescent(matvec)
        self.diagonal = DiagonalEstimator(matvec)

    def jacobi(
        self,
        n: int,
        dtype: tf.DType = tf.float64,
        exact_max_n: int = EXACT_MAX_N,
        probes: int = DEFAULT_PROBES,
        seed: int = 0,
    ) -> JacobiPreconditioner:
        """diag(H): exact (n products) for n ≤ ``exact_max_n``, else ``probes`` products."""
        return self.diagonal.build(n, dtype, exact_max_n, probes, seed)

    def solve(
        self,
        method: str,
        b,
        x0=None,
        damping: float = 0.0,
        max_iter: int | None = None,
        rtol: float = 1e-10,
        atol: float = 0.0,
        preconditioner: JacobiPreconditioner | None = None,
        exact_max_n: int = EXACT_MAX_N,
        probes: int = DEFAULT_PROBES,
        dtype: tf.DType | None = None,
    ):
        """One solve by ``method`` (``cg``, ``pcg``, ``minres`` or ``sd``), same arguments
        as :meth:`trpo_viz.cg.ConjugateGradient.solve`; PCG builds its Jacobi diagonal
        (exact for n ≤ ``exact_max_n``, else ``probes`` products) unless given one.
        :func:`result_summary` turns the result into the CLI's JSON keys."""
        if method not in METHODS:
            raise InputError(f"unknown method {method!r}; choose from {', '.join(METHODS)}")
        dtype = dtype or self.dtype
        common = {"x0": x0, "damping": damping, "max_iter": max_iter, "rtol": rtol,
                  "atol": atol, "dtype": dtype}
        if method == "pcg":
            if preconditioner is None:
                n = int(np.shape(b)[0])
                b_dtype = dtype or (b.dtype if isinstance(b, tf.Tensor) else tf.float64)
                preconditioner = self.jacobi(n, b_dtype, exact_max_n, probes)
            return self.pcg.solve(b, preconditioner, **common)
        return getattr(self, method).solve(b, **common)

    def lineup(
        self,
        b,
        budget: int,
        damping: float = 0.0,
        rtol: float = 1e-10,
        x0=None,
        methods=METHODS,
        hessian: np.ndarray | None = None,
        preconditioner: JacobiPreconditioner | None = None,
        exact_max_n: int = EXACT_MAX_N,
        probes: int = DEFAULT_PROBES,
        dtype: tf.DType | None = None,
    ) -> Lineup:
        """Run ``methods`` on (H + λI)x = b with at most ``budget`` products each.

        Parameters
        ----------
        b : right-hand side (length n).
        budget : products per method, set-up included (1 … MAX_BUDGET).
        damping : λ.
        rtol : every method stops when ‖r_k‖ ≤ rtol·‖b‖ (MINRES also on its
            least-squares test).
        x0 : common start (default zeros; a non-zero start costs each method one product).
        methods : a subset of :data:`METHODS`.
        hessian : explicit H when it was formed: adds the exact solve and the errors.
        preconditioner : a ready Jacobi diagonal for PCG; None builds one here
            (exact for n ≤ ``exact_max_n``, else ``probes`` Hutchinson probes) and
            charges its products to PCG.
        dtype : computation dtype (default b's; float64 for lists).

        Returns
        -------
        :class:`Lineup`.
        """
        unknown = [m for m in methods if m not in METHODS]
        if unknown:
            raise InputError(f"unknown method {unknown[0]!r}; choose from {', '.join(METHODS)}")
        if not isinstance(budget, int | np.integer) or not 1 <= budget <= MAX_BUDGET:
            raise InputError(f"the HVP budget must be an integer from 1 to {MAX_BUDGET}")
        dtype = dtype or self.dtype
        if not isinstance(b, tf.Tensor):
            b = np.asarray(b, np.float64 if dtype is None else dtype.as_numpy_dtype)
        b = tf.convert_to_tensor(b, dtype=dtype)
        n = int(b.shape[0])
        start = int(x0 is not None)
        common = {"x0": x0, "damping": damping, "rtol": rtol}
        traces: dict[str, MethodTrace] = {}
        for method in methods:
            if method == "cg":
                r = self.cg.solve(b, max_iter=max(0, budget - start), **common)
                traces[method] = _trace(method, r, r.matvecs, 0, start)
            elif method == "sd":
                r = self.sd.solve(b, max_iter=max(0, budget - start), **common)
                traces[method] = _trace(method, r, r.hvps, 0, start)
            elif method == "minres":
                r = self.minres.solve(b, max_iter=max(0, budget - start), **common)
                traces[method] = _trace(method, r, r.hvps, 0, start)
            else:
                pre = preconditioner or self.jacobi(n, b.dtype, exact_max_n, probes)
                left = budget - pre.hvps - start
                r = self.pcg.solve(b, pre, max_iter=max(0, left), **common)
                trace = _trace(method, r, r.hvps, pre.hvps, start)
                trace.note = r.preconditioner + (
                    f"; its set-up alone exceeds the budget of {budget}" if left < 0 else ""
                )
                traces[method] = trace
        out = Lineup(n, int(budget), float(damping), float(rtol), traces)
        if hessian is not None:
            _add_references(out, np.asarray(hessian, np.float64), b.numpy().astype(np.float64))
        return out


def hvps_used(result) -> int:
    """Products a solve used, set-up included (CG calls them ``matvecs``)."""
    return int(result.hvps if hasattr(result, "hvps") else result.matvecs)


def result_summary(method: str, result) -> dict:
    """The JSON keys every method shares, plus its own (a JSON-ready dict).

    Shared: ``method``, ``solution``, ``iterates``, ``residual_norms``, ``iterations``,
    ``stop_reason``, ``hvps`` (set-up included), ``ritz_values`` (one sorted list per
    iteration k ≥ 1; None for steepest descent), ``true_residual_norm``. Own:
    ``alphas``/``betas`` (cg, pcg, minres), ``curvatures`` (cg, pcg, sd),
    ``preconditioner`` and ``setup_hvps`` (pcg), ``ar_norms`` (minres).
    """
    from trpo_viz.krylov import method_ritz_values

    out = {
        "method": method,
        "solution": result.x,
        "iterates": result.iterates,
        "residual_norms": result.residual_norms,
        "iterations": result.iterations,
        "stop_reason": result.stop_reason,
        "hvps": hvps_used(result),
        "ritz_values": method_ritz_values(result),
        "true_residual_norm": result.true_residual_norm,
    }
    for name in ("alphas", "betas", "curvatures", "preconditioner", "setup_hvps", "ar_norms"):
        if hasattr(result, name):
            out[name] = getattr(result, name)
    return to_jsonable(out)


def _trace(method: str, result, total_hvps: int, setup: int, start: int) -> MethodTrace:
    k = result.iterations
    return MethodTrace(
        method=method,
        label=LABELS[method],
        hvps=setup + start + np.arange(k + 1),
        residual_norms=np.asarray(result.residual_norms, np.float64),
        iterations=k,
        stop_reason=result.stop_reason,
        setup_hvps=setup,
        total_hvps=int(total_hvps),
        x=np.asarray(result.x, np.float64),
        iterates=None if result.iterates is None else np.asarray(result.iterates, np.float64),
    )


def _add_references(out: Lineup, hessian: np.ndarray, b: np.ndarray) -> None:
    damped = hessian + out.damping * np.eye(out.n)
    eigenvalues, _ = analysis.spectrum(damped)
    out.eigenvalues = eigenvalues
    out.positive_definite = bool(eigenvalues[0] > 0)
    out.reference = analysis.exact_solution(hessian, b, out.damping)
    for trace in out.traces.values():
        if trace.iterates is None:
            continue
        trace.true_residual_norms = np.linalg.norm(b - trace.iterates @ damped.T, axis=1)
        if out.reference is not None:
            trace.relative_errors = analysis.relative_errors(trace.iterates, out.reference)
            if out.positive_definite:
                trace.a_norm_errors = analysis.a_norm_errors(trace.iterates, out.reference, damped)
    if not out.positive_definite:
        for trace in out.traces.values():
            trace.note = (trace.note + "; " if trace.note else "") + (
                "A-norm error undefined: H + λI is not positive definite"
            )
    if out.reference is not None:
        x = out.reference
        residual = float(np.linalg.norm(b - damped @ x))
        out.traces["exact"] = MethodTrace(
            method="exact",
            label=LABELS["exact"],
            hvps=np.array([out.n]),
            residual_norms=np.array([residual]),
            iterations=0,
            stop_reason="solved",
            setup_hvps=out.n,
            total_hvps=out.n,
            x=x,
            note=f"H formed from {out.n} HVPs, then numpy.linalg.solve"
            + ("" if out.n <= out.budget else f" (beyond the budget of {out.budget})"),
            true_residual_norms=np.array([residual]),
            relative_errors=np.zeros(1),
            a_norm_errors=np.zeros(1) if out.positive_definite else None,
        )
