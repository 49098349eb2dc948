"""The house's rule, checked: imports point down only, and no modules import each other in a circle.

    ui/                  the faces: the Gradio app and its tabs, the CLI
    assistant/services/  project-level operations both faces share
    assistant/runtime/   models in memory: load, attach adapters, generate
    assistant/core/      pure decisions: profile, rules, plan, memory estimate, catalog
    trainers/ retrieval/ the machinery below; they import neither each other nor anything above
    tunewise/            the floor: the error family every package shares; it imports nothing of ours

Every import counts, including those inside functions (the lazy ones that keep start-up fast):
a lazy import that runs upward is still a dependency upward.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("assistant", "retrieval", "trainers", "tunewise", "ui")

# What each layer may import (besides itself). Listed top-down.
ALLOWED = {
    "ui": {"assistant.services", "assistant.runtime", "assistant.core", "assistant.example_data", "trainers",
           "retrieval", "tunewise"},
    "assistant.services": {"assistant.runtime", "assistant.core", "assistant.example_data", "trainers", "retrieval",
                           "tunewise"},
    "assistant.runtime": {"assistant.core", "trainers", "retrieval", "tunewise"},
    "assistant.core": {"trainers", "tunewise"},
    "assistant.example_data": set(),
    "assistant": set(),  # the package itself: a docstring
    "trainers": {"tunewise"},
    "retrieval": {"tunewise"},
    "tunewise": set(),
}
HEAVY = ("torch", "transformers", "peft", "trl", "bitsandbytes", "sentence_transformers", "chromadb", "gradio")


def layer_of(module: str) -> str:
    return next(layer for layer in sorted(ALLOWED, key=len, reverse=True)
                if module == layer or module.startswith(layer + "."))


def modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imports_of(path: Path, known: set[str]) -> list[tuple[str, int, bool]]:
    """(imported project module, line, at module level?) for every import in the file."""
    tree = ast.parse(path.read_text(), str(path))
    top_level = {id(node) for node in tree.body}
    found = []
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{alias.name}" for alias in node.names] + [node.module]
        for name in names:
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name:
                found.append((name, node.lineno, id(node) in top_level))
    return found


def heavy_top_level(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), str(path))
    names = []
    for node in tree.body:
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.append(node.module)
    return [name for name in names if name.split(".")[0] in HEAVY]


ALL = modules()
GRAPH = {module: imports_of(path, set(ALL)) for module, path in ALL.items()}


def upward_imports(module: str, found: list[tuple[str, int, bool]]) -> list[str]:
    """The imports of ``module`` that its layer may not make."""
    layer = layer_of(module)
    return [f"{module}:{line} imports {target} ({layer_of(target)})" for target, line, _ in found
            if layer_of(target) != layer and layer_of(target) not in ALLOWED[layer]]


@pytest.mark.parametrize("module", sorted(ALL))
def test_imports_point_down_only(module):
    upward = upward_imports(module, GRAPH[module])
    assert not upward, upward


def test_no_modules_import_each_other_in_a_circle():
    edges = {m: {t for t, _, _ in found if t != m and ALL[t].name != "__init__.py"} for m, found in GRAPH.items()}
    seen, on_path, circles = set(), [], []

    def visit(module):
        if module in on_path:
            circles.append(on_path[on_path.index(module):] + [module])
            return
        if module in seen:
            return
        seen.add(module)
        on_path.append(module)
        for target in sorted(edges[module]):
            visit(target)
        on_path.pop()

    for module in sorted(edges):
        visit(module)
    assert not circles, circles


def test_the_machinery_below_imports_neither_the_other_nor_anything_above():
    for module, found in GRAPH.items():
        if layer_of(module) in ("trainers", "retrieval", "tunewise"):
            assert {layer_of(t) for t, _, _ in found} <= {layer_of(module), "tunewise"}, (module, found)


def test_gradio_is_imported_by_the_web_face_only_and_the_core_loads_no_ml_library():
    for module, path in ALL.items():
        heavy = heavy_top_level(path)
        if layer_of(module) != "ui":
            assert "gradio" not in [h.split(".")[0] for h in heavy], module
        if layer_of(module) == "assistant.core" or module in ("trainers.config", "trainers.job_files", "ui.cli"):
            assert not heavy, (module, heavy)


def test_a_new_upward_import_would_be_caught():
    """The check itself can fail: the same function that checks every module reports a trainers
    module importing the services, or the floor importing anything above it."""
    assert upward_imports("trainers.x", [("assistant.services.behaviour", 1, True)]) == [
        "trainers.x:1 imports assistant.services.behaviour (assistant.services)"]
    assert upward_imports("tunewise.errors", [("retrieval.index", 3, False)]) == [
        "tunewise.errors:3 imports retrieval.index (retrieval)"]
    assert upward_imports("retrieval.index", [("tunewise.errors", 3, True)]) == []
