"""Command line: everything the app shows, headless.

    python -m trpo_viz cg --expr EXPR --theta 3,1,5 --g 3,12,6 [--json] ...
    python -m trpo_viz train --env CartPole-v1 --steps 100000 ...
    python -m trpo_viz runs list | show | export | export-html | import | rename | delete
    python -m trpo_viz sweep --env CartPole-v1 --grid max_kl=0.001,0.01 --seeds 3 ...
    python -m trpo_viz spectrum --expr EXPR --theta ... [--k 30] [--json]
    python -m trpo_viz cost --sizes 100,1000,10000 [--iters 10] [--json]

Bad input exits with status 2 and one line ``error: …`` on stderr. Input is parsed
and checked before TensorFlow is imported, so a refusal costs a fraction of that
import: ``cg`` checks the expression, its dimension, the vectors and the options
first. The other subcommands live in their own modules (:data:`SUBCOMMANDS`); a
module is imported only when the command line names its subcommand (or asks for
the top-level help), so ``train``'s TensorFlow never delays a ``cg`` refusal.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import sys
from collections.abc import Collection

from trpo_viz.quiet import import_tensorflow

VECTOR_HELP = (
    "comma-separated numbers; write negative values with '=', e.g. --theta=-1.2,1 "
    "(a single number is repeated n times)"
)


class UsageError(Exception):
    """Bad command-line input: reported as one line, exit status 2."""


# The subcommands defined in modules of their own. Each module has, for its NAME,
# ``add_NAME_parser(subparsers)``, ``run_NAME(args) -> exit status`` and a ValueError
# subclass ``<Name>UsageError`` for bad input (printed as one line, exit status 2).
SUBCOMMANDS = {
    "train": "trpo_viz.trpo.command",
    "runs": "trpo_viz.runs.command",
    "sweep": "trpo_viz.sweep.command",
    "spectrum": "trpo_viz.lab_command",
    "cost": "trpo_viz.lab_command",
}


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
        default=None,
        help="relative residual tolerance: stop when ‖r‖ ≤ tol·‖g‖ "
        "(default 1e-10 in float64, 1e-5 in float32)",
    )
    p.add_argument(
        "--method",
        choices=["cg", "pcg", "minres", "sd"],
        default="cg",
        help="solver: conjugate gradient (default), Jacobi-preconditioned CG, MINRES "
        "(indefinite or singular H) or steepest descent; the JSON keys are the same",
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
    # Everything that can be refused is checked before TensorFlow is imported.
    from trpo_viz.inputs import parse_vector
    from trpo_viz.objectives import check_objective

    n = check_objective(args.expr, args.n)
    theta = parse_vector(args.theta, "--theta", n)
    g = parse_vector(args.g, "--g", n)
    x0 = None if args.x0 is None else parse_vector(args.x0, "--x0", n)
    _check_cg_options(args)

    import_tensorflow()
    from trpo_viz.explorer import CGSettings, CompiledProblem

    problem = CompiledProblem(args.expr, n=args.n, dtype=args.dtype, hvp_mode=args.hvp)
    settings = CGSettings(damping=args.damping, max_iter=args.max_iter, tol=args.tol)
    result = problem.solve(theta, g, settings, x0=x0)
    if args.method != "cg":
        document = _other_method(args, result, theta, g, x0)
        if args.json:
            print(json.dumps(document, allow_nan=False))
        else:
            print(_format_other_method(document))
        return 0
    if args.json:
        from trpo_viz.krylov import ritz_values

        document = result.to_dict()
        document["method"] = "cg"
        document["hvps"] = result.cg.matvecs
        document["ritz_values"] = [v.tolist() for v in ritz_values(result.cg.alphas,
                                                                   result.cg.betas)]
        print(json.dumps(document, allow_nan=False))
    else:
        print(format_result(result))
    return 0


def _other_method(args, result, theta, g, x0) -> dict:
    """The explorer's JSON document with the solve replaced by ``args.method``'s.

    The references (exact solution, spectrum, H) stay; the per-iterate errors are
    recomputed for the method's iterates against the same exact (H+λI)⁻¹g.
    """
    import numpy as np

    from trpo_viz import analysis
    from trpo_viz.hessian_operator import ObjectiveHessian
    from trpo_viz.lineup import result_summary
    from trpo_viz.serialize import to_jsonable

    settings = result.settings
    op = ObjectiveHessian(args.expr, n=args.n, dtype=args.dtype, hvp_mode=args.hvp)
    with op.at(theta):
        solved = op.suite.solve(args.method, g, x0=x0, damping=settings.damping,
                                max_iter=settings.max_iter, rtol=settings.tol)
    document = result.to_dict()
    document.update(result_summary(args.method, solved))
    document["hvp_count"] = document["hvps"]
    for key in ("alphas", "betas", "curvatures"):
        document.setdefault(key, None)
    iterates = np.asarray(solved.iterates, np.float64)
    if result.reference is not None and result.hessian is not None:
        damped = result.hessian + settings.damping * np.eye(result.n)
        errors = analysis.relative_errors(iterates, result.reference)
        document["relative_errors"] = to_jsonable(errors)
        document["final_error"] = to_jsonable(float(errors[-1]))
        positive = result.eigenvalues is not None and result.eigenvalues[0] > 0
        document["a_norm_errors"] = (to_jsonable(analysis.a_norm_errors(
            iterates, result.reference, damped)) if positive else None)
    else:
        document["relative_errors"] = document["a_norm_errors"] = document["final_error"] = None
    document["error_bound"] = None  # the CG bound says nothing about another method
    return document


def _format_other_method(document: dict) -> str:
    from trpo_viz.inputs import format_vector

    lines = [f"f(θ) = {document['expr']}   n = {document['n']}   method = {document['method']}",
             "", f"{'k':>4} {'‖r_k‖':>12} {'rel.err':>10}"]
    errors = document.get("relative_errors")
    for k, norm in enumerate(document["residual_norms"]):
        error = None if errors is None else errors[k]
        lines.append(f"{k:>4} {_number(norm, '.4e', 12)} {_number(error, '.2e', 10)}")
    lines += [
        "",
        f"stop reason: {document['stop_reason']} after {document['iterations']} iterations "
        f"({document['hvps']} HVPs, set-up included)",
        f"‖g − (H+λI)x‖:    {_number(document.get('true_residual_norm'), '.4e')}",
        f"solution:         {format_vector(document['solution'], 10)}",
    ]
    if document.get("exact") is not None:
        lines.append(f"exact H⁻¹g:       {format_vector(document['exact'], 10)}")
    return "\n".join(lines)


def _check_cg_options(args) -> None:
    """The options' domains (the solver's own caps are checked again by CGSettings)."""
    from trpo_viz.inputs import InputError

    if not (math.isfinite(args.damping) and args.damping >= 0):
        raise InputError(f"damping λ (--damping) must be a finite number ≥ 0, got {args.damping}")
    if args.tol is not None and not 0.0 <= args.tol <= 1.0:  # False for NaN
        raise InputError(f"tolerance (--tol) must be between 0 and 1, got {args.tol}")
    if args.max_iter is not None and args.max_iter < 0:
        raise InputError(f"max iterations (--max-iter) must be 0 or more, got {args.max_iter}")


UNDEFINED = "—"  # printed for a number that is not defined (NaN), never "nan"


def _number(value, spec: str, width: int = 0) -> str:
    """``value`` formatted with ``spec``, or an em dash when it is None or NaN."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return f"{UNDEFINED:>{width}}"
    return f"{value:>{width}{spec}}"


