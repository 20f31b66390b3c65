"""The app's own imports are declared in requirements.txt (the README installs only that)."""

import ast
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# import name -> distribution, where they differ or where another requirement brings it
DISTRIBUTION = {"PIL": "pillow", "tensorflow": "tensorflow-cpu"}
BROUGHT_BY = {"pandas": "streamlit", "keras": "tensorflow-cpu"}


def runtime_imports() -> set[str]:
    folders = ("trpo_viz", "app_parts", "pages")
    files = [ROOT / "app.py", *(path for d in folders for path in (ROOT / d).rglob("*.py"))]
    names = set()
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    local = {"trpo_viz", "app_parts", "pages"}
    return {n for n in names if n not in sys.stdlib_module_names and n not in local}


def declared() -> set[str]:
    lines = (ROOT / "requirements.txt").read_text(encoding="utf-8").splitlines()
    return {re.match(r"[A-Za-z0-9_.-]+", line).group(0).lower()
            for line in lines if line.strip() and not line.startswith(("#", "-"))}


def test_every_third_party_import_of_the_app_is_a_runtime_requirement():
    requirements = declared()
    missing = sorted(
        name for name in runtime_imports()
        if DISTRIBUTION.get(name, name).lower() not in requirements
        and BROUGHT_BY.get(name) not in requirements
    )
    assert not missing, f"imported by the app but not in requirements.txt: {missing}"
