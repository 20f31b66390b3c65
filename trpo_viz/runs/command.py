"""The ``runs`` subcommand: the run library on the command line.

    python -m trpo_viz runs list [--json]
    python -m trpo_viz runs show ID [--json]
    python -m trpo_viz runs export ID OUT.zip
    python -m trpo_viz runs export-html ID OUT.html
    python -m trpo_viz runs import FILE.zip [--name NAME]
    python -m trpo_viz runs rename ID NAME
    python -m trpo_viz runs delete ID

The store is ``$TRPO_VIZ_HOME/runs.sqlite3`` (default ``~/.trpo-viz``); ``--db`` names
another file. Errors (unknown ids, foreign or newer databases, bad files) raise
:class:`RunsUsageError`, which the CLI prints as one ``error:`` line with exit status 2.
"""

from __future__ import annotations

import datetime
import json
from pathlib import Path

MAX_IMPORT_BYTES = 50 * 2**20


class RunsUsageError(ValueError):
    """Bad ``runs`` input; printed as ``error: <message>``, exit status 2."""


def add_runs_parser(subparsers) -> None:
    parser = subparsers.add_parser("runs", help="list, show, export, import and delete stored runs",
                                   description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", default=None, help="run store file (default: "
                        "$TRPO_VIZ_HOME/runs.sqlite3, else ~/.trpo-viz/runs.sqlite3)")
    actions = parser.add_subparsers(dest="runs_command", required=True)
    listing = actions.add_parser("list", help="the stored runs, newest first")
    listing.add_argument("--json", action="store_true")
    show = actions.add_parser("show", help="one run: its settings and summary")
    show.add_argument("id")
    show.add_argument("--json", action="store_true")
    export = actions.add_parser("export", help="write a run as a zip archive")
    export.add_argument("id")
    export.add_argument("out")
    html = actions.add_parser("export-html", help="write a run as one self-contained HTML file")
    html.add_argument("id")
    html.add_argument("out")
    imp = actions.add_parser("import", help="store a run from a zip archive")
    imp.add_argument("file")
    imp.add_argument("--name", default=None)
    rename = actions.add_parser("rename", help="rename a run")
    rename.add_argument("id")
    rename.add_argument("name")
    delete = actions.add_parser("delete", help="delete a run and everything stored with it")
    delete.add_argument("id")


def run_runs(args) -> int:
    from trpo_viz.runs.schema import StoreError
    from trpo_viz.runs.store import RunStore

    try:
        readonly = args.runs_command in ("list", "show", "export", "export-html")
        path = Path(args.db) if args.db else None
        if readonly and path is None:
            from trpo_viz.runs.store import default_db_path

            if not default_db_path().exists():
                return _print_empty(args)
        with RunStore(path, readonly=readonly) as store:
            return _dispatch(store, args)
    except StoreError as error:
        raise RunsUsageError(str(error)) from None


def _print_empty(args) -> int:
    if args.runs_command == "list":
        print("[]" if args.json else "no stored runs")
        return 0
    raise RunsUsageError(f"there is no run {args.id!r} in the run store (it is empty)")


def _dispatch(store, args) -> int:
    from trpo_viz.runs.schema import StoreError

    command = args.runs_command
    if command == "list":
        runs = store.runs()
        if args.json:
            print(json.dumps([_summary(r) for r in runs]))
        else:
            print(_table(runs))
        return 0
    if command == "show":
        info = store.run(args.id)
        if args.json:
            print(json.dumps(info.to_dict()))
        else:
            for key, value in _summary(info).items():
                print(f"{key:>18}: {value}")
        return 0
    if command == "export":
        from trpo_viz.runs.archive import export_run

        _write(args.out, export_run(store, args.id))
        return 0
    if command == "export-html":
        from trpo_viz.runs.html import export_html

        _write(args.out, export_html(store, args.id).encode())
        return 0
    if command == "import":
        from trpo_viz.runs.archive import import_run

        path = Path(args.file)
        if not path.is_file():
            raise RunsUsageError(f"{args.file}: no such file")
        if path.stat().st_size > MAX_IMPORT_BYTES:
            raise RunsUsageError(f"{args.file}: larger than {MAX_IMPORT_BYTES // 2**20} MiB")
        try:
            run_id = import_run(store, path.read_bytes(), name=args.name)
        except StoreError:
            raise
        except ValueError as error:  # the archive's own validation: a bad file, not a bug
            raise RunsUsageError(f"{args.file}: {error}") from None
        print(run_id)
        return 0
    if command == "rename":
        store.rename(args.id, args.name)
        return 0
    if command == "delete":
        info = store.run(args.id)
        if info.status in ("starting", "running"):
            raise RunsUsageError(f"run {args.id} is training: pause or stop it first")
        store.delete(args.id)
        return 0
    raise RunsUsageError(f"unknown runs command {command!r}")


def _write(out: str, data: bytes) -> None:
    path = Path(out)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    except OSError as error:
        raise RunsUsageError(f"{out}: {error.strerror}") from None


def _summary(info) -> dict:
    return {
        "id": info.id,
        "name": info.name,
        "env_id": info.env_id,
        "status": info.status,
        "updates": info.updates,
        "total_timesteps": info.total_timesteps,
        "best_mean_return": info.best_mean_return,
        "created": datetime.datetime.fromtimestamp(info.created, datetime.UTC).isoformat(),
        "source": info.source,
    }


def _table(runs) -> str:
    if not runs:
        return "no stored runs"
    header = f"{'id':<10}  {'name':<28} {'task':<24} {'status':<11} {'updates':>7} " \
             f"{'timesteps':>10} {'best':>8}  created"
    lines = [header, "-" * len(header)]
    for r in runs:
        best = "—" if r.best_mean_return is None else f"{r.best_mean_return:.1f}"
        created = datetime.datetime.fromtimestamp(r.created).strftime("%Y-%m-%d %H:%M")
        lines.append(f"{r.id:<10}  {r.name[:28]:<28} {r.env_id[:24]:<24} {r.status:<11} "
                     f"{r.updates:>7} {r.total_timesteps:>10,} {best:>8}  {created}")
    return "\n".join(lines)
