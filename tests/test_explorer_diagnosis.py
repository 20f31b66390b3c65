"""What the explorer says when the numbers are not mathematics: f undefined at θ, a
non-finite Hessian, overflows, and a recursive residual that is only rounding.

Every solve here runs with warnings turned into errors: a numpy RuntimeWarning would be
printed on the Streamlit server's console.
"""

import numpy as np
import pytest

from trpo_viz.explorer import DEFAULT_TOL, CGSettings, CompiledProblem
from trpo_viz.inputs import InputError
from trpo_viz.krylov import final_ritz_copies

pytestmark = pytest.mark.filterwarnings("error")

SOURCE = "x1**3 + 2*x1*x2 + x2**2 - x1 + x3**2"
SOURCE_H = np.array([[18.0, 2, 0], [2, 2, 0], [0, 0, 2]])  # its Hessian at (3, 1, 5), by hand


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize(
    "text, theta, expected",
    [
        # log(−1) is undefined, though the formula's derivatives (1/x1, …) are finite there
        ("log(x1) + x2**2", [-1.0, 1.0], ["f(θ) is not finite at θ: f is undefined"]),
        ("sqrt(x1)*x2", [-4.0, 1.0], ["f(θ) is not finite at θ: f is undefined",
                                      "gradient ∇f(θ) has non-finite entries (2 of 2",
                                      "Hessian H = ∇²f(θ) has non-finite entries (4 of 4)"]),
        ("1/x1 + x2**2", [0.0, 1.0], ["f(θ) is not finite at θ: f is infinite",
                                      "gradient ∇f(θ) has non-finite entries (1 of 2: x1)",
                                      "Hessian H = ∇²f(θ) has non-finite entries"]),
    ],
)
def test_f_undefined_at_theta_is_a_problem_not_an_analysis(text, theta, expected, dtype):
    result = CompiledProblem(text, dtype=dtype).solve(theta, [1.0, 1.0])
    assert len(result.problems) == len(expected)
    for problem, start in zip(result.problems, expected, strict=True):
        assert start in problem
        assert "nan" not in problem.lower().replace("finite", "")
    # no references, spectrum or rounding notes built on meaningless numbers
    assert result.exact is None and result.eigenvalues is None and result.relative_errors is None
    assert result.hessian is not None  # formed (n = 2), so the page never says "n > 2000"
    assert result.notes == []
    assert result.to_dict()["problems"] == result.problems


def test_g_whose_norm_overflows_float64():
    result = CompiledProblem("x1**2 + x2**2").solve([1.0, 1.0], [1e308, 1e308])
    assert result.cg.stop_reason == "breakdown"
    assert len(result.problems) == 1
    assert result.problems[0].startswith("g's norm overflows float64")
    assert result.exact is None and result.steepest_descent is None


def test_g_beyond_float32_is_refused_with_what_happened():
    with pytest.raises(InputError, match=r"g overflows float32: entry 1 \(1e\+308\)"):
        CompiledProblem("x1**2 + x2**2", dtype="float32").solve([1.0, 1.0], [1e308, 1.0])
    with pytest.raises(InputError, match="θ overflows float32"):
        CompiledProblem("x1**2 + x2**2", dtype="float32").solve([1e39, 1.0], [1.0, 1.0])


def test_overflowing_curvature_is_a_breakdown_with_its_cause():
    # H = diag(2e100, 2), g = (1e110, 1): p_0ᵀHp_0 = 2e320 overflows float64
    result = CompiledProblem("1e100*x1**2 + x2**2").solve([1.0, 1.0], [1e110, 1.0])
    assert result.cg.stop_reason == "breakdown"
    assert result.problems == [result.problems[0]]
    assert result.problems[0].startswith("CG broke down at iteration k = 0: p_0ᵀ(H+λI)p_0")


