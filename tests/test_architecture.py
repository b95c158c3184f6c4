"""The package's shape: its folders follow the data flow, nothing imports in a circle, modules stay small.

Read from the source with ``ast`` (every ``import`` statement, also those inside functions and under
``TYPE_CHECKING``), so a lazy import cannot hide a circle. docs/architecture.md describes the same rules.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "multiseg"

#: The stages in data-flow order; a module may import from its own stage and the ones before it.
STAGES = ("demo", "data", "models", "train", "evaluate", "deploy", "experiments", "cli")
#: Modules every stage shares (they import no stage themselves).
BASE = ("__init__", "errors", "files", "config", "labels", "metrics")
#: ``python -m multiseg``: above the command line.
ENTRY = "__main__"
MAX_LINES = 500


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES: dict[str, Path] = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _imports(name: str, path: Path) -> set[str]:
    """The package's own modules that ``name`` imports (``from a import b`` counts a.b if it is one)."""
    out: set[str] = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + [base])
                base = base.rstrip(".")
            targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
        else:
            continue
        for target in targets:
            while target and target not in MODULES:
                target = target.rpartition(".")[0]
            if target.startswith("multiseg") and target != name:
                out.add(target)
    return out


GRAPH: dict[str, set[str]] = {name: _imports(name, path) for name, path in MODULES.items()}


def _stage(module: str) -> int:
    """-1 for the shared base modules, else the stage's index in :data:`STAGES`."""
    parts = module.split(".")
    first = parts[1] if len(parts) > 1 else "__init__"
    if first == ENTRY:
        return len(STAGES)
    if first in BASE:
        return -1
    assert first in STAGES, f"{module} is in no stage: add its folder to STAGES (and docs/architecture.md)"
    return STAGES.index(first)


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_the_import_graph_is_read_from_the_source() -> None:
    # The checks below are only as good as the graph: it must hold edges we know exist, lazy ones too.
    assert "multiseg.models.registry" in GRAPH["multiseg.models.erfnet"]
    assert "multiseg.train.engine" in GRAPH["multiseg.train.run"]
    assert "multiseg.deploy.export" in GRAPH["multiseg.cli.deploy"] or any(
        m.startswith("multiseg.deploy") for m in GRAPH["multiseg.cli.deploy"]
    )
    assert "multiseg.demo.world" in GRAPH["multiseg.demo.cache"]


def test_no_import_circles() -> None:
    assert _cycles(GRAPH) == []


def test_the_cycle_finder_finds_a_circle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]


def test_stages_import_only_from_themselves_and_earlier_stages() -> None:
    backward = [
        f"{module} -> {target}"
        for module, targets in GRAPH.items()
        for target in targets
        if _stage(target) > _stage(module)
    ]
    assert backward == [], "an import against the data flow (see docs/architecture.md)"


@pytest.mark.parametrize("name", sorted(MODULES))
def test_module_is_at_most_500_lines(name: str) -> None:
    lines = len(MODULES[name].read_text().splitlines())
    assert lines <= MAX_LINES, f"{MODULES[name]} has {lines} lines; split it by responsibility"


def test_the_architecture_page_names_every_folder_and_base_module() -> None:
    page = (PACKAGE.parent / "docs" / "architecture.md").read_text()
    for stage in STAGES:
        assert f"multiseg/{stage}/" in page, f"docs/architecture.md does not describe multiseg/{stage}/"
    folders = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert folders == set(STAGES), "a package folder is missing from STAGES, or a stage has no folder"
    for base in BASE:
        if base != "__init__":
            assert f"{base}.py" in page, f"docs/architecture.md does not describe multiseg/{base}.py"
    for module, path in MODULES.items():
        if path.name != "__init__.py" and module.count(".") == 2:
            assert path.name in page, f"docs/architecture.md does not list {path.relative_to(PACKAGE.parent)}"
