"""The module graph keeps its layers: an `ast` walk over every import, lazy ones included.

- the core (`portable.*` but the face, the kit and the shims) never imports the face
  (`portable.commands`, `portable.cli`), the adapter kit, the backends or the reference model;
- the reference model never imports the backends;
- no import cycles anywhere (a function-level import counts: it still ties two modules);
- core modules stay small: about 400 lines a module and 60 a function.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = {"portable": ROOT / "portable", "portable.backends": ROOT / "backends",
            "portable.models": ROOT / "models"}
FACE = ("portable.commands", "portable.cli", "portable.__main__")
KIT = ("portable.kit",)
SHIMS = ("portable.ort", "portable.stub", "portable.probing")
"""Deprecated import paths that re-export the kit: kit layer, not core."""


def _modules() -> dict[str, Path]:
    found = {}
    for package, folder in PACKAGES.items():
        for path in folder.rglob("*.py"):
            parts = list(path.relative_to(folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            name = ".".join([package, *parts])
            if package == "portable" and name.startswith(("portable.backends", "portable.models")):
                continue
            found[name] = path
    return found


MODULES = _modules()


def _imports(name: str, path: Path) -> set[str]:
    """Project modules `name` imports, resolved to the module (not the attribute) imported."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            candidates = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            candidates = [f"{base}.{alias.name}" for alias in node.names] + [base]
        else:
            continue
        for candidate in candidates:
            while candidate and candidate not in MODULES:
                candidate = candidate.rpartition(".")[0]
            if candidate and candidate != name:
                targets.add(candidate)
    return targets


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _layer(name: str) -> str:
    if name.startswith(FACE):
        return "face"
    if name.startswith(KIT) or name in SHIMS:
        return "kit"
    if name.startswith("portable.backends"):
        return "backends"
    if name.startswith("portable.models"):
        return "models"
    return "core"


@pytest.mark.parametrize("layer, forbidden", [
    ("core", {"face", "kit", "backends", "models"}),
    ("models", {"backends", "face", "kit"}),
    ("kit", {"face", "backends", "models"}),
    ("backends", {"face"}),
])
def test_layers_import_only_downwards(layer, forbidden):
    wrong = sorted(f"{module} imports {target}" for module, targets in GRAPH.items()
                   if _layer(module) == layer for target in targets
                   if _layer(target) in forbidden)
    assert not wrong, wrong


def test_the_walk_sees_the_project():
    assert len(MODULES) > 40
    assert "portable.run" in GRAPH["portable.commands.bench"] or any(
        "portable.run" in GRAPH[m] for m in GRAPH if m.startswith("portable.commands"))


def _cycle() -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for target in sorted(GRAPH.get(node, ())):
            if state.get(target) == 1:
                return stack[stack.index(target):] + [target]
            if target not in state and (found := visit(target)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for module in sorted(GRAPH):
        if module not in state and (found := visit(module)):
            return found
    return None


def test_no_import_cycles():
    cycle = _cycle()
    assert cycle is None, " -> ".join(cycle or [])


def _too_long() -> list[str]:
    found = []
    for name, path in MODULES.items():
        if _layer(name) != "core":
            continue
        text = path.read_text(encoding="utf-8")
        if len(text.splitlines()) > 400:
            found.append(f"{name}: {len(text.splitlines())} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = node.end_lineno - node.lineno + 1
                if length > 60:
                    found.append(f"{name}.{node.name}: {length} lines")
    return found


def test_core_modules_and_functions_stay_small():
    assert not _too_long(), _too_long()
