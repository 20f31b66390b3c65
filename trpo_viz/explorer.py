"""The CG explorer's computation: solve H x = g at θ by CG on HVPs, and everything to judge it.

One :class:`CompiledProblem` per (objective text, n, dtype, HVP mode) holds θ in a
``tf.Variable`` with a compiled HVP and CG solver, so a change of θ, g, λ or
iteration count reuses the traced graphs. :meth:`CompiledProblem.solve` returns a
plain :class:`ExplorerResult` that the CLI prints and the page draws, with its
diagnosis in plain text (:mod:`trpo_viz.explorer_diagnosis`): ``problems`` (why the
numbers are not mathematics: f undefined at θ, a non-finite Hessian, an overflow) and
``notes`` (where rounding, not convergence, drives the residual or the Ritz values).
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field

import numpy as np
import tensorflow as tf

from trpo_viz import analysis
from trpo_viz import explorer_diagnosis as diagnosis
from trpo_viz.cg import CGResult, ConjugateGradient
from trpo_viz.hvp import HVP_MODES, HessianVectorProduct, explicit_hessian
from trpo_viz.inputs import InputError, check_range
from trpo_viz.objectives import make_objective
from trpo_viz.serialize import to_jsonable

MAX_ITER = 500  # CG steps one request may ask for
MAX_EXPLICIT_N = 2000  # form H (n HVPs, O(n³) eigenvalues) only up to this n
JSON_HESSIAN_N = 50  # include H in JSON output up to this n
DTYPES = {"float64": tf.float64, "float32": tf.float32}
# The default relative tolerance per dtype. float32 resolves relative residuals only down
# to about eps·κ ≈ 1.2e-7·κ, so 1e-10 is out of its reach (CG would report "converged" on
# a recursive residual that is rounding); 1e-5 is reachable for κ up to about 100.
DEFAULT_TOL = {"float64": 1e-10, "float32": 1e-5}


@dataclass(frozen=True)
class CGSettings:
    """Solver options as a user gives them (validated by :meth:`checked`)."""

    damping: float = 0.0
    max_iter: int | None = None  # None: n (capped at MAX_ITER)
    tol: float | None = None  # relative: stop when ‖r_k‖ ≤ max(tol·‖g‖, atol); None: DEFAULT_TOL
    atol: float = 0.0

    def checked(self, n: int, dtype: str = "float64") -> CGSettings:
        """Validated settings with the defaults filled in (tolerance: the dtype's default)."""
        tol = DEFAULT_TOL[dtype] if self.tol is None else self.tol
        check_range("damping λ", self.damping, 0.0, 1e12)
        check_range("tolerance", tol, 0.0, 1.0)
        check_range("absolute tolerance", self.atol, 0.0, 1e12)
        max_iter = min(n, MAX_ITER) if self.max_iter is None else self.max_iter
        if not isinstance(max_iter, int) or not 0 <= max_iter <= MAX_ITER:
            raise InputError(f"max iterations must be an integer from 0 to {MAX_ITER}")
        return CGSettings(float(self.damping), max_iter, float(tol), float(self.atol))


@dataclass
class ExplorerResult:
    """A CG solve with its references. Arrays are numpy float64; None where not computable.

    ``reference`` is what CG converges to: (H + λI)⁻¹g (equal to ``exact`` when λ = 0).
    The per-iterate errors compare x_0 … x_k with it; ``true_residuals`` are
    ‖g − (H+λI)x_k‖ recomputed in float64 from the explicit H.

    ``problems`` (plain text) say why the solve means nothing: f not finite at θ, a
    non-finite gradient or Hessian, an overflow in CG. With problems there are no
    references (the numbers are not mathematics). ``residual_floor`` is the level the
    dtype resolves here (see :func:`trpo_viz.analysis.rounding_floor`); from iteration
    ``rounding_from`` on (None: never) the recursive ‖r_k‖ is below it while x_k's true
    residual is not: that part of the curve is rounding, and ``notes`` say so.
    ``hessian`` is H as formed (n ≤ MAX_EXPLICIT_N), non-finite entries included.
    """

    text: str
    n: int
    dtype: str
    hvp_mode: str
    theta: np.ndarray
    g: np.ndarray
    settings: CGSettings
    value: float
    gradient: np.ndarray
    cg: CGResult
    hessian: np.ndarray | None = None
    exact: np.ndarray | None = None
    reference: np.ndarray | None = None
    relative_errors: np.ndarray | None = None
    a_norm_errors: np.ndarray | None = None
    eigenvalues: np.ndarray | None = None
    condition_number: float | None = None
    error_bound: np.ndarray | None = None
    true_residuals: np.ndarray | None = None
    residual_floor: float | None = None
    rounding_from: int | None = None
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    steepest_descent: np.ndarray | None = field(default=None, repr=False)

    @property
    def solution(self) -> np.ndarray:
        return self.cg.x

    @property
    def true_residual_norm(self) -> float | None:
        """‖g − (H+λI)x‖ of the returned x, recomputed by CG in its dtype (one extra HVP)."""
        return self.cg.true_residual_norm

    @property
    def hessian_inverse(self) -> np.ndarray | None:
        """H⁻¹ when H was formed and is not singular (for display on small problems)."""
        if self.hessian is None or self.exact is None:
            return None
        with np.errstate(all="ignore"):
            inverse = np.linalg.inv(self.hessian)
        return inverse if np.all(np.isfinite(inverse)) else None

    @property
    def final_error(self) -> float | None:
        return None if self.relative_errors is None else float(self.relative_errors[-1])

    def to_json(self) -> str:
        """:meth:`to_dict` as JSON text (NaN/Inf are null), for a download built on click.

        A bound method: a download button holding it keeps this result alive, not the
        page's globals (a lambda in the page would keep its compiled problem).
        """
        return json.dumps(self.to_dict(), allow_nan=False)

    def to_dict(self) -> dict:
        """The JSON document of ``python -m trpo_viz cg --json`` (a stable interface)."""
        cg = self.cg
        return to_jsonable(
            {
                "expr": self.text,
                "n": self.n,
                "dtype": self.dtype,
                "hvp": self.hvp_mode,
                "theta": self.theta,
                "g": self.g,
                "damping": self.settings.damping,
                "max_iter": self.settings.max_iter,
                "tol": self.settings.tol,
                "value": self.value,
                "gradient": self.gradient,
                "exact": self.exact,
                "damped_exact": self.reference if self.settings.damping > 0 else None,
                "solution": cg.x,
                "iterates": cg.iterates,
                "residual_norms": cg.residual_norms,
                "true_residual_norm": cg.true_residual_norm,
                "true_residuals": self.true_residuals,
                "residual_floor": self.residual_floor,
                "rounding_from": self.rounding_from,
                "alphas": cg.alphas,
                "betas": cg.betas,
                "curvatures": cg.curvatures,
                "iterations": cg.iterations,
                "hvp_count": cg.matvecs,
                "stop_reason": cg.stop_reason,
                "relative_errors": self.relative_errors,
                "a_norm_errors": self.a_norm_errors,
                "final_error": self.final_error,
                "eigenvalues": self.eigenvalues,
                "condition_number": self.condition_number,
                "error_bound": self.error_bound,
                "hessian": self.hessian if self.n <= JSON_HESSIAN_N else None,
                "problems": self.problems,
                "notes": self.notes,
            }
        )


class CompiledProblem:
    """f compiled once, with θ as a variable, its HVP and a CG solver over it.

    Thread-safe: a web server may share one instance between sessions
    (θ is assigned and read under a lock).
    """

    def __init__(
        self, text: str, n: int | None = None, dtype: str = "float64", hvp_mode: str = "reverse"
    ):
        if dtype not in DTYPES:
            raise InputError(f"dtype must be one of {', '.join(DTYPES)}")
        if hvp_mode not in HVP_MODES:
            raise InputError(f"HVP mode must be one of {', '.join(HVP_MODES)}")
        self.objective = make_objective(text, n)
        self.text = text
        self.n = self.objective.n
        self.dtype = dtype
        self.hvp_mode = hvp_mode
        self.theta = tf.Variable(tf.zeros([self.n], DTYPES[dtype]), name="theta")
        self.hvp = HessianVectorProduct(lambda: self.objective(self.theta), [self.theta], hvp_mode)
        self.cg = ConjugateGradient(self.hvp)
        self._value = tf.function(lambda: self.objective(self.theta), autograph=False)
        self._lock = threading.Lock()

    def solve(self, theta, g, settings: CGSettings = CGSettings(), x0=None) -> ExplorerResult:
        """Solve (H(θ) + λI) x = g by CG; add exact references when n ≤ MAX_EXPLICIT_N.

        Raises :class:`InputError` for inputs of the wrong length, non-finite inputs and
        inputs beyond the dtype's range. Everything that goes wrong at θ (f undefined,
        an overflow) is reported in the result's ``problems`` instead.
        """
        n = self.n
        np_dtype = DTYPES[self.dtype].as_numpy_dtype
        theta = _checked_vector("θ", theta, n, np_dtype)
        g = _checked_vector("g", g, n, np_dtype)
        x0 = None if x0 is None else _checked_vector("x0", x0, n, np_dtype)
        settings = settings.checked(n, self.dtype)
        with self._lock:
            self.theta.assign(theta.astype(np_dtype))
            value = float(self._value())
            gradient = self.hvp.gradient().numpy().astype(np.float64)
            result = self.cg.solve(
                tf.constant(g.astype(np_dtype)),
                x0=None if x0 is None else x0.astype(np_dtype),
                damping=settings.damping,
                max_iter=settings.max_iter,
                rtol=settings.tol,
                atol=settings.atol,
            )
            hessian = explicit_hessian(self.hvp).astype(np.float64) if n <= MAX_EXPLICIT_N else None
        out = ExplorerResult(
            text=self.text,
            n=n,
            dtype=self.dtype,
            hvp_mode=self.hvp_mode,
            theta=theta,
            g=g,
            settings=settings,
            value=value,
            gradient=gradient,
            cg=_as_float64(result),
            hessian=hessian,
        )
        out.problems = diagnosis.problems(out, x0 is not None)
        if not out.problems:
            if hessian is not None:
                _add_references(out, hessian)
            diagnosis.add_rounding_notes(out)
            diagnosis.add_ritz_copies_note(out)
        return out


def _checked_vector(name: str, vector, n: int, np_dtype) -> np.ndarray:
    """``vector`` as float64 of length n, finite and within the range of ``np_dtype``."""
    vector = np.asarray(vector, dtype=np.float64)
    if vector.shape != (n,):
        raise InputError(f"{name} must have n = {n} entries, not {vector.size}")
    bad = np.flatnonzero(~np.isfinite(vector))
    if bad.size:
        raise InputError(f"{name}: entry {bad[0] + 1} is not finite")
    largest = float(np.finfo(np_dtype).max)
    bad = np.flatnonzero(np.abs(vector) > largest)
    if bad.size:
        raise InputError(
            f"{name} overflows {np.dtype(np_dtype).name}: entry {bad[0] + 1} "
            f"({vector[bad[0]]:.3g}) is beyond ±{largest:.3g}, the largest "
            f"{np.dtype(np_dtype).name} number"
        )
    return vector


def _as_float64(result: CGResult) -> CGResult:
    for name, value in vars(result).items():
        if isinstance(value, np.ndarray) and value.dtype == np.float32:
            setattr(result, name, value.astype(np.float64))
    return result


def _add_references(out: ExplorerResult, hessian: np.ndarray) -> None:
    """Exact solutions, per-iterate errors, spectrum and the CG bound from the explicit H."""
    damping = out.settings.damping
    damped = hessian + damping * np.eye(out.n)
    out.exact = analysis.exact_solution(hessian, out.g)
    out.reference = out.exact if damping == 0 else analysis.exact_solution(hessian, out.g, damping)
    out.eigenvalues, out.condition_number = analysis.spectrum(damped)
    iterates = out.cg.iterates
    out.true_residuals = analysis.residual_norms(iterates, damped, out.g)
    if out.reference is not None:
        out.relative_errors = analysis.relative_errors(iterates, out.reference)
        out.a_norm_errors = analysis.a_norm_errors(iterates, out.reference, damped)
        out.error_bound = analysis.cg_error_bound(
            out.condition_number, out.cg.iterations, float(out.a_norm_errors[0])
        )
    if out.n <= 10:
        out.steepest_descent = analysis.steepest_descent_path(
            damped, out.g, iterates[0], max(out.cg.iterations, 1)
        )
