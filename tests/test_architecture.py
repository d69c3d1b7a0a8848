"""The shape of the package: imports between rag's modules, and between its stages, point one way.

A cycle is easy to hide with an import inside a function, so the graph counts
those as well as module-level imports. Only `if TYPE_CHECKING:` imports are left
out: they never run, so they cannot take part in an import-time cycle. A facade's
lazy names (its `_EXPORTS`, imported by its PEP 562 `__getattr__` on first access)
count as imports of their modules. Imports of the root package `rag` itself are left
out: Python runs `rag/__init__.py` before any module of the package, and modules may
read only its `__file__` and `__version__` from it (checked below).

Each module belongs to one stage (`stage_of`): a subpackage, or the core modules
`rag.errors` and `rag.types`. The stages form layers (`LAYERS`), and a stage imports
only from the layers below it. The graph checks read the source with `ast` and import
nothing; the facade tests at the end import the package.
"""

from __future__ import annotations

import ast
import importlib
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

RAG_DIR = Path(__file__).resolve().parent.parent / "rag"

Graph = Mapping[str, set[str]]

CORE = ("rag.errors", "rag.types")
# Top to bottom: a stage imports only from the stages after it. rag.settings is shared by every
# stage above rag.ingest but sits above rag.ingest itself: Settings.index_fingerprint hashes the
# chunker version, cleaning rules, extractors and metadata patterns of rag.ingest. rag.text and
# rag.ingest do not import each other.
LAYERS = (
    "rag.__main__",
    "rag",
    "rag.ui",
    "rag.evaluation",
    "rag.answering",
    "rag.retrieval",
    "rag.index",
    "rag.settings",
    "rag.ingest",
    "rag.text",
    "core",
)
STAGE_PACKAGES = (
    "rag.text",
    "rag.ingest",
    "rag.index",
    "rag.retrieval",
    "rag.answering",
    "rag.evaluation",
    "rag.ui",
)
# What a module may take from the root package (`import rag`): the package's own location and version.
ROOT_ATTRIBUTES = {"__file__", "__version__"}


def module_name(path: Path, root: Path) -> str:
    """`rag/ingest/formats/html.py` -> `rag.ingest.formats.html`; a package's `__init__.py` names it."""
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


def lazy_exports(tree: ast.Module) -> dict[str, str]:
    """A facade's `_EXPORTS = {name: module}`: the modules its `__getattr__` imports on first access."""
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(target, ast.Name) and target.id == "_EXPORTS" for target in node.targets
        ):
            exports = ast.literal_eval(node.value)
            assert isinstance(exports, dict)
            return exports
    return {}


def parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def module_files(root: Path = RAG_DIR) -> dict[str, Path]:
    return {module_name(path, root): path for path in sorted(root.rglob("*.py"))}


def import_graph(root: Path = RAG_DIR) -> dict[str, set[str]]:
    """Each rag module -> the rag modules it imports at run time (module- or function-level, or lazily).

    The root package (`rag`) is never a target: see the module docstring.
    """
    files = module_files(root)
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        tree = parse(path)
        is_package = path.name == "__init__.py"
        imported = {
            target for node in runtime_imports(tree) for target in imported_modules(node, name, is_package)
        }
        imported |= set(lazy_exports(tree).values())
        graph[name] = {target for target in imported if target in files and target not in (name, root.name)}
    return graph


def stage_of(module: str) -> str:
    """The stage a module belongs to: `rag.ingest.formats.html` -> `rag.ingest`; rag.errors -> `core`."""
    if module in CORE:
        return "core"
    return ".".join(module.split(".")[:2])


def stage_graph(graph: Graph) -> dict[str, set[str]]:
    """The module graph with each module replaced by its stage, and imports within a stage left out."""
    stages: dict[str, set[str]] = {}
    for module, targets in graph.items():
        stage = stage_of(module)
        stages.setdefault(stage, set()).update(stage_of(target) for target in targets)
        stages[stage].discard(stage)
    return stages


def root_uses(tree: ast.Module) -> set[str]:
    """What a module takes from the root package: `from rag import x`, or `rag.x` after `import rag`."""
    uses = {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module == "rag"
        for alias in node.names
    }
    imports_root = any(
        isinstance(node, ast.Import) and any(alias.name == "rag" and not alias.asname for alias in node.names)
        for node in ast.walk(tree)
    )
    if imports_root:
        uses |= {
            node.attr
            for node in ast.walk(tree)
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "rag"
        }
    return uses


def type_checking_imports(tree: ast.Module) -> dict[str, str]:
    """Name -> module of the `from module import name` statements under a top-level `if TYPE_CHECKING:`."""
    return {
        alias.asname or alias.name: statement.module or ""
        for node in tree.body
        if isinstance(node, ast.If) and is_type_checking(node.test)
        for statement in node.body
        if isinstance(statement, ast.ImportFrom)
        for alias in statement.names
    }


def dunder_all(tree: ast.Module) -> list[str]:
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(target, ast.Name) and target.id == "__all__" for target in node.targets
        ):
            names = ast.literal_eval(node.value)
            assert isinstance(names, list)
            return names
    return []


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
    # pipeline.py imports rag.index.update inside a method (to keep Chroma lazy) ...
    assert "rag.index.update" in graph["rag.answering.pipeline"]
    # ... while answer.py imports rag.answering.pipeline only under `if TYPE_CHECKING:`.
    assert "rag.answering.pipeline" not in graph["rag.answering.answer"]
    assert "rag.ingest.formats.html" in graph["rag.ingest.read"]


