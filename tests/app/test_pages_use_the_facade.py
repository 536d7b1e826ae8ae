"""Pages only render: they import the Project facade, the figure builders and the error type — no internals."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ALLOWED = {"influence_core", "influence_core.project", "influence_core.figures", "influence_core.errors"}


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("influence_core"):
            found.add(node.module)
            if node.module == "influence_core":  # `from influence_core import figures` names a module
                found |= {f"influence_core.{a.name}" for a in node.names if a.name != "__version__"}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("influence_core")}
    return found


def test_pages_and_app_import_only_the_facade_and_figures():
    files = [ROOT / "app.py", *sorted((ROOT / "app_pages").glob("*.py"))]
    assert len(files) >= 8
    offending = {f.name: sorted(_imports(f) - ALLOWED) for f in files if _imports(f) - ALLOWED}
    assert offending == {}
