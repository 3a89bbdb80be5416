"""The layer contract (issue 12): a module imports only its own layer or lower ones, and no import
inside a function hides a cycle. Read from the sources' syntax trees, so every import counts:
module-level, inside functions, and under ``if TYPE_CHECKING:``."""

from __future__ import annotations

import ast
import functools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import paramio

PACKAGE = Path(paramio.__file__).resolve().parent

#: Lowest first. A name is a subpackage or module directly under ``paramio``; names in one tuple
#: share a layer (they may import each other, but not in a cycle).
LAYERS: tuple[tuple[str, ...], ...] = (
    ("core", "errors"),  # the floor; ``paramio.errors`` is the public alias of `paramio.core.errors`
    ("arrays",),  # NumPy/torch/JAX/CuPy arrays to and from host bytes
    ("sources",),  # where bytes live: files, memory, handles, HTTP/S3, caches
    ("formats",),  # IRPA, safetensors, GGUF, conversion, atomic outputs
    ("index",),  # the index, scopes, overlays, providers, writable archives
    (
        "iree",
        "compat",
        "loading",
        "sharding",
        "mlir",
        "torch",
        "testing",
        "integrity",
        "scaleout",
    ),  # adapters and tools
    ("cli", "__main__"),  # presentation
)

#: Upward imports kept on purpose, each with its reason. None: a lower layer that needs a function
#: defined above it gets it through a declaration the package root makes
#: (`paramio.core.exports.declare_above`, as the ``tp`` format is declared).
ALLOWED_UPWARD: dict[tuple[str, str], str] = {}


def _rank(module: str) -> int | None:
    """The layer of ``paramio.<name>...``; None for the package itself (the lazy facade, which
    names every layer and which only the top layer may import)."""
    parts = module.split(".")
    if len(parts) < 2:
        return None
    for rank, names in enumerate(LAYERS):
        if parts[1] in names:
            return rank
    raise AssertionError(f"{module}: paramio.{parts[1]} is in no layer; add it to LAYERS")


@dataclass(frozen=True)
class Import:
    importer: str
    imported: str
    line: int
    in_function: bool
    type_only: bool


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports_of(module: str, path: Path, known: set[str]) -> Iterator[Import]:
    is_package = path.name == "__init__.py"

    def targets(node: ast.Import | ast.ImportFrom) -> Iterator[str]:
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
            return
        base = node.module or ""
        if node.level:
            anchor = module.split(".") if is_package else module.split(".")[:-1]
            anchor = anchor[: len(anchor) - node.level + 1]
            base = ".".join([*anchor, base] if base else anchor)
        for alias in node.names:  # ``from paramio.x import y``: y may be a module
            sub = f"{base}.{alias.name}"
            yield sub if sub in known else base

    def walk(node: ast.AST, in_function: bool, type_only: bool) -> Iterator[Import]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                yield from walk(child, True, type_only)
            elif isinstance(child, ast.If) and _is_type_checking(child.test):
                for stmt in child.body:
                    yield from walk(ast.Module(body=[stmt], type_ignores=[]), in_function, True)
                for stmt in child.orelse:
                    yield from walk(ast.Module(body=[stmt], type_ignores=[]), in_function, type_only)
            elif isinstance(child, (ast.Import, ast.ImportFrom)):
                for target in targets(child):
                    if target == "paramio" or target.startswith("paramio."):
                        yield Import(module, target, child.lineno, in_function, type_only)
            else:
                yield from walk(child, in_function, type_only)

    yield from walk(ast.parse(path.read_text(), str(path)), False, False)


@functools.cache
def _all_imports() -> tuple[Import, ...]:
    modules = _modules()
    known = set(modules)
    return tuple(i for name, path in modules.items() for i in _imports_of(name, path, known))


def _upward() -> list[str]:
    found = []
    for i in _all_imports():
        low, high = _rank(i.importer), _rank(i.imported)
        if low is None:
            continue  # the facade's lazy table may name any layer
        if high is None:
            if low < len(LAYERS) - 1:
                found.append(f"{i.importer}:{i.line} imports the paramio facade; import the defining module")
        elif high > low and (i.importer, i.imported) not in ALLOWED_UPWARD:
            kind = "type-only " if i.type_only else "function-level " if i.in_function else ""
            found.append(f"{i.importer}:{i.line} {kind}imports {i.imported} (layer {high} > {low})")
    return found


def test_no_module_imports_a_higher_layer() -> None:
    assert _upward() == []


def test_no_upward_import_is_allowed() -> None:
    assert ALLOWED_UPWARD == {}


