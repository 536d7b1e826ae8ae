"""The `Project` facade's layout (issue 19): the class only composes its area modules (influence_core/project/*.py,
one mixin each), every method is a few lines of delegation, no area module imports another, and every name the
front ends import from `influence_core.project` is still there."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import influence_core.project as facade
from influence_core.project import Project

AREA_FOLDER = Path(facade.__file__).resolve().parent
AREAS = sorted(p.stem for p in AREA_FOLDER.glob("*.py") if p.stem != "__init__")
MAX_BODY_LINES = 15  # lines of work in one method: statements, not its docstring, comments, blanks or local imports
# What pages, the CLI, the runner and tests import from the facade (issue 19 moved it into a package: none may go).
EXPORTED = ("Access", "AttackSettings", "BASELINE_ARMS", "CLEANING_ACTIONS", "CONSENSUS_RANKING", "DATASETS",
            "DECISION_ACTIONS", "DEFAULT_PROJECT", "ExperimentResult", "ExperimentSettings", "IMPACTS",
            "InfluenceError", "JOINT_RANKINGS", "Job", "JobHandle", "METHODS", "MEMORY", "MODELS", "Members",
            "PATH_LOADERS", "Project", "ROLES", "ReviewView", "ScoreRun", "Selection", "TrainConfig",
            "cleaned_split_table", "default_architecture", "describe_impact", "format_bytes", "format_table", "is_size",
            "memorisation_warning", "project_names", "resolve_val_trim", "valid_project_name", "workspace_root")


def body_lines(source: str, function: ast.FunctionDef) -> int:
    """The lines of work in ``function``: its body's lines less the docstring, blank lines, comments and imports."""
    body = function.body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]
    text = source.splitlines()
    lines = {n for stmt in body for n in range(stmt.lineno, stmt.end_lineno + 1)}
    work = [text[n - 1].strip() for n in lines]
    return sum(1 for line in work if line and not line.startswith(("#", "from ", "import ")))


def long_methods(source: str, limit: int = MAX_BODY_LINES) -> dict[str, int]:
    """Each method of the classes in ``source`` with more than ``limit`` lines of work → its count."""
    return {f"{cls.name}.{fn.name}": count for cls in ast.parse(source).body if isinstance(cls, ast.ClassDef)
            for fn in cls.body if isinstance(fn, ast.FunctionDef) and (count := body_lines(source, fn)) > limit}


def area_imports(source: str) -> set[str]:
    """The modules of the facade package that ``source`` (an area module) imports: ``from .x``, ``from . import x``,
    or ``influence_core.project[.x]`` by its absolute name (anywhere, also inside functions)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            found |= {node.module} if node.module else {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("influence_core.project"):
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("influence_core.project")}
    return {name for name in found if name != "influence_core.project_files"}


def test_the_checks_catch_a_long_method_and_an_import_between_areas():
    long_one = "class A:\n    def f(self):\n        '''doc'''\n" + "".join(f"        x{i} = {i}\n" for i in range(16))
    short_one = ("class A:\n    def f(self):\n        '''doc'''\n        # a comment\n        from x import y\n\n"
                 "        return y\n")
    assert long_methods(long_one) == {"A.f": 16}
    assert long_methods(short_one) == {}
    assert area_imports("from .scoring import ScoringMixin\ndef f():\n    from . import reviewing\n") == {"scoring",
                                                                                                         "reviewing"}
    assert area_imports("import influence_core.project.base\nfrom ..engine import Engine\n") == {
        "influence_core.project.base"}
    assert area_imports("from ..project_files import STATE_FILE\nfrom ..memo import MEMORY\n") == set()


def test_project_only_composes_its_area_modules():
    own = {name for name, value in vars(Project).items() if inspect.isfunction(value) or isinstance(
        value, (property, staticmethod, classmethod))}
    assert own == set()  # every method lives in an area module
    bases = {base.__module__.rsplit(".", 1)[-1] for base in Project.__bases__}
    assert bases == set(AREAS)  # every area module is composed, and only they are


def test_no_method_is_defined_in_two_areas():
    seen: dict[str, str] = {}
    twice = []
    for base in Project.__bases__:
        for name in vars(base):
            if not name.startswith("__") or name in ("__init__", "__repr__"):
                if name in seen:
                    twice.append((name, seen[name], base.__name__))
                seen[name] = base.__name__
    assert twice == []
    assert len(seen) > 100  # the facade's methods were found at all


def test_every_method_of_the_facade_is_a_few_lines_of_delegation():
    too_long = {}
    for area in AREAS:
        too_long |= long_methods((AREA_FOLDER / f"{area}.py").read_text())
    assert too_long == {}, f"move the work into the area's library module: {too_long}"


def test_no_area_module_imports_another():
    crossing = {area: area_imports((AREA_FOLDER / f"{area}.py").read_text()) for area in AREAS}
    assert {area: found for area, found in crossing.items() if found} == {}


def test_every_name_the_front_ends_import_is_still_there():
    assert [name for name in EXPORTED if not hasattr(facade, name)] == []
    assert set(facade.__all__) <= set(EXPORTED)