def format_result(result) -> str:
    """The readable report: iterates table, CG solution, exact solution, error, residuals."""
    from trpo_viz.inputs import format_vector

    cg = result.cg
    show = min(result.n, 4)
    lines = [
        f"f(θ) = {result.text}   n = {result.n}   dtype = {result.dtype}   HVP: {result.hvp_mode}"
    ]
    header = f"{'k':>4} {'‖r_k‖':>12} {'α_k':>12} {'β_k':>12} {'p_kᵀAp_k':>12} {'rel.err':>10}  x_k"
    lines += ["", header, "-" * len(header)]
    for k in range(cg.iterations + 1):
        cells = [f"{k:>4}", _number(float(cg.residual_norms[k]), ".4e", 12)]
        for arr in (cg.alphas, cg.betas, cg.curvatures):
            cells.append(_number(float(arr[k]), ".4e", 12) if k < len(arr) else f"{'':>12}")
        err = result.relative_errors
        cells.append(_number(None if err is None else float(err[k]), ".2e", 10))
        xk = format_vector(cg.iterates[k][:show], 6) + (", …" if result.n > show else "")
        lines.append(" ".join(cells) + "  " + xk)
    if cg.stop_reason == "negative_curvature":
        curvature = _number(float(cg.curvatures[-1]), ".4e")
        lines.append(f"{cg.iterations:>4} stopped: p_kᵀ(H+λI)p_k = {curvature} ≤ 0")
    lines += [
        "",
        f"stop reason: {cg.stop_reason} after {cg.iterations} iterations ({cg.matvecs} HVPs)",
        f"final ‖r‖:        {_number(float(cg.residual_norms[-1]), '.4e')} (recursive, "
        f"as CG updates it)",
        f"‖g − (H+λI)x‖:    {_number(cg.true_residual_norm, '.4e')} (true residual of the "
        f"CG solution)",
        f"CG solution:      {format_vector(cg.x, 10)}",
    ]
    if result.exact is not None:
        lines.append(f"exact H⁻¹g:       {format_vector(result.exact, 10)}")
    elif result.hessian is not None:
        lines.append("exact H⁻¹g:       not computable (H is singular)")
    if result.settings.damping > 0 and result.reference is not None:
        lines.append(f"exact (H+λI)⁻¹g:  {format_vector(result.reference, 10)}")
    if result.final_error is not None:
        lines.append(f"relative error:   {_number(result.final_error, '.3e')}")
    if result.condition_number is not None:
        lines.append(f"condition number: {_number(result.condition_number, '.4g')}")
    return "\n".join(lines)