def test_subpackages_form_no_cycle() -> None:
    """Between subpackages (and the top-level modules), counting every import: module-level,
    inside functions and type-only. A cycle here is one rule split across two layers."""
    edges: dict[str, set[str]] = {}
    for i in _all_imports():
        a, b = i.importer.split("."), i.imported.split(".")
        if len(a) > 1 and len(b) > 1 and a[1] != b[1]:
            edges.setdefault(a[1], set()).add(b[1])
    cycles = sorted(f"{a} <-> {b}" for a in edges for b in edges[a] if a < b and _reaches(edges, b, a))
    assert cycles == []


#: Modules and attributes of presentation: terminals, bars, escaping for display.
_PRESENTATION_MODULES = {"rich", "re", "shutil", "curses", "readline", "textwrap"}
_PRESENTATION_ATTRIBUTES = {"isatty", "stderr", "stdout", "get_terminal_size"}


def test_the_floor_holds_plain_types_only() -> None:
    """``core/`` holds records, errors, tables and the source contract; a progress bar, terminal
    escaping or anything else that presents goes to the layer that uses it."""
    found = []
    for name, path in _modules().items():
        if not name.startswith("paramio.core"):
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                roots = {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and not node.level:
                roots = {(node.module or "").split(".")[0]}
            elif isinstance(node, ast.Attribute) and node.attr in _PRESENTATION_ATTRIBUTES:
                found.append(f"{name}:{node.lineno} uses .{node.attr}")
                continue
            else:
                continue
            for root in sorted(roots & _PRESENTATION_MODULES):
                found.append(f"{name}:{node.lineno} imports {root}")
    assert found == []


def _runtime_graph(*, with_packages: bool) -> dict[str, set[str]]:
    """Module -> what importing it imports at once: its module-level imports (not type-only),
    with the packages above each when `with_packages` (importing ``paramio.a.b`` runs
    ``paramio/a/__init__`` first)."""
    graph: dict[str, set[str]] = {}
    for i in _all_imports():
        if i.in_function or i.type_only:
            continue
        parts = i.imported.split(".")
        first = 2 if with_packages else len(parts)
        graph.setdefault(i.importer, set()).update(".".join(parts[:n]) for n in range(first, len(parts) + 1))
    return graph


def _reaches(graph: dict[str, set[str]], start: str, goal: str) -> bool:
    seen, todo = set(), [start]
    while todo:
        node = todo.pop()
        if node == goal:
            return True
        if node not in seen:
            seen.add(node)
            todo.extend(graph.get(node, ()))
    return False


def _subpackage(module: str) -> str:
    return ".".join(module.split(".")[:2])


def test_no_function_level_import_dodges_a_cycle() -> None:
    """An import inside a function is for start-up (import on first use), never to break a cycle:
    moving it to the top of its module must not make one. Across subpackages the check counts
    package ``__init__`` modules; inside one, where a package's ``__init__`` re-exports its own
    modules, it counts module-to-module imports only."""
    across, within = _runtime_graph(with_packages=True), _runtime_graph(with_packages=False)
    dodges = []
    for i in _all_imports():
        if not i.in_function or i.type_only or (i.importer, i.imported) in ALLOWED_UPWARD:
            continue
        if i.imported.startswith(i.importer + "."):
            continue  # a package importing its own module on first use
        graph = within if _subpackage(i.importer) == _subpackage(i.imported) else across
        if _reaches(graph, i.imported, i.importer):
            dodges.append(f"{i.importer}:{i.line} imports {i.imported} in a function; it imports {i.importer} back")
    assert dodges == []


def test_packages_of_one_layer_form_no_cycle() -> None:
    edges: dict[str, set[str]] = {}
    for i in _all_imports():
        a, b = i.importer.split("."), i.imported.split(".")
        if len(a) > 1 and len(b) > 1 and a[1] != b[1] and _rank(i.importer) == _rank(i.imported):
            edges.setdefault(a[1], set()).add(b[1])
    cycles = sorted(f"{a} <-> {b}" for a in edges for b in edges[a] if a < b and _reaches(edges, b, a))
    assert cycles == []


@pytest.mark.parametrize("name", ["core", "arrays", "sources", "formats", "index"])
def test_lower_layers_never_name_the_cli(name: str) -> None:
    """The CLI is presentation only: no layer below it reaches into it, even for a helper."""
    assert [i for i in _all_imports() if i.importer.startswith(f"paramio.{name}") and ".cli" in i.imported] == []
