"""`python -m trpo_viz cg`: the stable scripting interface, run as a user would (subprocess)."""

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCE = "x1**3 + 2*x1*x2 + x2**2 - x1 + x3**2"
TIMEOUT_S = 300  # a TensorFlow import on a loaded 2-core machine: headroom, not a budget


def run_cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "trpo_viz", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
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


def report_number(stdout: str, label: str) -> str:
    """The first word after ``label`` on its line of the text report."""
    line = next(line for line in stdout.splitlines() if line.startswith(label))
    return line[len(label) :].split()[0]


def test_table_reports_the_true_residual_beside_the_recursive_one():
    done = run_cli("cg", "--expr", SOURCE, "--theta", "3,1,5", "--g", "3,12,6")
    assert done.returncode == 0, done.stderr
    g_norm = np.linalg.norm([3.0, 12.0, 6.0])
    recursive = float(report_number(done.stdout, "final ‖r‖:"))
    true = float(report_number(done.stdout, "‖g − (H+λI)x‖:"))
    assert 0 <= recursive <= 1e-10 * g_norm  # converged at the default tol = 1e-10
    # x is within rounding of H⁻¹g = (−0.5625, 6.5625, 3): ‖g − Hx‖ ≪ ‖g‖, not exactly 0
    assert 0 <= true <= 1e-10 * g_norm


def test_undefined_numbers_print_as_a_dash_not_nan():
    # sqrt(x1) at x1 = −1: f and its Hessian are NaN, CG breaks down on p₀ᵀHp₀ = NaN.
    done = run_cli("cg", "--expr", "sqrt(x1) + x2**2", "--theta=-1,1", "--g", "1,1")
    assert done.returncode == 0, done.stderr
    assert "stop reason: breakdown" in done.stdout
    assert not re.search(r"\bnan\b", done.stdout, re.IGNORECASE), done.stdout
    assert report_number(done.stdout, "‖g − (H+λI)x‖:") == "—"
    first_row = next(line for line in done.stdout.splitlines() if line.startswith("   0 "))
    assert "—" in first_row  # p₀ᵀAp₀ and the relative error are undefined


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


# main() in a fresh interpreter: exit status, stderr, and whether TensorFlow was imported.
NO_TENSORFLOW = """
import sys
from trpo_viz.cli import main
try:
    status = main(sys.argv[1:])
except SystemExit as done:  # --help
    status = done.code
assert "tensorflow" not in sys.modules, "TensorFlow was imported"
sys.exit(status)
"""


@pytest.mark.parametrize(
    "args",
    [
        ["cg", "--expr", "x1 +* 2", "--theta", "1", "--g", "1"],
        ["cg", "--expr", "__import__('os').system('true')", "--theta", "1", "--g", "1"],
        ["cg", "--expr", "x1*x2", "--theta", "1", "--g", "1", "--n", "0"],
        ["cg", "--expr", "@no_such_builtin", "--theta", "1", "--g", "1"],
        ["cg", "--expr", "x1*x2", "--theta", "1,2,3", "--g", "1"],
        ["cg", "--expr", "x1*x2", "--theta", "1", "--g", "1", "--x0", "1,x"],
        ["cg", "--expr", "x1*x2", "--theta", "1", "--g", "1", "--tol", "2"],
        ["cg", "--expr", "x1*x2", "--theta", "1", "--g", "1", "--damping", "-1"],
        ["cg", "--expr", "x1*x2", "--theta", "1", "--g", "1", "--max-iter", "-1"],
        ["cg", "--expr", "x1*x2", "--theta", "1", "--g", "1", "--dtype", "float16"],
        ["cg", "--theta", "1", "--g", "1"],
        ["frobnicate"],
        ["runs", "frobnicate"],
    ],
)
def test_refusals_come_before_tensorflow_is_imported(args):
    """A refusal costs a parse, not a TensorFlow import (checked by module, not by clock)."""
    done = subprocess.run(
        [sys.executable, "-c", NO_TENSORFLOW, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )
    assert "TensorFlow was imported" not in done.stderr
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr


def test_cg_help_does_not_import_tensorflow():
    done = subprocess.run(
        [sys.executable, "-c", NO_TENSORFLOW, "cg", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )
    assert "TensorFlow was imported" not in done.stderr
    assert done.returncode == 0, done.stderr
    assert "--theta" in done.stdout


def test_top_level_help_lists_every_command():
    done = run_cli("--help")
    assert done.returncode == 0, done.stderr
    assert "train a TRPO policy" in done.stdout and "conjugate gradient" in done.stdout
    from trpo_viz.cli import SUBCOMMANDS

    listed = set(re.search(r"\{([\w,]+)\}", done.stdout)[1].split(","))
    assert listed == {"cg", *SUBCOMMANDS}


def test_help_mentions_the_equals_form_for_negative_values():
    done = run_cli("cg", "--help")
    assert done.returncode == 0
    assert "--theta=-1.2,1" in done.stdout
