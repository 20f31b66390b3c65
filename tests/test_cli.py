"""`python -m trpo_viz cg`: the stable scripting interface, run as a user would (subprocess)."""

import json
import subprocess
import sys

import numpy as np
import pytest

SOURCE = "x1**3 + 2*x1*x2 + x2**2 - x1 + x3**2"


def run_cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "trpo_viz", *args], capture_output=True, text=True, timeout=120
    )


def test_json_output_of_the_source_example():
    done = run_cli("cg", "--expr", SOURCE, "--theta", "3,1,5", "--g", "3,12,6", "--json")
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    doc = json.loads(done.stdout)
    assert doc["n"] == 3 and doc["iterations"] == 3 and doc["stop_reason"] == "converged"
    np.testing.assert_allclose(doc["exact"], [-0.5625, 6.5625, 3.0])
    np.testing.assert_allclose(doc["solution"], [-0.5625, 6.5625, 3.0], atol=1e-10)
    assert len(doc["iterates"]) == len(doc["residual_norms"]) == 4
    assert doc["iterates"][0] == [0.0, 0.0, 0.0]
    assert doc["hessian"] == [[18.0, 2.0, 0.0], [2.0, 2.0, 0.0], [0.0, 0.0, 2.0]]


def test_table_output_and_options():
    done = run_cli(
        "cg",
        "--expr",
        "x1**2 + 3*x2**2 + x1*x2",
        "--theta=-1.2,1",
        "--g",
        "1,1",
        "--damping",
        "0.1",
        "--max-iter",
        "1",
        "--dtype",
        "float32",
        "--hvp",
        "forward",
    )
    assert done.returncode == 0, done.stderr
    assert "stop reason: max_iter after 1 iterations" in done.stdout
    assert "exact (H+λI)⁻¹g" in done.stdout
    h = np.array([[2.0, 1.0], [1.0, 6.0]]) + 0.1 * np.eye(2)
    expected = ", ".join(f"{v:.10g}" for v in np.linalg.solve(h, [1.0, 1.0]))
    assert f"exact (H+λI)⁻¹g:  {expected}" in done.stdout


def test_large_n_json_has_no_hessian():
    done = run_cli(
        "cg", "--expr", "x1**2 + x60**2", "--theta", "1", "--g", "1", "--json", "--max-iter", "5"
    )
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["n"] == 60 and doc["hessian"] is None and doc["exact"] is None  # singular H


@pytest.mark.parametrize(
    "args, fragment",
    [
        (
            ["cg", "--expr", "x1 + foo(x2)", "--theta", "1,1", "--g", "1,1"],
            "unknown function 'foo'",
        ),
        (["cg", "--expr", "x1*x2", "--theta", "1,1,1", "--g", "1,1"], "--theta has 3 entries"),
        (["cg", "--expr", "x1*x2", "--theta", "-1,1", "--g", "1,1"], "--theta=-1.2,1"),
        (["cg", "--expr", "x1*x2", "--theta", "1,1", "--g", "1,nan"], "finite"),
        (
            ["cg", "--expr", "x1*x2", "--theta", "1,1", "--g", "1,1", "--dtype", "float16"],
            "float16",
        ),
        (
            ["cg", "--expr", "x1*x2", "--theta", "1,1", "--g", "1,1", "--max-iter", "-3"],
            "max iterations",
        ),
        (["cg", "--expr", "__import__('os').system('true')", "--theta", "1", "--g", "1"], "column"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_bad_input_exits_2_with_one_line(args, fragment):
    done = run_cli(*args)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    assert fragment in lines[0]
    assert "Traceback" not in done.stderr


def test_help_mentions_the_equals_form_for_negative_values():
    done = run_cli("cg", "--help")
    assert done.returncode == 0
    assert "--theta=-1.2,1" in done.stdout
