"""The CLI's solver choice (--method), Ritz values in cg's JSON, and the spectrum/cost commands."""

from __future__ import annotations

import json

import numpy as np
import pytest

from trpo_viz.cli import main as cli_main

EXPR = "x1**3 + 2*x1*x2 + x2**2 - x1 + x3**2"
EXACT = [-0.5625, 6.5625, 3.0]  # the source post's worked example
H = np.array([[18.0, 2.0, 0.0], [2.0, 2.0, 0.0], [0.0, 0.0, 2.0]])  # ∇²f at θ = (3, 1, 5)


def run_json(args, capsys) -> dict:
    assert cli_main(args) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("method", ["cg", "pcg", "minres", "sd"])
def test_every_method_reports_the_same_keys(method, capsys):
    out = run_json(["cg", "--expr", EXPR, "--theta", "3,1,5", "--g", "3,12,6", "--method",
                    method, "--max-iter", "30", "--json"], capsys)
    for key in ("n", "exact", "solution", "iterates", "residual_norms", "iterations",
                "stop_reason", "hvps", "ritz_values", "relative_errors", "hessian"):
        assert key in out, key
    assert out["method"] == method
    np.testing.assert_allclose(out["exact"], EXACT, rtol=1e-12)
    assert len(out["residual_norms"]) == len(out["iterates"]) == out["iterations"] + 1
    if method == "sd":
        assert out["ritz_values"] is None  # steepest descent builds no tridiagonal matrix
        assert out["relative_errors"][-1] < out["relative_errors"][0]
    else:
        np.testing.assert_allclose(out["solution"], EXACT, rtol=1e-8)
        # After n = 3 steps the Ritz values are the operator's eigenvalues: H's, or for
        # Jacobi PCG those of D^{-1/2} H D^{-1/2}, the matrix PCG runs CG on.
        scale = 1 / np.sqrt(np.diag(H)) if method == "pcg" else np.ones(3)
        operator = scale[:, None] * H * scale[None, :]
        np.testing.assert_allclose(out["ritz_values"][-1], np.linalg.eigvalsh(operator),
                                   rtol=1e-8)
        assert [len(v) for v in out["ritz_values"]] == list(range(1, out["iterations"] + 1))
    if method == "pcg":  # the Jacobi diagonal costs n products before the iterations
        assert out["hvps"] == out["iterations"] + 3


def test_spectrum_of_the_example_matches_numpy(capsys):
    out = run_json(["spectrum", "--expr", EXPR, "--theta", "3,1,5", "--k", "3", "--json"],
                   capsys)
    eigenvalues = np.linalg.eigvalsh(H)
    assert out["largest"][0] == pytest.approx(eigenvalues[-1], rel=1e-10)
    assert out["smallest"][0] == pytest.approx(eigenvalues[0], rel=1e-10)
    assert out["condition_estimate"] == pytest.approx(eigenvalues[-1] / eigenvalues[0], rel=1e-8)
    assert out["hvps"] >= 3


def test_cost_rows_have_the_documented_keys(capsys):
    assert cli_main(["cost", "--sizes", "100,300", "--iters", "3", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 2
    for row in rows:
        assert {"n", "explicit_seconds", "explicit_bytes", "hvp_cg_seconds",
                "hvp_cg_bytes"} <= set(row)
        assert row["hvp_cg_seconds"] > 0


@pytest.mark.parametrize(
    "args, message",
    [
        (["spectrum", "--expr", EXPR, "--theta", "3,1,5", "--k", "0"], "--k"),
        (["spectrum", "--expr", "x1 +* 2", "--theta", "1"], "error"),
        (["cost", "--sizes", "a,b"], "--sizes"),
        (["cost", "--sizes", "5"], "--sizes"),
        (["cost", "--sizes", "100", "--iters", "0"], "--iters"),
        (["cg", "--expr", EXPR, "--theta", "3,1,5", "--g", "3,12,6", "--method", "qr"], "qr"),
    ],
)
def test_bad_input_is_one_error_line(args, message, capsys):
    assert cli_main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and message in err[0]
