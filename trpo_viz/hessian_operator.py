"""H(θ) of an explorer objective as an operator: the compiled HVP at a chosen point θ.

:class:`ObjectiveHessian` does for the Krylov tools what
:class:`trpo_viz.explorer.CompiledProblem` does for CG: the objective is compiled once,
θ lives in a ``tf.Variable`` and the HVP over it is traced once, so a new θ costs no
retracing. The solvers, the diagonal estimator and Lanczos built on it are kept on the
instance (one compiled graph each). Use :meth:`at` to hold θ fixed while they run.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cached_property

import numpy as np
import tensorflow as tf

from trpo_viz.hvp import HVP_MODES, HessianVectorProduct, explicit_hessian
from trpo_viz.inputs import InputError
from trpo_viz.objectives import make_objective

DTYPES = {"float64": tf.float64, "float32": tf.float32}


class ObjectiveHessian:
    """θ ↦ (v ↦ ∇²f(θ) v) for f given as explorer text (an expression or ``@builtin``).

    Thread-safe through :meth:`at`: θ is assigned and used under one lock.
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
        self.dtype = DTYPES[dtype]
        self.theta = tf.Variable(tf.zeros([self.n], self.dtype), name="theta")
        self.hvp = HessianVectorProduct(lambda: self.objective(self.theta), [self.theta], hvp_mode)
        self._lock = threading.Lock()

    @contextmanager
    def at(self, theta) -> Iterator[ObjectiveHessian]:
        """Hold the lock with θ assigned: ``with op.at(theta): op.lanczos.run(op.n)``."""
        theta = np.asarray(theta, np.float64)
        if theta.shape != (self.n,):
            raise InputError(f"θ must have n = {self.n} entries, not {theta.size}")
        if not np.all(np.isfinite(theta)):
            raise InputError("θ must be finite")
        with self._lock:
            self.theta.assign(tf.constant(theta, self.dtype))
            yield self

    def explicit(self) -> np.ndarray:
        """H(θ) at the current θ as a float64 array (n products; small n only)."""
        return explicit_hessian(self.hvp).astype(np.float64)

    @cached_property
    def lanczos(self):
        from trpo_viz.spectrum import Lanczos

        return Lanczos(self.hvp)

    @cached_property
    def suite(self):
        from trpo_viz.lineup import SolverSuite

        return SolverSuite(self.hvp, dtype=self.dtype)
