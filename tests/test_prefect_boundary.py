"""Prefect is used in one package, ``services/orchestration``: everywhere else in production code
it is imported only to declare flows and tasks (``from prefect import flow, task``) and forms
(``from prefect.input import RunInput``). A Prefect upgrade is then checked in that package,
with its contract tests (tests/test_prefect_contract.py)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PRODUCTION = ("dealflow", "flows", "tasks", "services", "models")
ADAPTER = Path("services/orchestration")
ALLOWED = {("prefect", "flow"), ("prefect", "task"), ("prefect.input", "RunInput")}


def prefect_imports(source: str, path: str) -> list[tuple[int, str]]:
    """Each import of Prefect in ``source`` that is not one of the allowed names: (line, what)."""
    found = []
    for node in ast.walk(ast.parse(source, path)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, f"import {a.name}") for a in node.names
                      if a.name == "prefect" or a.name.startswith("prefect.")]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module and (
                node.module == "prefect" or node.module.startswith("prefect.")):
            found += [(node.lineno, f"from {node.module} import {a.name}") for a in node.names
                      if (node.module, a.name) not in ALLOWED]
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", None)) in (
                "import_module", "__import__") and node.args and isinstance(node.args[0], ast.Constant) \
                and str(node.args[0].value).split(".")[0] == "prefect":
            found.append((node.lineno, f"import_module({node.args[0].value!r})"))
    return sorted(found)


def production_modules() -> list[Path]:
    return sorted(p.relative_to(ROOT) for top in PRODUCTION for p in (ROOT / top).rglob("*.py"))


def test_outside_the_adapter_prefect_is_imported_only_for_flows_tasks_and_forms():
    modules = production_modules()
    assert len(modules) > 50 and ADAPTER / "runs.py" in modules
    outside = {str(path): hits for path in modules if ADAPTER not in path.parents
               for hits in [prefect_imports((ROOT / path).read_text(encoding="utf-8"), str(path))] if hits}
    assert not outside, ("Prefect imported outside services/orchestration (put the use there, and re-export "
                         f"what flows and tasks need): {outside}")


def test_the_check_finds_every_way_of_importing_prefect():
    source = ("from prefect import flow, task, get_client\nimport prefect.states\nimport prefect\n"
              "from prefect.input import RunInput\nfrom prefect.input.run_input import RunInput\n"
              "def f():\n    from prefect.exceptions import Pause\n    importlib.import_module('prefect.flows')\n"
              "from . import prefect_api\nfrom dealflow.prefect_api import ensure_api\n")
    assert [what for _, what in prefect_imports(source, "x.py")] == [
        "from prefect import get_client", "import prefect.states", "import prefect",
        "from prefect.input.run_input import RunInput", "from prefect.exceptions import Pause",
        "import_module('prefect.flows')"]


def test_the_models_import_no_prefect_at_all():
    """The domain knows nothing of Prefect, not even the names allowed elsewhere."""
    found = {}
    for path in production_modules():
        if path.parts[0] == "models":
            tree = ast.parse((ROOT / path).read_text(encoding="utf-8"))
            names = [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module] + \
                    [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
            if hits := [m for m in names if m == "prefect" or m.startswith("prefect.") or "orchestration" in m]:
                found[str(path)] = hits
    assert not found, found
