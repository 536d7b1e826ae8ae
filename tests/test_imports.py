"""The package's import structure (issue 19): no module imports in a cycle (every import counts, top-level and inside
functions, and so does the package ``__init__`` an import runs on the way), no module imports streamlit, the CLI reaches the library only through the facade, and the public API
is the package itself."""

from __future__ import annotations

import ast
from pathlib import Path

import influence_core

PACKAGE = Path(influence_core.__file__).resolve().parent
# The CLI's modules: a front end like the pages; besides the facade they use the error type and each other.
CLI_MODULES = ("influence_core.cli", "influence_core.cli_args", "influence_core.evaluate.cli")
CLI_ALLOWED = {"influence_core.project", "influence_core.errors", *CLI_MODULES}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imported_modules(name: str, source: str, modules=MODULES) -> set[str]:
    """Every module of the package ``name``'s source imports, anywhere in it: ``import a.b``; ``from a import b`` names
    the module ``a.b`` when there is one, else ``a`` (a name defined there). Relative imports resolved. A package's
    implicit import of its parents is not counted: it is what every module does."""
    package = name.split(".") if modules.get(name, Path()).name == "__init__.py" else name.split(".")[:-1]
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                source_module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                source_module = node.module or ""
            for alias in node.names:
                child = f"{source_module}.{alias.name}"
                found.add(child if child in modules else source_module)
    return found


def with_packages_entered(name: str, imported: set[str], modules=MODULES) -> set[str]:
    """``imported`` plus the packages Python runs on the way to each (importing ``a.b.c`` runs ``a.b``'s
    ``__init__``), except ``name`` and the packages it sits in, which are already running when it runs."""
    entered = set(imported)
    for module in imported:
        parts = module.split(".")
        entered |= {package for package in (".".join(parts[:i]) for i in range(2, len(parts)))
                    if package in modules and package != name and not name.startswith(package + ".")}
    return entered


def import_graph() -> dict[str, set[str]]:
    return {name: {m for m in with_packages_entered(name, imported_modules(name, path.read_text()))
                   if m in MODULES and m != name}
            for name, path in MODULES.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as [a, b, ..., a], or None (depth-first search, grey / black marking)."""
    state: dict[str, str] = {}
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        path.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == "open":
                return path[path.index(target):] + [target]
            if target not in state:
                found = visit(target)
                if found:
                    return found
        path.pop()
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_the_graph_reader_resolves_relative_and_function_level_imports():
    modules = {"pkg": Path("pkg/__init__.py"), "pkg.a": Path("pkg/a.py"), "pkg.sub": Path("pkg/sub/__init__.py"),
               "pkg.sub.b": Path("pkg/sub/b.py")}
    source = "from . import NAME\nfrom .. import a\ndef f():\n    from ..other import x\n    import pkg.sub\n"
    assert imported_modules("pkg.sub.b", source, modules) == {"pkg.sub", "pkg.a", "pkg.other"}
    assert imported_modules("pkg.a", "from .sub import b\nfrom . import NAME\n", modules) == {"pkg.sub.b", "pkg"}
    assert imported_modules("pkg.sub", "from . import b\nfrom .. import a\n", modules) == {"pkg.sub.b", "pkg.a"}
    # a module outside pkg.sub importing pkg.sub.b also runs pkg.sub's __init__; pkg.sub.b itself does not count it
    assert with_packages_entered("pkg.a", {"pkg.sub.b"}, modules) == {"pkg.sub.b", "pkg.sub"}
    assert with_packages_entered("pkg.sub.b", {"pkg.a"}, modules) == {"pkg.a"}
    assert with_packages_entered("pkg.sub", {"pkg.sub.b"}, modules) == {"pkg.sub.b"}
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set(), "d": {"a", "c"}}) is None


def test_no_module_imports_in_a_cycle():
    graph = import_graph()
    assert len(graph) > 50 and graph["influence_core.cli"]  # the package was read
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_no_module_of_the_library_imports_streamlit():
    users = sorted(name for name, path in MODULES.items()
                   if any(m == "streamlit" or m.startswith("streamlit.") for m in imported_modules(name, path.read_text())))
    assert users == []


def test_the_cli_imports_only_the_facade():
    offending = {}
    for name in CLI_MODULES:
        used = {m for m in imported_modules(name, MODULES[name].read_text()) if m.startswith("influence_core")}
        if used - CLI_ALLOWED:
            offending[name] = sorted(used - CLI_ALLOWED)
    assert offending == {}


def test_the_package_is_the_public_api():
    public = {"load_dataset", "train_model", "score_table", "compute_scores", "Project", "ScoreRun", "InfluenceError"}
    assert public <= set(influence_core.__all__)
    assert all(hasattr(influence_core, name) for name in influence_core.__all__)
    assert "public API" in influence_core.__doc__
    from influence_core.project import Project

    assert influence_core.Project is Project


def test_the_module_behind_the_public_functions_says_it_is_internal():
    from influence_core import api

    assert api.__doc__.startswith("Internal:")
    assert api.score_table is influence_core.score_table and api.compute_scores is influence_core.compute_scores