def test_graph_counts_a_facades_lazy_names_and_leaves_out_the_root() -> None:
    graph = import_graph()
    assert {"rag.answering.pipeline", "rag.answering.answer", "rag.settings"} <= graph["rag"]
    assert "rag.ingest.read" in graph["rag.ingest"]
    # manifest.py reads rag.__version__ (`import rag`), which is not an edge to the facade.
    assert "rag" not in graph["rag.index.manifest"]


def test_stages_have_no_import_cycle() -> None:
    cycle = find_cycle(stage_graph(import_graph()))
    assert cycle is None, "import cycle between the stages of rag/: " + " -> ".join(cycle or [])


def test_each_stage_imports_only_the_stages_below_it() -> None:
    stages = stage_graph(import_graph())
    assert set(stages) == set(LAYERS), "a module outside the known stages: place it in LAYERS"
    upward = sorted(
        f"{stage} -> {target}"
        for stage, targets in stages.items()
        for target in targets
        if LAYERS.index(target) <= LAYERS.index(stage)
    )
    assert not upward, "imports that point up the stages: " + ", ".join(upward)


def test_stage_graph_sees_a_cycle_that_the_module_graph_does_not() -> None:
    graph = {"rag.a.x": {"rag.b.y"}, "rag.b.y": {"rag.a.z"}, "rag.a.z": {"rag.errors"}, "rag.errors": set()}
    assert find_cycle(graph) is None
    assert stage_graph(graph) == {"rag.a": {"rag.b", "core"}, "rag.b": {"rag.a"}, "core": set()}
    assert find_cycle(stage_graph(graph)) == ["rag.a", "rag.b", "rag.a"]
    assert stage_of("rag.ingest.formats.html") == "rag.ingest"
    assert stage_of("rag.settings") == "rag.settings"
    assert stage_of("rag.types") == "core"


def test_modules_take_only_the_version_and_location_from_the_root_package() -> None:
    taken = {
        name: sorted(uses)
        for name, path in module_files().items()
        if name != "rag" and (uses := root_uses(parse(path)) - ROOT_ATTRIBUTES)
    }
    assert not taken, f"import these from their own modules, not from the facade rag: {taken}"


def test_root_uses_sees_from_imports_and_attributes() -> None:
    tree = ast.parse("import rag\nfrom rag import Settings\nx = rag.__version__\ny = rag.Pipeline\n")
    assert root_uses(tree) == {"Settings", "__version__", "Pipeline"}
    assert root_uses(ast.parse("import rag.index.embed\n")) == set()


def test_each_facade_names_its_exports_once_for_checkers_and_once_for_getattr() -> None:
    files = module_files()
    for package in ("rag", *STAGE_PACKAGES):
        tree = parse(files[package])
        exports = lazy_exports(tree)
        assert exports, f"{package} has no _EXPORTS"
        assert type_checking_imports(tree) == exports, package
        eager = {"__version__"} if package == "rag" else set()
        assert set(dunder_all(tree)) == set(exports) | eager, package
        if package != "rag":
            assert all(module.startswith(f"{package}.") for module in exports.values()), package
        submodules = {name.rsplit(".", 1)[1] for name in files if name.startswith(f"{package}.")}
        assert not set(exports) & submodules, f"{package} exports a name that is also a submodule"


def test_each_facade_name_is_its_modules_object() -> None:
    for package in ("rag", *STAGE_PACKAGES):
        facade = importlib.import_module(package)
        exports = lazy_exports(parse(module_files()[package]))
        for name, module in exports.items():
            expected = getattr(importlib.import_module(module), name)
            assert getattr(facade, name) is expected, f"{package}.{name}"


def test_importing_the_facades_imports_none_of_their_modules() -> None:
    packages = ["rag", *STAGE_PACKAGES]
    code = f"import sys, {', '.join(packages)}; print(sorted(m for m in sys.modules if m.startswith('rag')))"
    env = {**os.environ, "PYTHONPATH": str(RAG_DIR.parent)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    assert out.stdout.strip() == str(sorted(packages))


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


MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60


def oversized(rag_dir: Path) -> list[str]:
    """Modules over MAX_MODULE_LINES and functions over MAX_FUNCTION_LINES (def line to last line)."""
    found = []
    for path in sorted(rag_dir.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        if (lines := len(text.splitlines())) > MAX_MODULE_LINES:
            found.append(f"{path.relative_to(rag_dir)}: {lines} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    found.append(f"{path.relative_to(rag_dir)}:{node.lineno} {node.name}: {length} lines")
    return found


def test_modules_and_functions_stay_small() -> None:
    assert oversized(RAG_DIR) == []


def test_oversized_finds_a_long_module_and_a_long_function(tmp_path: Path) -> None:
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_FUNCTION_LINES))
    (tmp_path / "long_function.py").write_text(f"def f() -> None:\n{body}\n")
    (tmp_path / "long_module.py").write_text("\n".join(f"X{i} = {i}" for i in range(MAX_MODULE_LINES + 1)))
    assert oversized(tmp_path) == ["long_function.py:1 f: 61 lines", "long_module.py: 401 lines"]