def test_a_sound_problem_has_no_problems_and_reports_its_true_residual():
    result = CompiledProblem(SOURCE).solve([3, 1, 5], [3, 12, 6])
    assert result.problems == []
    assert result.settings.tol == DEFAULT_TOL["float64"] == 1e-10
    # CG's own check of its answer (one extra HVP) against numpy with the hand-derived H
    expected = np.linalg.norm(np.array([3.0, 12, 6]) - SOURCE_H @ result.solution)
    assert result.true_residual_norm == pytest.approx(expected, abs=1e-12)
    assert result.true_residual_norm <= 1e-10 * np.linalg.norm([3, 12, 6])
    document = result.to_dict()
    assert document["true_residual_norm"] == result.true_residual_norm
    assert document["tol"] == 1e-10 and document["problems"] == []


def test_float32_default_tolerance_is_within_its_reach():
    assert DEFAULT_TOL["float32"] >= 1e-6  # float32's ε ≈ 1.2e-7, times κ
    result = CompiledProblem(SOURCE, dtype="float32").solve([3, 1, 5], [3, 12, 6])
    assert result.settings.tol == DEFAULT_TOL["float32"]
    assert result.cg.stop_reason == "converged"
    g = np.array([3.0, 12, 6])
    true = np.linalg.norm(g - SOURCE_H @ result.solution)  # float64, independent of CG
    assert true <= 10 * DEFAULT_TOL["float32"] * np.linalg.norm(g)
    assert result.rounding_from is None and result.notes == []


def test_float32_below_its_reach_says_the_curve_is_rounding():
    """tol = 1e-10 in float32: the recursive ‖r_k‖ meets it, no iterate does."""
    n = 200
    result = CompiledProblem("@logistic_regression", n=n, dtype="float32").solve(
        np.zeros(n), np.ones(n), CGSettings(tol=1e-10, max_iter=n))
    g = np.ones(n)
    assert result.cg.stop_reason == "converged"
    recursive = result.cg.residual_norms[-1]
    assert recursive <= 1e-10 * np.linalg.norm(g)
    # the true residual of the answer, in float64 from the explicit H: orders of magnitude more
    true = np.linalg.norm(g - result.hessian @ result.solution)
    assert true > 100 * recursive
    assert result.true_residual_norm == pytest.approx(true, rel=0.5)  # CG's own float32 check
    assert result.rounding_from is not None
    assert np.all(result.cg.residual_norms[result.rounding_from:] < true)
    (note,) = [n for n in result.notes if "Ritz values" not in n]  # (its T_K has copies too)
    assert "'Converged' here only says" in note and "rounding, not convergence" in note
    assert f"{result.true_residuals[-1]:.2e}" in note  # the float64 one, from H
    assert result.to_dict()["rounding_from"] == result.rounding_from


def test_rounding_copies_of_ritz_values_are_named_in_the_notes():
    """f = ½ Σ λ_i x_i² with 37 eigenvalues in [0.01, 1] and 30, 60, 100: after 40 float32
    CG steps T_40 holds several Ritz values at each of the three (simple) outliers."""
    lams = np.concatenate([np.geomspace(1e-2, 1.0, 37), [30.0, 60.0, 100.0]])
    text = " + ".join(f"{lam / 2:.6g}*x{i + 1}**2" for i, lam in enumerate(lams))
    g = np.round(np.random.default_rng(0).normal(size=40), 3)
    result = CompiledProblem(text, dtype="float32").solve(np.zeros(40), g,
                                                          CGSettings(max_iter=40, tol=0.0))
    (note,) = [n for n in result.notes if "Ritz values of T_40" in n]
    values, copies = final_ritz_copies(result.cg.alphas, result.cg.betas,
                                       float(np.finfo(np.float32).eps))
    assert note.startswith(f"{copies.sum()} of the 40 Ritz values of T_40 repeat")
    assert "not further eigenvalues of H + λI" in note
    assert copies.sum() >= 4
    exact = np.sort(np.linalg.eigvalsh(result.hessian))
    np.testing.assert_allclose(exact[-3:], [30.0, 60.0, 100.0], rtol=1e-6)
    assert np.all(np.min(np.abs(values[copies][:, None] - exact[-3:]), axis=1) <= 1e-4 * 100)
    # the seed's example: three steps on a 3 × 3 Hessian leave nothing to copy
    source = CompiledProblem(SOURCE).solve([3.0, 1.0, 5.0], [3.0, 12.0, 6.0])
    assert not any("Ritz values" in n for n in source.notes)
