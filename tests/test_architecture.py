"""The shape of the package: imports between rag's modules point one way, with no cycle.

A cycle is easy to hide with an import inside a function, so the graph counts
those as well as module-level imports. Only `if TYPE_CHECKING:` imports are left
out: they never run, so they cannot take part in an import-time cycle. The check
reads the source with `ast` and imports nothing.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping
from pathlib import Path

RAG_DIR = Path(__file__).resolve().parent.parent / "rag"

Graph = Mapping[str, set[str]]


def module_name(path: Path, root: Path) -> str:
    """`rag/formats/html.py` -> `rag.formats.html`; a package's `__init__.py` names the package."""
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def is_type_checking(test: ast.expr) -> bool:
    """Whether an `if` tests `TYPE_CHECKING` or `typing.TYPE_CHECKING`."""
    if isinstance(test, ast.Name):
        return test.id == "TYPE_CHECKING"
    return isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"


def runtime_imports(node: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement that can run: at any depth, except under `if TYPE_CHECKING:`."""
    if isinstance(node, ast.Import | ast.ImportFrom):
        yield node
        return
    if isinstance(node, ast.If) and is_type_checking(node.test):
        children: list[ast.AST] = list(node.orelse)
    else:
        children = list(ast.iter_child_nodes(node))
    for child in children:
        yield from runtime_imports(child)


def imported_modules(node: ast.Import | ast.ImportFrom, importer: str, is_package: bool) -> list[str]:
    """The module names one import statement loads (`from a import b` may load `a.b` too)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:
        package = importer.split(".") if is_package else importer.split(".")[:-1]
        anchor = package[: len(package) - (node.level - 1)]
        base = ".".join([*anchor, base]) if base else ".".join(anchor)
    return [base, *(f"{base}.{alias.name}" for alias in node.names)]


def import_graph(root: Path = RAG_DIR) -> dict[str, set[str]]:
    """Each rag module -> the rag modules it imports at run time (module- or function-level)."""
    files = {module_name(path, root): path for path in sorted(root.rglob("*.py"))}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        is_package = path.name == "__init__.py"
        targets = {
            target
            for node in runtime_imports(tree)
            for target in imported_modules(node, name, is_package)
            if target in files and target != name
        }
        graph[name] = targets
    return graph


def find_cycle(graph: Graph) -> list[str] | None:
    """One import cycle as a path that ends where it starts, or None if the graph has none."""
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> list[str] | None:
        if node in path:
            return [*path[path.index(node) :], node]
        if node in done:
            return None
        for target in sorted(graph.get(node, ())):
            cycle = visit(target, [*path, node])
            if cycle:
                return cycle
        done.add(node)
        return None

    for start in sorted(graph):
        cycle = visit(start, [])
        if cycle:
            return cycle
    return None


def test_rag_has_no_import_cycle() -> None:
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle in rag/: " + " -> ".join(cycle or [])


def test_graph_sees_function_level_imports_but_not_type_checking_ones() -> None:
    graph = import_graph()
    # pipeline.py imports rag.index inside a method (to keep Chroma lazy) ...
    assert "rag.index" in graph["rag.pipeline"]
    # ... while answer.py imports rag.pipeline only under `if TYPE_CHECKING:`.
    assert "rag.pipeline" not in graph["rag.answer"]
    assert "rag.formats.html" in graph["rag.ingest"]


def test_find_cycle_reports_the_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert find_cycle(graph) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_graph_resolves_relative_imports(tmp_path: Path) -> None:
    package = tmp_path / "rag"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "one.py").write_text("from .sub import two\n")
    (package / "sub" / "__init__.py").write_text("")
    (package / "sub" / "two.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .. import one\n"
        "def late() -> None:\n    from ..one import x\n"
    )
    graph = import_graph(package)
    assert graph["rag.one"] == {"rag.sub", "rag.sub.two"}
    assert graph["rag.sub.two"] == {"rag.one"}
