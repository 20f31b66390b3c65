"""The ``spectrum`` and ``cost`` subcommands: H's spectrum without forming H, and what
Hessian-free saves.

    python -m trpo_viz spectrum --expr EXPR --theta 3,1,5 [--k 30] [--json]
    python -m trpo_viz cost --sizes 100,1000,10000 [--iters 10] [--json]

Input is checked before TensorFlow is imported; bad input raises
:class:`SpectrumUsageError` / :class:`CostUsageError`, printed as one ``error:`` line.
"""

from __future__ import annotations

import json

from trpo_viz.quiet import import_tensorflow

MAX_LANCZOS_STEPS = 500
MAX_COST_N = 1_000_000
MAX_COST_ITERS = 200


class SpectrumUsageError(ValueError):
    """Bad ``spectrum`` input."""


class CostUsageError(ValueError):
    """Bad ``cost`` input."""


def add_spectrum_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "spectrum",
        help="extreme eigenvalues of H by Lanczos on Hessian-vector products",
        description="Lanczos with full reorthogonalisation on H = ∇²f(θ), touching H only "
        "through products: the largest and smallest Ritz values with their residual bounds "
        "(an eigenvalue of H lies within each bound), and a condition-number estimate. "
        "Negative vector entries need the '=' form: --theta=-1.2,1",
    )
    p.add_argument("--expr", required=True, help="f(θ) in x1..xn, or @logistic_regression")
    p.add_argument("--theta", required=True, help="the point θ (a single number is repeated)")
    p.add_argument("--n", type=int, help="dimension (default: highest variable index)")
    p.add_argument("--k", type=int, default=30, help="Lanczos steps = HVPs (default 30)")
    p.add_argument("--seed", type=int, default=0, help="random start vector's seed")
    p.add_argument("--dtype", choices=["float64", "float32"], default="float64")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def run_spectrum(args) -> int:
    from trpo_viz.inputs import InputError, parse_vector
    from trpo_viz.objectives import check_objective

    if not 1 <= args.k <= MAX_LANCZOS_STEPS:
        raise SpectrumUsageError(f"--k must be from 1 to {MAX_LANCZOS_STEPS}, got {args.k}")
    try:
        n = check_objective(args.expr, args.n)
        theta = parse_vector(args.theta, "--theta", n)
    except InputError as error:
        raise SpectrumUsageError(str(error)) from None
    import_tensorflow()
    from trpo_viz.hessian_operator import ObjectiveHessian
    from trpo_viz.spectrum import hessian_spectrum

    op = ObjectiveHessian(args.expr, n=args.n, dtype=args.dtype)
    estimate = hessian_spectrum(op, theta, k=min(args.k, n), seed=args.seed)
    document = estimate.to_dict()
    if args.json:
        print(json.dumps(document, allow_nan=False))
        return 0
    print(f"f(θ) = {args.expr}   n = {n}   Lanczos steps k = {document['k']} "
          f"({document['hvps']} HVPs)")
    for name in ("largest", "smallest"):
        bounds = document[f"{name}_residual_bounds"]
        print(f"\n{name} Ritz values (best first) ± residual bound:")
        for value, bound in zip(document[name], bounds, strict=True):
            shown = "—" if bound is None else f"{bound:.2e}"
            print(f"  {value:>16.10g}  ± {shown}")
    condition = document["condition_estimate"]
    print(f"\ncondition estimate θ_max/θ_min: {'—' if condition is None else f'{condition:.6g}'}"
          " (a lower bound on κ when H is positive definite)")
    if document.get("exact_largest") is not None:
        print(f"exact extremes (n ≤ 2,000, from the explicit H): largest "
              f"{document['exact_largest'][0]:.10g}, smallest {document['exact_smallest'][0]:.10g}")
    return 0


def add_cost_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "cost",
        help="time and memory: explicit Hessian + dense solve vs Hessian-free CG",
        description="For an MLP-shaped loss with N parameters, measure forming H explicitly "
        "and solving (skipped beyond a memory budget) against k CG iterations on HVPs.",
    )
    p.add_argument("--sizes", required=True, help="comma-separated N, e.g. 100,1000,10000")
    p.add_argument("--iters", type=int, default=10, help="CG iterations k (default 10)")
    p.add_argument("--json", action="store_true", help="print a JSON list of rows")


def run_cost(args) -> int:
    try:
        sizes = [int(part) for part in args.sizes.split(",") if part.strip()]
    except ValueError:
        raise CostUsageError(f"--sizes must be comma-separated integers, got {args.sizes!r}") \
            from None
    if not sizes or len(sizes) > 12 or any(not 10 <= n <= MAX_COST_N for n in sizes):
        raise CostUsageError(f"--sizes: 1 to 12 sizes, each from 10 to {MAX_COST_N:,}")
    if not 1 <= args.iters <= MAX_COST_ITERS:
        raise CostUsageError(f"--iters must be from 1 to {MAX_COST_ITERS}, got {args.iters}")
    import_tensorflow()
    from trpo_viz.cost import CostLab

    rows, fits = CostLab().run(sizes, args.iters)
    if args.json:
        print(json.dumps([row.to_dict() for row in rows], allow_nan=False))
        return 0
    print(f"{'N':>9} {'explicit s':>11} {'explicit MiB':>13} {'HVP-CG s':>9} {'HVP-CG MiB':>11}")
    for row in rows:
        d = row.to_dict()
        explicit = "skipped" if d["explicit_seconds"] is None else f"{d['explicit_seconds']:.3g}"
        explicit_mib = ("—" if d["explicit_bytes"] is None
                        else f"{d['explicit_bytes'] / 2**20:.3g}")
        cg_mib = "—" if d["hvp_cg_bytes"] is None else f"{d['hvp_cg_bytes'] / 2**20:.3g}"
        print(f"{d['n']:>9,} {explicit:>11} {explicit_mib:>13} {d['hvp_cg_seconds']:>9.3g} "
              f"{cg_mib:>11}")
    for note in getattr(fits, "notes", []) or []:
        print(note)
    return 0
