"""The layout rules of ARCHITECTURE.md, checked on the source: which package may import
which, and no import cycle between the project's modules (imports inside functions
count too: a lazy import hides a cycle, it does not remove it)."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("utils", "data_prep", "bert", "section_split", "downstream_tasks", "recipe")

# package -> the project packages it may import (ARCHITECTURE.md, "What each package may import")
ALLOWED = {
    "utils": set(),
    "data_prep": {"utils"},
    "bert": {"utils"},
    "section_split": {"utils", "data_prep"},
    "downstream_tasks": {"utils", "bert"},
    "recipe": {"utils", "bert", "data_prep"},
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for pkg in PACKAGES for p in sorted((REPO / pkg).rglob("*.py"))}


def _imports(path: Path, modules: dict[str, Path]) -> set[str]:
    """The project modules `path` imports (anywhere in the file), resolved to module names."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        else:
            continue
        for name in names:
            # the longest prefix that is a module: `from bert import modeling` -> bert.modeling
            while name and name not in modules:
                name = name.rpartition(".")[0]
            if name:
                found.add(name)
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {m: _imports(p, modules) - {m} for m, p in modules.items()}


def test_every_package_imports_only_what_it_may():
    graph = _graph()
    assert len(graph) > 40, "the scan found too few modules to mean anything"
    bad = [f"{m} imports {d}" for m, deps in graph.items() for d in deps
           if d.split(".")[0] != m.split(".")[0] and d.split(".")[0] not in ALLOWED[m.split(".")[0]]]
    assert bad == []


def test_no_import_cycle_between_modules():
    graph = _graph()
    cycles: list[list[str]] = []
    state: dict[str, int] = {}  # 1 = on the current path, 2 = finished

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for dep in sorted(graph.get(module, ())):
            if dep.endswith("__init__") or dep in PACKAGES:
                continue  # a package's own __init__ is not a module of its own here
            if state.get(dep) == 1:
                cycles.append(path[path.index(dep):] + [dep])
            elif dep not in state:
                visit(dep, path + [dep])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert cycles == []


@pytest.mark.parametrize("package", PACKAGES)
def test_no_module_without_a_docstring(package):
    missing = [m for m, p in _modules().items() if m.startswith(package + ".") or m == package
               if ast.get_docstring(ast.parse(p.read_text())) is None and p.read_text().strip()]
    assert missing == []
