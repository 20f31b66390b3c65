"""Command line: everything the app shows, headless.

    python -m trpo_viz cg --expr EXPR --theta 3,1,5 --g 3,12,6 [--json] ...
    python -m trpo_viz train --env CartPole-v1 --steps 100000 ...

Bad input exits with status 2 and one line ``error: …`` on stderr.
"""

from __future__ import annotations

import argparse
import json
import sys

from trpo_viz.quiet import import_tensorflow

VECTOR_HELP = (
    "comma-separated numbers; write negative values with '=', e.g. --theta=-1.2,1 "
    "(a single number is repeated n times)"
)


class UsageError(Exception):
    """Bad command-line input: reported as one line, exit status 2."""


class ArgumentParser(argparse.ArgumentParser):
    def error(self, message):  # argparse's default prints usage over several lines
        if "expected one argument" in message:
            message += " (for negative numbers write the '=' form: --theta=-1.2,1)"
        raise UsageError(message)


def _add_cg_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "cg",
        help="solve H x = g by conjugate gradient on Hessian-vector products",
        description=(
            "Solve (H + λI) x = g, H the Hessian of EXPR at θ, by conjugate gradient "
            "using only Hessian-vector products; compare every iterate with the exact solution. "
            "Negative vector entries need the '=' form: --theta=-1.2,1"
        ),
    )
    p.add_argument(
        "--expr",
        required=True,
        help="f(θ) in x1..xn, e.g. 'x1**3 + 2*x1*x2 + x2**2 - x1 + x3**2', "
        "or a built-in such as @logistic_regression",
    )
    p.add_argument("--theta", required=True, help=f"the point θ: {VECTOR_HELP}")
    p.add_argument("--g", required=True, help=f"the right-hand side g: {VECTOR_HELP}")
    p.add_argument("--x0", help=f"starting point (default zeros): {VECTOR_HELP}")
    p.add_argument("--n", type=int, help="dimension (default: highest variable index)")
    p.add_argument("--damping", type=float, default=0.0, help="λ added to H's diagonal (default 0)")
    p.add_argument("--max-iter", type=int, help="most CG iterations (default n)")
    p.add_argument(
        "--tol",
        type=float,
        default=1e-10,
        help="relative residual tolerance: stop when ‖r‖ ≤ tol·‖g‖ (default 1e-10)",
    )
    p.add_argument("--dtype", choices=["float64", "float32"], default="float64")
    p.add_argument(
        "--hvp",
        choices=["reverse", "forward"],
        default="reverse",
        help="HVP mode: reverse-over-reverse or forward-over-reverse",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")


def _run_cg(args) -> int:
    # Imported here so that `--help` and argument errors answer without loading TensorFlow.
    from trpo_viz.explorer import CGSettings, CompiledProblem
    from trpo_viz.inputs import parse_vector

    problem = CompiledProblem(args.expr, n=args.n, dtype=args.dtype, hvp_mode=args.hvp)
    n = problem.n
    theta = parse_vector(args.theta, "--theta", n)
    g = parse_vector(args.g, "--g", n)
    x0 = None if args.x0 is None else parse_vector(args.x0, "--x0", n)
    settings = CGSettings(damping=args.damping, max_iter=args.max_iter, tol=args.tol)
    result = problem.solve(theta, g, settings, x0=x0)
    if args.json:
        print(json.dumps(result.to_dict(), allow_nan=False))
    else:
        print(format_result(result))
    return 0


def format_result(result) -> str:
    """The readable report: iterates table, CG solution, exact solution, error."""
    from trpo_viz.inputs import format_vector

    cg = result.cg
    show = min(result.n, 4)
    lines = [
        f"f(θ) = {result.text}   n = {result.n}   dtype = {result.dtype}   HVP: {result.hvp_mode}"
    ]
    header = f"{'k':>4} {'‖r_k‖':>12} {'α_k':>12} {'β_k':>12} {'p_kᵀAp_k':>12} {'rel.err':>10}  x_k"
    lines += ["", header, "-" * len(header)]
    for k in range(cg.iterations + 1):
        cells = [f"{k:>4}", f"{cg.residual_norms[k]:>12.4e}"]
        for arr in (cg.alphas, cg.betas, cg.curvatures):
            cells.append(f"{arr[k]:>12.4e}" if k < len(arr) else f"{'':>12}")
        err = result.relative_errors
        cells.append(f"{err[k]:>10.2e}" if err is not None else f"{'-':>10}")
        xk = format_vector(cg.iterates[k][:show], 6) + (", …" if result.n > show else "")
        lines.append(" ".join(cells) + "  " + xk)
    if cg.stop_reason == "negative_curvature":
        lines.append(f"{cg.iterations:>4} stopped: p_kᵀ(H+λI)p_k = {cg.curvatures[-1]:.4e} ≤ 0")
    lines += [
        "",
        f"stop reason: {cg.stop_reason} after {cg.iterations} iterations ({cg.matvecs} HVPs)",
        f"CG solution:      {format_vector(cg.x, 10)}",
    ]
    if result.exact is not None:
        lines.append(f"exact H⁻¹g:       {format_vector(result.exact, 10)}")
    elif result.hessian is not None:
        lines.append("exact H⁻¹g:       not computable (H is singular)")
    if result.settings.damping > 0 and result.reference is not None:
        lines.append(f"exact (H+λI)⁻¹g:  {format_vector(result.reference, 10)}")
    if result.final_error is not None:
        lines.append(f"relative error:   {result.final_error:.3e}")
    if result.condition_number is not None:
        lines.append(f"condition number: {result.condition_number:.4g}")
    return "\n".join(lines)


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="python -m trpo_viz", description=__doc__.split("\n")[0])
    subparsers = parser.add_subparsers(dest="command", required=True, parser_class=ArgumentParser)
    _add_cg_parser(subparsers)
    try:
        from trpo_viz.trpo.command import add_train_parser
    except ImportError:  # the TRPO engine is optional for `cg`
        add_train_parser = None
    if add_train_parser is not None:
        add_train_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    import_tensorflow()  # first, so no module imports it noisily
    try:
        args = build_parser().parse_args(argv)
        if args.command == "cg":
            return _run_cg(args)
        from trpo_viz.trpo.command import run_train

        return run_train(args)
    except (UsageError, ValueError) as error:
        if not isinstance(error, (UsageError, *_user_errors())):
            raise  # a bug, not bad input: keep the traceback
        message = " ".join(str(error).split())
        print(f"error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130


def _user_errors() -> tuple[type[ValueError], ...]:
    from trpo_viz.expr import ExpressionError
    from trpo_viz.inputs import InputError

    errors: tuple[type[ValueError], ...] = (ExpressionError, InputError)
    try:
        from trpo_viz.trpo.command import TrainUsageError
    except ImportError:
        return errors
    return (*errors, TrainUsageError)
