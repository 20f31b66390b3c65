"""Hessian-free cost lab: form H and solve densely, or run k CG iterations on HVPs?

For an MLP-shaped loss with N parameters it measures, in this process:

* the explicit route: H from N HVPs (:func:`trpo_viz.hvp.explicit_hessian`, column blocks
  through ``tf.vectorized_map``), then ``numpy.linalg.solve`` of (H + λI)x = g — time
  ~N² for forming (N products of cost ~N) plus ~N³ for the solve, memory ~N²;
* the Hessian-free route: k iterations of :class:`trpo_viz.cg.ConjugateGradient` on the
  compiled HVP — time ~k·N, memory ~N.

Peak memory is the rise of the process's resident set during the call
(:mod:`trpo_viz.memory`; Linux only — elsewhere the byte columns fall back on the model
below). The explicit route is skipped, and only modelled, where its modelled peak
exceeds the memory budget. Fitted log-log slopes and the crossover come from
:func:`fit_costs`; points beyond the measured range are extrapolations and are flagged.

The loss is the one TRPO's natural gradient needs: for a Gaussian policy with unit
variance and mean f(x; θ) (an MLP d → w → w → 1, tanh), the mean KL from the current
policy, L(θ') = ½·mean_x (f(x; θ') − f(x; θ))², whose Hessian at θ' = θ is the Fisher
matrix JᵀJ/m: positive semi-definite, so CG with damping λ > 0 runs every iteration.
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import tensorflow as tf

from trpo_viz import memory
from trpo_viz.cg import ConjugateGradient
from trpo_viz.hvp import HessianVectorProduct, explicit_hessian
from trpo_viz.inputs import InputError
from trpo_viz.serialize import to_jsonable

INPUTS, BATCH = 8, 256
MIN_N, MAX_N = 50, 2_000_000
MAX_ITERS = 200
DEFAULT_ITERS = 10
DEFAULT_BUDGET = 512 * 2**20  # bytes the explicit route may take (modelled peak)
DAMPING = 0.1  # TRPO's usual CG damping: H + λI is positive definite
WARM_EXPLICIT_N = 2000  # below this, form H once untimed first (tracing would dominate)
ITEMSIZE = 4  # float32 throughout, as networks are trained
CROSSOVER_REACH = 10.0  # report a fitted crossover at most this factor beyond measured N


def mlp_width(n_params: int, inputs: int = INPUTS) -> int:
    """Hidden width w with w² + (d+3)w + 1 ≈ N (the parameter count of d → w → w → 1)."""
    c = inputs + 3
    return max(1, round((-c + math.sqrt(c * c + 4 * max(n_params - 1, 0))) / 2))


class MLPLoss(tf.Module):
    """½·mean (f(x; θ) − f(x; θ₀))² for an MLP f: d → w → w → 1 (tanh), θ₀ frozen at creation.

    At θ = θ₀ the loss and its gradient vanish and its Hessian is the Gauss-Newton /
    Fisher matrix JᵀJ/m (m = batch size), of rank ≤ m: what TRPO's Fisher-vector
    products multiply by for a unit-variance Gaussian policy.
    """

    def __init__(self, n_params: int, inputs: int = INPUTS, batch: int = BATCH, seed: int = 0):
        super().__init__()
        width = mlp_width(n_params, inputs)
        rng = np.random.default_rng(seed)
        sizes = [inputs, width, width, 1]
        self.layers = [
            (
                tf.Variable((rng.normal(size=(a, b)) / np.sqrt(a)).astype(np.float32)),
                tf.Variable((0.1 * rng.normal(size=b)).astype(np.float32)),
            )
            for a, b in zip(sizes[:-1], sizes[1:], strict=True)
        ]
        self.width = width
        self.x = tf.constant(rng.normal(size=(batch, inputs)).astype(np.float32))
        self.anchor = tf.constant(self.forward(self.x))

    @property
    def parameters(self) -> list[tf.Variable]:
        return [v for layer in self.layers for v in layer]

    @property
    def size(self) -> int:
        return int(sum(np.prod(v.shape) for v in self.parameters))

    def forward(self, x):
        for i, (w, b) in enumerate(self.layers):
            x = x @ w + b
            if i < len(self.layers) - 1:
                x = tf.tanh(x)
        return x

    def __call__(self):
        return 0.5 * tf.reduce_mean(tf.square(self.forward(self.x) - self.anchor))


def explicit_bytes_model(n: int) -> int:
    """Modelled peak of the explicit route: 28·N² bytes (seven N × N float32 arrays).

    Forming: ``explicit_hessian`` holds its column blocks, their concatenation and
    H + Hᵀ at once (3 arrays; ½(H + Hᵀ) replaces one of them). Solving:
    ``numpy.linalg.solve`` computes in float64 whatever the input, so it makes a float64
    copy of H and a Fortran-ordered one for LAPACK (2 × 2 float32-sized arrays) while H
    is alive. Memory freed after forming is not always returned to the system before the
    solve allocates, so the peak rise is up to 3 + 4 arrays. Checked against measured
    peaks at N ≈ 10³ and 3·10³ (``benchmarks/bench_krylov.py``).
    """
    return 7 * n * n * ITEMSIZE


def hvp_cg_bytes_model(n: int, width: int, batch: int = BATCH, inputs: int = INPUTS) -> int:
    """Modelled extra memory of k CG iterations on HVPs: O(N), independent of k.

    CG's x, r, p, (H+λI)p and g, and the HVP's gradient, tangent and result: 8 vectors
    of N; plus the network's activations and their first and second derivatives,
    3 × batch × (d + 2w + 1) floats. (``record_vectors=False``: no per-iterate trace.)
    This is a model: the measured rise of resident memory during a CG solve is a few MiB
    of allocator noise until N ~ 10⁶ (see ``CostRow.hvp_cg_rss_bytes``).
    """
    return (8 * n + 3 * batch * (inputs + 2 * width + 1)) * ITEMSIZE


@dataclass
class CostRow:
    """One size, both routes. Seconds are wall clock.

    ``explicit_bytes`` is the measured peak rise of resident memory during the explicit
    route (form H + solve), or :func:`explicit_bytes_model` where the route was skipped
    (``explicit_seconds`` None, reason in ``explicit_skipped``) or memory cannot be
    measured here (``explicit_bytes_measured`` False either way). ``hvp_cg_bytes`` is
    always :func:`hvp_cg_bytes_model` (``hvp_cg_bytes_measured`` False): CG's working set
    is too small to read reliably from resident memory. ``hvp_cg_rss_bytes`` is that
    reading anyway (first run after tracing; None where unmeasurable), for comparison.
    ``hvp_seconds`` is one standalone HVP; ``explicit_relative_difference`` is
    ‖x_CG − x_exact‖/‖x_exact‖ after k iterations (what k steps buy, not a check).
    ``*_cpu_seconds`` are this process's CPU seconds (all threads) for the same calls:
    the work itself, which other jobs on a shared machine inflate far less than wall time.
    """

    n: int
    target_n: int
    iters: int
    explicit_seconds: float | None
    explicit_form_seconds: float | None
    explicit_solve_seconds: float | None
    explicit_bytes: int
    explicit_bytes_measured: bool
    explicit_bytes_model: int
    explicit_skipped: str | None
    hvp_cg_seconds: float
    hvp_cg_cpu_seconds: float
    hvp_cg_bytes: int
    hvp_cg_bytes_measured: bool
    hvp_cg_bytes_model: int
    hvp_cg_rss_bytes: int | None
    hvp_seconds: float
    explicit_relative_difference: float | None = None
    explicit_cpu_seconds: float | None = None

    def to_dict(self) -> dict:
        """A row of ``python -m trpo_viz cost --json``: ``n``, ``explicit_seconds``, …"""
        return to_jsonable(asdict(self))


def _median_seconds(fn, repeats: int) -> tuple[float, float]:
    """Median wall and median process-CPU seconds of ``repeats`` calls."""
    walls, cpus = [], []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return statistics.median(walls), statistics.median(cpus)


def measure_size(
    target_n: int,
    iters: int = DEFAULT_ITERS,
    memory_budget: int = DEFAULT_BUDGET,
    repeats: int = 3,
    seed: int = 0,
) -> CostRow:
    """Measure both routes at one size (see the module docstring).

    Parameters
    ----------
    target_n : wanted parameter count; the MLP's width is rounded, so ``n`` differs a little.
    iters : CG iterations k for the Hessian-free route.
    memory_budget : bytes; the explicit route runs only where :func:`explicit_bytes_model`
        fits in it.
    repeats : the CG route is timed as the median of this many runs after a warm-up.
    seed : network and right-hand-side seed.

    Work is bounded: at most ``repeats + 1`` CG solves of k iterations, and one explicit
    route (two below ``WARM_EXPLICIT_N`` parameters, where the first absorbs tracing).
    """
    if not isinstance(target_n, int | np.integer) or not MIN_N <= target_n <= MAX_N:
        raise InputError(f"N must be an integer from {MIN_N} to {MAX_N:,}")
    if not isinstance(iters, int | np.integer) or not 1 <= iters <= MAX_ITERS:
        raise InputError(f"iterations must be an integer from 1 to {MAX_ITERS}")
    loss = MLPLoss(int(target_n), seed=seed)
    hvp = HessianVectorProduct(loss, loss.parameters)
    n = hvp.size
    g = np.random.default_rng(seed + 1).normal(size=n).astype(np.float32)
    g_tensor = tf.constant(g)
    solver = ConjugateGradient(hvp, record_vectors=False)

    def cg_route():
        return solver.solve(g_tensor, damping=DAMPING, max_iter=iters, rtol=0.0).x

    np.linalg.solve(np.eye(2, dtype=np.float32), np.ones(2, np.float32))  # load LAPACK
    # Trace CG with a 0-iteration solve, then read memory on the first real one.
    solver.solve(g_tensor, damping=DAMPING, max_iter=0, rtol=0.0)
    cg_x, _, cg_rss = memory.measure(cg_route)
    cg_seconds, cg_cpu = _median_seconds(cg_route, repeats)
    cg_model = hvp_cg_bytes_model(n, loss.width)
    hvp(g_tensor).numpy()  # trace the standalone HVP
    hvp_seconds, _ = _median_seconds(lambda: hvp(g_tensor).numpy(), repeats)

    model = explicit_bytes_model(n)
    row = CostRow(
        n=n,
        target_n=int(target_n),
        iters=int(iters),
        explicit_seconds=None,
        explicit_form_seconds=None,
        explicit_solve_seconds=None,
        explicit_bytes=model,
        explicit_bytes_measured=False,
        explicit_bytes_model=model,
        explicit_skipped=None,
        hvp_cg_seconds=cg_seconds,
        hvp_cg_cpu_seconds=cg_cpu,
        hvp_cg_bytes=cg_model,
        hvp_cg_bytes_measured=False,
        hvp_cg_bytes_model=cg_model,
        hvp_cg_rss_bytes=cg_rss,
        hvp_seconds=hvp_seconds,
    )
    if model > memory_budget:
        row.explicit_skipped = (
            f"modelled peak {model / 2**20:,.0f} MiB exceeds the budget of "
            f"{memory_budget / 2**20:,.0f} MiB"
        )
        return row

    def form():
        hessian = explicit_hessian(hvp)
        hessian[np.diag_indices_from(hessian)] += DAMPING  # in place: no second N² array
        return hessian

    if n <= WARM_EXPLICIT_N:
        form()
    timings = {}

    def explicit_route():  # inner timings without memory.measure: it would reset the peak
        start = time.perf_counter()
        hessian = form()
        timings["form"] = time.perf_counter() - start
        x = np.linalg.solve(hessian, g)
        timings["solve"] = time.perf_counter() - start - timings["form"]
        return x

    cpu = time.process_time()
    x, seconds, peak = memory.measure(explicit_route)
    row.explicit_cpu_seconds = time.process_time() - cpu
    row.explicit_seconds = seconds
    row.explicit_form_seconds = timings["form"]
    row.explicit_solve_seconds = timings["solve"]
    if peak is not None:
        row.explicit_bytes, row.explicit_bytes_measured = peak, True
    # The two routes answer different questions (k CG steps vs the exact solve); this is
    # how far k steps are from it, for the reader, not a check.
    scale = float(np.linalg.norm(x)) or 1.0
    row.explicit_relative_difference = float(np.linalg.norm(cg_x - x)) / scale
    return row


@dataclass
class PowerFit:
    """y ≈ c·N^slope fitted by least squares on log y against log N."""

    slope: float
    log_coefficient: float
    points: int
    n_range: tuple[int, int]

    def __call__(self, n) -> np.ndarray:
        return np.exp(self.log_coefficient) * np.asarray(n, np.float64) ** self.slope


def power_fit(ns, values) -> PowerFit | None:
    """Fit on the points with a positive value; None with fewer than two distinct N."""
    pairs = [(n, v) for n, v in zip(ns, values, strict=True) if v is not None and v > 0]
    if len({n for n, _ in pairs}) < 2:
        return None
    logn = np.log([n for n, _ in pairs])
    logv = np.log([v for _, v in pairs])
    slope, intercept = np.polyfit(logn, logv, 1)
    ns_used = [n for n, _ in pairs]
    return PowerFit(float(slope), float(intercept), len(pairs), (min(ns_used), max(ns_used)))


@dataclass
class CostFits:
    """Log-log slopes of both routes and where their fitted times cross.

    ``crossover_n``: N where the fitted explicit time equals the fitted CG time, when that
    lies within a factor ``CROSSOVER_REACH`` of the N where the explicit route was
    measured (else None, with a note: two power laws fitted over 10²…10³·⁵ say nothing
    about N ≈ 1); ``crossover_extrapolated``: True when it lies outside that range.
    ``explicit_faster_at``: the measured N where the explicit route beat k CG iterations.
    ``explicit_memory`` fits measured rows only
    (a row whose peak read as 0, memory reused from earlier work, is left out);
    ``hvp_cg_memory`` fits the model.
    """

    explicit_time: PowerFit | None
    explicit_memory: PowerFit | None
    hvp_cg_time: PowerFit | None
    hvp_cg_memory: PowerFit | None
    crossover_n: float | None
    crossover_extrapolated: bool | None
    explicit_faster_at: list[int] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return to_jsonable(asdict(self))


def fit_costs(rows: list[CostRow], clock: str = "wall") -> CostFits:
    """Fits over ``rows``; ``clock`` ``"wall"`` or ``"cpu"`` picks which seconds."""
    if clock not in ("wall", "cpu"):
        raise ValueError("clock must be 'wall' or 'cpu'")
    ns = [r.n for r in rows]
    if clock == "wall":
        explicit_seconds = [r.explicit_seconds for r in rows]
        cg_seconds = [r.hvp_cg_seconds for r in rows]
    else:
        explicit_seconds = [r.explicit_cpu_seconds for r in rows]
        cg_seconds = [r.hvp_cg_cpu_seconds for r in rows]
    explicit_time = power_fit(ns, explicit_seconds)
    explicit_memory = power_fit(
        ns, [r.explicit_bytes if r.explicit_bytes_measured else None for r in rows]
    )
    cg_time = power_fit(ns, cg_seconds)
    cg_memory = power_fit(ns, [r.hvp_cg_bytes for r in rows])
    crossover = extrapolated = None
    notes = []
    if explicit_time and cg_time and explicit_time.slope != cg_time.slope:
        log_n = (cg_time.log_coefficient - explicit_time.log_coefficient) / (
            explicit_time.slope - cg_time.slope
        )
        lo, hi = explicit_time.n_range
        value = float(np.exp(min(log_n, 700.0)))
        if lo / CROSSOVER_REACH <= value <= hi * CROSSOVER_REACH:
            crossover = value
            extrapolated = not lo <= crossover <= hi
        else:
            notes.append(
                f"the fitted time lines meet at N ≈ {value:.3g}, far outside the measured "
                f"N = {lo}…{hi}: no crossover is claimed"
            )
    faster = [n for n, e, c in zip(ns, explicit_seconds, cg_seconds, strict=True)
              if e is not None and e < c]
    if explicit_time is None:
        notes.append("fewer than two sizes with a measured explicit route: no slope")
    if explicit_memory is None and explicit_time is not None:
        notes.append("the explicit route's memory could not be measured here: no slope")
    notes.append("CG's memory is the model (vectors + activations), not a measurement")
    return CostFits(explicit_time, explicit_memory, cg_time, cg_memory, crossover, extrapolated,
                    faster, notes)


class CostLab:
    """Measurements cached per (N, k, budget): a size is measured once per process."""

    def __init__(self, memory_budget: int = DEFAULT_BUDGET):
        self.memory_budget = memory_budget
        self._cache: dict[tuple[int, int, int], CostRow] = {}

    def measure(self, n: int, iters: int = DEFAULT_ITERS) -> CostRow:
        key = (int(n), int(iters), int(self.memory_budget))
        if key not in self._cache:
            self._cache[key] = measure_size(n, iters, self.memory_budget)
        return self._cache[key]

    def run(
        self, sizes, iters: int = DEFAULT_ITERS, clock: str = "wall"
    ) -> tuple[list[CostRow], CostFits]:
        rows = [self.measure(n, iters) for n in sizes]
        return rows, fit_costs(rows, clock)
