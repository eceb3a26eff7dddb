"""skinlib's import graph: no cycle, and no module imports a layer above its own (docs/design.md, "Layers").

Every import counts, also those inside functions; imports under ``if TYPE_CHECKING:`` (annotations only) do not.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "skinlib"

#: module (or package prefix) -> layer; a module may import its own layer and those below
LAYERS: dict[str, int] = {
    "skinlib": 0, "skinlib.paths": 0, "skinlib.data.labels": 0, "skinlib.parameters": 0, "skinlib.leftovers": 0,
    "skinlib.notebook": 0, "skinlib.provenance": 0, "skinlib.lazy": 0, "skinlib.estimate": 0,
    "skinlib.tables": 0,
    "skinlib.data": 1, "skinlib.data.duplicates": 1, "skinlib.metrics": 1, "skinlib.features": 1, "skinlib.eda": 1,
    "skinlib.models": 2, "skinlib.models.embeddings": 2,
    "skinlib.train": 3, "skinlib.checkpoints": 3, "skinlib.distributed": 3, "skinlib.tta": 3,
    "skinlib.evaluation": 4,
    "skinlib.registry": 5,
    "skinlib.inputs": 6, "skinlib.split_cost": 6, "skinlib.binary": 6, "skinlib.subtypes": 6, "skinlib.metadata": 6,
    "skinlib.ensemble": 7, "skinlib.members": 7, "skinlib.explain": 7, "skinlib.papers": 7, "skinlib.paper_settings": 7, "skinlib.report": 7, "skinlib.plots": 7,
    "skinlib.variants": 7,
    "skinlib.run": 8, "skinlib.run.split_names": 8, "skinlib.run.stopping": 8, "skinlib.run.exercise_stubs": 8,
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer(module: str) -> int:
    """The layer of the longest prefix of `module` listed in :data:`LAYERS`."""
    parts = module.split(".")
    for end in range(len(parts), 0, -1):
        if ".".join(parts[:end]) in LAYERS:
            return LAYERS[".".join(parts[:end])]
    raise KeyError(f"{module} has no layer: add it to LAYERS here and to docs/design.md")


def _type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def imports(path: Path) -> set[str]:
    """skinlib modules `path` imports (resolved relative imports; ``from . import x`` gives ``pkg.x``)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("skinlib"))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.startswith("skinlib"):
                for alias in node.names:
                    candidate = f"{target}.{alias.name}"
                    sub = PACKAGE.parent / Path(*candidate.split("."))
                    found.add(candidate if sub.with_suffix(".py").is_file() or sub.is_dir() else target)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text()))
    found.discard(name)
    return found


GRAPH = {module_name(p): imports(p) for p in sorted(PACKAGE.rglob("*.py"))}


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_no_module_imports_a_layer_above_its_own(module):
    above = sorted(m for m in GRAPH[module] if layer(m) > layer(module))
    assert not above, f"{module} (layer {layer(module)}) imports {above} from a layer above"


def test_the_import_graph_has_no_cycle():
    # a package's __init__ importing its own modules is how a package is made, not a cycle
    def edges(module: str) -> set[str]:
        return {m for m in GRAPH[module] if m in GRAPH and not module.startswith(m + ".")}

    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(module: str) -> None:
        state[module] = 1
        stack.append(module)
        for target in sorted(edges(module)):
            if state.get(target) == 1:
                cycle = stack[stack.index(target):] + [target]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if target not in state:
                visit(target)
        stack.pop()
        state[module] = 2

    for module in sorted(GRAPH):
        if module not in state:
            visit(module)


def test_the_machinery_is_imported_by_nothing_in_the_library():
    users = sorted(m for m, deps in GRAPH.items() if layer(m) < LAYERS["skinlib.run"]
                   and any(d.startswith("skinlib.run") for d in deps))
    assert not users, f"library modules import skinlib.run: {users}"


def test_no_module_mixes_jobs_past_500_lines():
    """A module over about 500 lines is a sign of two jobs in one file (the synthetic generator, one job, is the
    known exception)."""
    long = {module_name(p): len(p.read_text().splitlines()) for p in PACKAGE.rglob("*.py")}
    assert {m: n for m, n in long.items() if n > 520 and m != "skinlib.data.synthetic"} == {}