def build_parser(load: Collection[str] | None = None) -> ArgumentParser:
    """The whole command line; only the subcommands in ``load`` (None: all) import their module.

    The others are registered by name, so that ``cg`` input and an unknown command are
    refused without importing, say, ``train``'s module (which imports TensorFlow).
    """
    parser = ArgumentParser(prog="python -m trpo_viz", description=__doc__.split("\n")[0])
    subparsers = parser.add_subparsers(dest="command", required=True, parser_class=ArgumentParser)
    _add_cg_parser(subparsers)
    for name, module_name in SUBCOMMANDS.items():
        module = None
        if load is None or name in load:
            try:
                module = importlib.import_module(module_name)
            except ImportError:  # an optional engine: the other commands still work
                module = None
        if module is not None:
            getattr(module, f"add_{name}_parser")(subparsers)
        else:  # by name only; its arguments are parsed once its module is loaded
            stub = subparsers.add_parser(name, help=f"(see python -m trpo_viz {name} --help)")
            stub.add_argument("arguments", nargs=argparse.REMAINDER)
    return parser


def _subcommands_to_load(argv: list[str]) -> Collection[str] | None:
    """The subcommand modules the command line needs: the one it names; all for the help."""
    if argv and argv[0] in ("-h", "--help"):
        return None
    return {argv[0]} & SUBCOMMANDS.keys() if argv else set()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        args = build_parser(load=_subcommands_to_load(argv)).parse_args(argv)
        if args.command == "cg":
            return _run_cg(args)
        try:
            module = importlib.import_module(SUBCOMMANDS[args.command])
        except ImportError as error:
            raise UsageError(f"'{args.command}' is not available here: {error}") from None
        return getattr(module, f"run_{args.command}")(args)
    except (UsageError, ValueError) as error:
        if not isinstance(error, (UsageError, *_user_errors())):
            raise  # a bug, not bad input: keep the traceback
        message = " ".join(str(error).split())
        print(f"error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader of stdout left early (`… --json | head`)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no error at exit
        return 141


def _user_errors() -> tuple[type[ValueError], ...]:
    """Errors that mean bad input: cg's, and those of the subcommand modules loaded."""
    from trpo_viz.expr import ExpressionError
    from trpo_viz.inputs import InputError

    errors: list[type[ValueError]] = [ExpressionError, InputError]
    for name, module_name in SUBCOMMANDS.items():
        error = getattr(sys.modules.get(module_name), f"{name.capitalize()}UsageError", None)
        if error is not None:
            errors.append(error)
    return tuple(errors)
