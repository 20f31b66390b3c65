"""Spectral density by stochastic Lanczos quadrature (SLQ), on :class:`trpo_viz.spectrum.Lanczos`.

φ(t) = (1/n) Σ_i δ(t − λ_i) is estimated from m Rademacher starts v = z/√n: each k-step
Lanczos run turns vᵀf(A)v into the Gauss quadrature Σ_j τ_j f(θ_j) (nodes θ_j, the Ritz
values; weights τ_j = (e_1ᵀy_j)², summing to 1; exact for polynomials of degree ≤ 2k − 1).
Averaging the m quadratures and replacing each node by a Gaussian of width σ gives a
density that integrates to 1, whose mean and second moment are Hutchinson estimates of
tr(A)/n and tr(A²)/n (the latter plus σ²). See the module docstring of
:mod:`trpo_viz.spectrum` for the Lanczos side.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from trpo_viz.inputs import InputError
from trpo_viz.serialize import to_jsonable
from trpo_viz.spectrum import DEFAULT_STEPS, Lanczos

MAX_STARTS = 32  # random starts one request may ask for
DEFAULT_STARTS = 4


@dataclass
class SpectralDensity:
    """A stochastic Lanczos quadrature estimate of the spectral density of A.

    Attributes
    ----------
    n, k, starts : size, Lanczos steps per start, number of random starts.
    sigma : the Gaussian broadening's standard deviation.
    grid, density : φ̂ on a grid (∫φ̂ = 1 up to the grid's truncation of the tails).
    nodes, weights : [starts, k] Ritz values and quadrature weights of each start.
    hvps : products used (starts · k, fewer after early invariant stops).
    exact_density : the exact spectrum broadened by the same Gaussians, on the same grid,
        when the eigenvalues were given; else None.
    """

    n: int
    k: int
    starts: int
    sigma: float
    grid: np.ndarray
    density: np.ndarray
    nodes: list[np.ndarray]
    weights: list[np.ndarray]
    hvps: int
    exact_density: np.ndarray | None = None

    def moment(self, power: int) -> float:
        """(1/m) Σ_starts Σ_j τ_j θ_j^power, the quadrature's estimate of tr(A^power)/n."""
        return float(
            np.mean([np.sum(w * t**power) for t, w in zip(self.nodes, self.weights, strict=True)])
        )

    def to_dict(self) -> dict:
        return to_jsonable(
            {
                "n": self.n,
                "k": self.k,
                "starts": self.starts,
                "sigma": self.sigma,
                "grid": self.grid,
                "density": self.density,
                "exact_density": self.exact_density,
                "nodes": self.nodes,
                "weights": self.weights,
                "hvps": self.hvps,
                "mean_estimate": self.moment(1),
                "second_moment_estimate": self.moment(2),
            }
        )


def gaussian_mixture(points: np.ndarray, centres: np.ndarray, weights: np.ndarray, sigma: float):
    """Σ_j w_j N(t; c_j, σ²) at each t in ``points``."""
    z = (np.asarray(points)[:, None] - np.asarray(centres)[None, :]) / sigma
    return np.exp(-0.5 * z**2) @ np.asarray(weights) / (sigma * np.sqrt(2 * np.pi))


def slq_density(
    lanczos: Lanczos,
    n: int,
    k: int = DEFAULT_STEPS,
    starts: int = DEFAULT_STARTS,
    seed: int = 0,
    dtype: tf.DType = tf.float64,
    sigma: float | None = None,
    grid_points: int = 400,
    eigenvalues: np.ndarray | None = None,
) -> SpectralDensity:
    """Spectral density by stochastic Lanczos quadrature: ``starts`` × k products.

    Parameters
    ----------
    lanczos : a compiled :class:`Lanczos` on the operator.
    n : size of A.
    k : Lanczos steps per start (≤ n).
    starts : number of Rademacher starts (seeds ``seed``, ``seed + 1``, …).
    seed : first seed.
    dtype : the operator's dtype.
    sigma : Gaussian broadening; default 1/100 of the span of all nodes.
    grid_points : number of grid points, spanning the nodes ± 5σ.
    eigenvalues : the exact spectrum, when known, for the broadened exact density.

    Returns
    -------
    :class:`SpectralDensity`.
    """
    if not isinstance(starts, int | np.integer) or not 1 <= starts <= MAX_STARTS:
        raise InputError(f"the number of random starts must be from 1 to {MAX_STARTS}")
    runs = [lanczos.run(n, k, seed=seed + i, dtype=dtype) for i in range(starts)]
    nodes = [r.ritz_values for r in runs]
    weights = [r.quadrature_weights for r in runs]
    everything = np.concatenate(nodes + ([] if eigenvalues is None else [eigenvalues]))
    lo, hi = float(np.min(everything)), float(np.max(everything))
    if sigma is None:
        sigma = (hi - lo) / 100 if hi > lo else max(abs(hi), 1.0) / 100
    if not (np.isfinite(sigma) and sigma > 0):
        raise InputError("the broadening σ must be a positive number")
    grid = np.linspace(lo - 5 * sigma, hi + 5 * sigma, grid_points)
    density = np.mean(
        [gaussian_mixture(grid, t, w, sigma) for t, w in zip(nodes, weights, strict=True)], axis=0
    )
    exact = None
    if eigenvalues is not None:
        eigenvalues = np.asarray(eigenvalues, np.float64)
        exact = gaussian_mixture(grid, eigenvalues, np.full(len(eigenvalues), 1 / len(eigenvalues)),
                                 sigma)
    return SpectralDensity(
        n=n,
        k=runs[0].steps,
        starts=starts,
        sigma=float(sigma),
        grid=grid,
        density=density,
        nodes=nodes,
        weights=weights,
        hvps=sum(r.hvps for r in runs),
        exact_density=exact,
    )
