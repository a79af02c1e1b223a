"""The import graph of detector/: no cycle, and the model families stay behind models/.

Built with `ast` from every import in every module, inside functions too (an import inside a
function that closes a cycle is still a cycle: it only hides it from the interpreter), except
imports under `if TYPE_CHECKING:`, which never run.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "detector"
MODELS = PACKAGE / "models"


def is_family_module(module: str, path: Path) -> bool:
    """A module inside a family package, models/<family>/ (its __init__ included)."""
    return path.is_relative_to(MODELS) and path.parent != MODELS


def _modules() -> dict[str, Path]:
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    skipped = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(child) for child in ast.walk(node))
    return skipped


def _imported(node, module: str, modules: dict[str, Path]) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:  # relative import
        package = module if modules[module].name == "__init__.py" else module.rpartition(".")[0]
        for _ in range(node.level - 1):
            package = package.rpartition(".")[0]
        base = f"{package}.{base}" if base else package
    return [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
            for alias in node.names]


def import_graph() -> dict[str, set[str]]:
    """{module: modules of detector/ it imports}; a name inside a module maps to that module."""
    modules = _modules()
    graph = {}
    for module, path in modules.items():
        tree = ast.parse(path.read_text())
        skipped = _type_checking_nodes(tree)
        targets = set()
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)) and id(node) not in skipped:
                for name in _imported(node, module, modules):
                    while name and name not in modules:
                        name = name.rpartition(".")[0]
                    if name.startswith("detector") and name != module:
                        targets.add(name)
        graph[module] = targets
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as [a, b, ..., a], or None (depth-first search with colours)."""
    colour = dict.fromkeys(graph, 0)  # 0 new, 1 on the path, 2 done
    path: list[str] = []

    def visit(node):
        colour[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if colour[nxt] == 1:
                return path[path.index(nxt):] + [nxt]
            if colour[nxt] == 0:
                found = visit(nxt)
                if found:
                    return found
        path.pop()
        colour[node] = 2
        return None

    for node in sorted(graph):
        if colour[node] == 0:
            found = visit(node)
            if found:
                return found
    return None


def test_find_cycle_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_the_package_has_no_import_cycle():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_family_modules_are_the_family_packages():
    modules = _modules()
    family = {module for module, path in modules.items() if is_family_module(module, path)}
    assert {"detector.models.rcnn", "detector.models.rcnn.adapter", "detector.models.ultralytics.loss",
            "detector.models.yolov5.head"} <= family
    assert not family & {"detector.models.registry", "detector.models.surgery",
                         "detector.models.transfer", "detector.models"}


def test_only_models_imports_a_family_module():
    modules = _modules()
    family = {module for module, path in modules.items() if is_family_module(module, path)}
    offenders = {module: sorted(targets & family)
                 for module, targets in import_graph().items()
                 if not module.startswith("detector.models") and targets & family}
    assert not offenders, f"modules outside models/ import a model family: {offenders}"
