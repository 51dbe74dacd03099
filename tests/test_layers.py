"""The import graph: `arena` → `inference`, never back; the development server stands apart;
no module imports one that (directly or not) imports it back, inside functions included."""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("arena", "inference", "devserver", "config")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path, modules: set[str]) -> set[str]:
    """The project modules `path` imports anywhere in it (a name imported from a package counts
    as that submodule when there is one)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.update(
                f"{node.module}.{alias.name}" if f"{node.module}.{alias.name}" in modules else node.module
                for alias in node.names
            )
    return {name for name in found if name in modules}


def import_graph() -> dict[str, set[str]]:
    paths = {
        _module_name(path): path
        for package in PACKAGES
        for path in (ROOT / package).rglob("*.py")
        if "migrations" not in path.parts
    }
    modules = set(paths)
    return {name: _imports(path, modules) - {name} for name, path in paths.items()}


def _package(module: str) -> str:
    return module.split(".")[0]


GRAPH = import_graph()


def test_the_graph_is_read_from_the_code():
    assert "inference.protocols" in GRAPH["arena.streams"]
    assert "arena.services" in GRAPH["arena.tasks"]


@pytest.mark.parametrize(
    "package, may_import",
    [
        ("inference", {"inference"}),  # the adapter layer to model servers knows nothing of the arena
        ("devserver", {"devserver"}),  # a stand-in for the model servers, apart from the product
        ("arena", {"arena", "inference", "config"}),
    ],
)
def test_dependencies_point_one_way(package, may_import):
    wrong = sorted(
        f"{module} imports {target}"
        for module, targets in GRAPH.items()
        if _package(module) == package
        for target in targets
        if _package(target) not in may_import
    )
    assert wrong == []


def test_no_module_imports_itself_through_others():
    try:
        tuple(graphlib.TopologicalSorter(GRAPH).static_order())
    except graphlib.CycleError as exc:
        pytest.fail(f"import cycle: {' → '.join(exc.args[1])}")
