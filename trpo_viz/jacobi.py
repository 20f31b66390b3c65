"""The diagonal of an operator seen only through ``matvec``: exact, or estimated by probing.

Jacobi preconditioning (M = diag(A)) needs diag(A), which Hessian-free code does not
have. Two ways to get it, each counted in products with A:

* exact: d_i = e_iᵀ A e_i, one product per coordinate (n products; for small n);
* Hutchinson-style probing (Bekas, Kokiopoulou & Saad, 2007): for Rademacher vectors
  z_1 … z_s (entries ±1), d̂ = (1/s) Σ_j z_j ⊙ A z_j. Since z_i² = 1,
  (z ⊙ Az)_i = A_ii + Σ_{l≠i} A_il z_i z_l, so d̂ is unbiased with
  Var(d̂_i) = (1/s) Σ_{l≠i} A_il²: exact for a diagonal A, noisy where A has large
  off-diagonal mass. s products, whatever n is.

:class:`DiagonalEstimator` compiles both loops once per operator.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import tensorflow as tf

from trpo_viz.cg import Matvec
from trpo_viz.serialize import to_jsonable

EXACT_MAX_N = 100  # default: exact diagonal (n products) up to this n, probing beyond
DEFAULT_PROBES = 10
RELATIVE_FLOOR = 1e-8  # entries of |diag + λ| below this fraction of the largest are raised


@dataclass
class JacobiPreconditioner:
    """diag(A) (exact or estimated) and what it cost.

    Attributes
    ----------
    diagonal : diag(A) without damping, exact or estimated.
    method : ``"exact"`` (n products) or ``"hutchinson"`` (``probes`` products).
    hvps : products with A spent on it.
    probes : number of Rademacher probes (None for exact).
    """

    diagonal: np.ndarray
    method: str
    hvps: int
    probes: int | None = None

    def inverse_diagonal(self, damping: float = 0.0) -> tuple[np.ndarray, int]:
        """M⁻¹ as a vector for A + λI, and how many entries had to be modified.

        M = diag(m) with m_i = |d_i + λ|, raised to ``RELATIVE_FLOOR · max_i m_i`` where
        smaller. PCG needs M positive definite; for a positive definite A + λI the exact
        diagonal is positive and nothing changes. Entries with d_i + λ ≤ floor (possible
        for an indefinite A or a noisy estimate) are counted as modified, and reported.
        """
        shifted = np.asarray(self.diagonal, np.float64) + damping
        magnitude = np.abs(shifted)
        largest = float(np.max(magnitude)) if magnitude.size else 0.0
        if not np.isfinite(largest):
            raise ValueError("the preconditioner's diagonal is not finite")
        floor = RELATIVE_FLOOR * largest if largest > 0 else 1.0
        modified = int(np.sum(shifted <= floor))
        return 1.0 / np.maximum(magnitude, floor), modified

    def describe(self, modified: int = 0) -> str:
        how = "exact diagonal" if self.method == "exact" else f"Hutchinson, {self.probes} probes"
        text = f"Jacobi ({how}, {self.hvps} HVPs)"
        if modified:
            text += f"; {modified} non-positive or tiny entries replaced by |d + λ| ≥ floor"
        return text

    def to_dict(self) -> dict:
        return to_jsonable(asdict(self))


class DiagonalEstimator:
    """diag(A) for a fixed ``matvec``, compiled once (new n-vectors, probe counts and seeds
    reuse the graphs)."""

    def __init__(self, matvec: Matvec):
        self.matvec = matvec
        self._exact = tf.function(self._exact_graph, reduce_retracing=True, autograph=False)
        self._probe = tf.function(self._probe_graph, reduce_retracing=True, autograph=False)

    def _exact_graph(self, template):
        n = tf.shape(template)[0]

        def body(i, entries):
            e_i = tf.one_hot(i, n, dtype=template.dtype)
            return i + 1, entries.write(i, self.matvec(e_i)[i])

        entries = tf.TensorArray(template.dtype, size=n)
        _, entries = tf.while_loop(lambda i, _: i < n, body, (tf.constant(0), entries))
        return entries.stack()

    def _probe_graph(self, template, probes, seed):
        n = tf.shape(template)[0]

        def body(j, total):
            signs = tf.random.stateless_uniform([n], seed=tf.stack([seed, j]), maxval=2,
                                                dtype=tf.int32)
            z = tf.cast(2 * signs - 1, template.dtype)  # Rademacher ±1
            return j + 1, total + z * self.matvec(z)

        _, total = tf.while_loop(
            lambda j, _: j < probes, body, (tf.constant(0), tf.zeros_like(template))
        )
        return total / tf.cast(probes, template.dtype)

    def exact(self, n: int, dtype: tf.DType = tf.float64) -> JacobiPreconditioner:
        """diag(A) from e_iᵀAe_i, i = 1 … n: n products."""
        diagonal = self._exact(tf.zeros([n], dtype)).numpy().astype(np.float64)
        return JacobiPreconditioner(diagonal, "exact", hvps=n)

    def hutchinson(
        self, n: int, probes: int = DEFAULT_PROBES, seed: int = 0, dtype: tf.DType = tf.float64
    ) -> JacobiPreconditioner:
        """d̂ = (1/s) Σ z_j ⊙ Az_j over s = ``probes`` Rademacher vectors: s products."""
        if probes < 1:
            raise ValueError("probes must be at least 1")
        diagonal = self._probe(
            tf.zeros([n], dtype), tf.constant(probes, tf.int32), tf.constant(seed, tf.int32)
        )
        return JacobiPreconditioner(
            diagonal.numpy().astype(np.float64), "hutchinson", hvps=probes, probes=probes
        )

    def build(
        self,
        n: int,
        dtype: tf.DType = tf.float64,
        exact_max_n: int = EXACT_MAX_N,
        probes: int = DEFAULT_PROBES,
        seed: int = 0,
    ) -> JacobiPreconditioner:
        """Exact for n ≤ ``exact_max_n``, else Hutchinson with ``probes`` products."""
        if n <= exact_max_n:
            return self.exact(n, dtype)
        return self.hutchinson(n, probes, seed, dtype)
