"""The Hessian-free cost lab: the MLP loss, the measurements' shape, the fits."""

import json

import numpy as np
import pytest

from trpo_viz import memory
from trpo_viz.cost import (
    CostLab,
    CostRow,
    MLPLoss,
    explicit_bytes_model,
    fit_costs,
    measure_size,
    mlp_width,
    power_fit,
)
from trpo_viz.hvp import HessianVectorProduct, explicit_hessian
from trpo_viz.inputs import InputError


@pytest.mark.parametrize("target", [100, 1000, 10_000, 1_000_000])
def test_mlp_size_is_close_to_the_target(target):
    w = mlp_width(target)
    n = w * w + 11 * w + 1  # 8 → w → w → 1 with biases
    assert abs(n - target) <= 2 * w + 12  # the nearest width is at most one step away
    if target <= 10_000:
        assert MLPLoss(target).size == n


def test_mlp_loss_hessian_is_the_positive_semidefinite_fisher():
    loss = MLPLoss(120, batch=16)
    hvp = HessianVectorProduct(loss, loss.parameters)
    hessian = explicit_hessian(hvp).astype(np.float64)
    eigenvalues = np.linalg.eigvalsh(hessian)
    assert eigenvalues[0] >= -1e-5 * eigenvalues[-1]
    # JᵀJ/m with one output per example: rank ≤ batch size.
    assert np.sum(eigenvalues > 1e-4 * eigenvalues[-1]) <= 16
    assert float(loss()) == 0.0  # at θ₀ the KL to itself vanishes


def test_measure_size_runs_both_routes_and_skips_beyond_the_budget():
    row = measure_size(60, iters=3, repeats=1)
    assert row.n == MLPLoss(60).size and row.iters == 3
    assert row.explicit_seconds > 0 and row.explicit_skipped is None
    assert row.explicit_form_seconds + row.explicit_solve_seconds <= row.explicit_seconds * 1.01
    assert row.hvp_cg_seconds > 0 and row.hvp_seconds > 0
    assert row.hvp_cg_cpu_seconds >= 0 and row.explicit_cpu_seconds > 0
    assert row.explicit_bytes_model == explicit_bytes_model(row.n) == 28 * row.n**2
    assert row.hvp_cg_bytes == row.hvp_cg_bytes_model and not row.hvp_cg_bytes_measured
    assert 0 <= row.explicit_relative_difference < 10
    document = json.loads(json.dumps(row.to_dict()))
    assert {"n", "explicit_seconds", "explicit_bytes", "hvp_cg_seconds", "hvp_cg_bytes"} <= set(
        document
    )
    skipped = measure_size(60, iters=3, memory_budget=1000, repeats=1)
    assert skipped.explicit_seconds is None and "exceeds the budget" in skipped.explicit_skipped
    assert skipped.explicit_bytes == explicit_bytes_model(skipped.n)
    assert not skipped.explicit_bytes_measured
    assert skipped.to_dict()["explicit_seconds"] is None


def test_bad_sizes_are_refused():
    with pytest.raises(InputError, match="N must be"):
        measure_size(10)
    with pytest.raises(InputError, match="iterations"):
        measure_size(100, iters=0)


def test_lab_caches_per_size(monkeypatch):
    calls = []

    def fake(n, iters, budget):
        calls.append(n)
        return _row(n, 1e-6 * n**2, 1e-6 * n)

    monkeypatch.setattr("trpo_viz.cost.measure_size", fake)
    lab = CostLab()
    rows, fits = lab.run([100, 1000], iters=5)
    again, _ = lab.run([1000, 100, 10_000], iters=5)
    assert calls == [100, 1000, 10_000]
    assert again[0] is rows[1]
    assert fits.explicit_time.slope == pytest.approx(2.0)


def _row(n, explicit_seconds, cg_seconds, explicit_bytes=None):
    measured = explicit_seconds is not None
    return CostRow(
        n=n,
        target_n=n,
        iters=10,
        explicit_seconds=explicit_seconds,
        explicit_form_seconds=None,
        explicit_solve_seconds=None,
        explicit_bytes=explicit_bytes if explicit_bytes is not None else explicit_bytes_model(n),
        explicit_bytes_measured=measured and explicit_bytes is not None,
        explicit_bytes_model=explicit_bytes_model(n),
        explicit_skipped=None if measured else "budget",
        hvp_cg_seconds=cg_seconds,
        hvp_cg_cpu_seconds=2 * cg_seconds,
        hvp_cg_bytes=40 * n,
        hvp_cg_bytes_measured=False,
        hvp_cg_bytes_model=40 * n,
        hvp_cg_rss_bytes=None,
        hvp_seconds=cg_seconds / 10,
        explicit_cpu_seconds=None if explicit_seconds is None else 2 * explicit_seconds,
    )


def test_fits_recover_slopes_and_the_crossover():
    # explicit: 1e-9·N³ s; CG: 1e-5·N s → equal at N = 100.
    ns = [200, 400, 800, 1600, 10_000]
    rows = [
        _row(n, 1e-9 * n**3 if n < 5000 else None, 1e-5 * n, 28 * n**2 if n < 5000 else None)
        for n in ns
    ]
    fits = fit_costs(rows)
    assert fits.explicit_time.slope == pytest.approx(3.0)
    assert fits.explicit_time.points == 4 and fits.explicit_time.n_range == (200, 1600)
    assert fits.explicit_memory.slope == pytest.approx(2.0)
    assert fits.hvp_cg_time.slope == pytest.approx(1.0) and fits.hvp_cg_time.points == 5
    assert fits.hvp_cg_memory.slope == pytest.approx(1.0)
    assert fits.crossover_n == pytest.approx(100.0) and fits.crossover_extrapolated
    assert fits.explicit_faster_at == [] and fits.explicit_time.n_range[0] / 100 < 10
    np.testing.assert_allclose(fits.explicit_time([10_000]), [1e3])  # the dashed extrapolation
    cpu = fit_costs(rows, clock="cpu")  # twice the seconds: same slopes, same crossover
    assert cpu.explicit_time.slope == pytest.approx(3.0)
    assert cpu.crossover_n == pytest.approx(100.0)
    json.dumps(fits.to_dict())
    assert power_fit([100, 100], [1.0, 2.0]) is None  # one distinct N: no slope


@pytest.mark.skipif(not memory.peak_rss_available(), reason="needs Linux /proc peak RSS reset")
def test_peak_memory_sees_a_transient_allocation():
    size = 64 * 2**20

    def allocate():
        block = np.ones(size // 8)  # touched pages: resident
        return float(block[-1])

    _, seconds, extra = memory.measure(allocate)
    assert seconds >= 0
    assert 0.9 * size <= extra <= 2 * size
    _, _, idle = memory.measure(lambda: None)
    assert idle < 8 * 2**20


def test_no_crossover_is_claimed_far_outside_the_measurements():
    # explicit 1e-3·N^1.2 s vs CG 1e-3·N^0.5 s: the lines meet at N = 1, not near 10²…10³.
    rows = [_row(n, 1e-3 * n**1.2, 1e-3 * n**0.5) for n in (100, 300, 1000)]
    fits = fit_costs(rows)
    assert fits.crossover_n is None and fits.crossover_extrapolated is None
    assert any("no crossover is claimed" in note for note in fits.notes)
    # Where the explicit route is faster, it is said so from the measurements themselves.
    rows = [_row(100, 1e-4, 1e-3), _row(1000, 1e-1, 1e-2)]
    fits = fit_costs(rows)
    assert fits.explicit_faster_at == [100]
    assert 100 <= fits.crossover_n <= 1000 and not fits.crossover_extrapolated
