"""No module names a format outside the format's own home (issue 23.2): what formats differ in is
a field of their `Format` contract (`paramio.formats.contract`), so adding or changing a format
is an edit in its own package. Read from the sources' syntax trees: a string literal that is a
format's name, one of its extensions, a name ending with one (``model.safetensors``) or a key
in its namespace (``gguf.kv``), and an import of its package, count; prose (help text, messages
with spaces) and docstrings do not."""

from __future__ import annotations

import ast
import functools
import re
from collections.abc import Iterator
from pathlib import Path

import paramio
from paramio.formats.contract import _BUILTIN, formats_above

PACKAGE = Path(paramio.__file__).resolve().parent

#: ``(module, what it names)`` kept on purpose, each with its reason. Nothing else may name a format.
ALLOWED: dict[tuple[str, str], str] = {
    ("paramio.formats.contract", "irpa"): "the declared table (name, extensions, module) and ARCHIVE",
    ("paramio.formats.contract", "safetensors"): "the declared table, read before any format is imported",
    ("paramio.formats.contract", "gguf"): "the declared table, read before any format is imported",
    ("paramio", "irpa"): "the public facade re-exports IREE's create_parameters from the archive's package",
    ("paramio", "tp"): "the package root declares the tensor-parallel format defined above formats/",
    ("paramio.index.index", "irpa"): "create_archive_file writes IREE's archive with its own writer (IREE's bytes)",
    # hf:// picks the file a Hugging Face repository opens by the hub's own file names; sources/
    # sits below formats/ and cannot ask the registry. Moving the choice up is the fix.
    ("paramio.sources.hf", "irpa"): "Hugging Face repository layout (below formats/)",
    ("paramio.sources.hf", "safetensors"): "Hugging Face repository layout (below formats/)",
    ("paramio.sources.hf", "gguf"): "Hugging Face repository layout (below formats/)",
    ("paramio.iree.encode", "irpa"): "IREE's encoder writes IREE's archive, planned by IRPA's own planner",
    ("paramio.cli.encode", "irpa"): "iree-encode-parameters' flag help, word for word",
    ("paramio.index.overlay", "irpa"): "an overlay is an IRPA file rewritten in place by IRPA's own planner",
    ("paramio.cli.example_run", "irpa"): "the example converts between named formats to show them",
    ("paramio.cli.example_run", "safetensors"): "the example converts between named formats to show them",
    ("paramio.cli.guide_model", "safetensors"): "the guide's inputs are one file of each named format",
    ("paramio.cli.guide_model", "gguf"): "the guide's inputs are one file of each named format",
    ("paramio.sharding.vllm", "safetensors"): "vLLM's sharded_state layout is safetensors files by definition (FORMAT)",
    # Sharded sets: the tensor-parallel manifest (the `tp` format is defined in paramio.sharding).
    ("paramio.sharding.iree", "tp"): "set members of IREE's sharded layout (issue 23.1)",
}


def _formats() -> dict[str, tuple[tuple[str, ...], str, bool]]:
    """name -> (extensions, home module, whether the bare name counts) for every format paramio
    declares. A format declared above formats/ (``tp``) lives in a library subpackage whose API
    its commands call, and its bare name is an ordinary word there (``tp=4`` devices): only its
    extensions count."""
    out = {d.name: (d.extensions, d.module, True) for d in _BUILTIN}
    out.update({name: (tuple(exts), module, False) for name, exts, module in formats_above()})
    return out


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


@functools.cache
def _parsed(path: Path) -> tuple[ast.Module, set[int]]:
    tree = ast.parse(path.read_text(), str(path))
    return tree, _docstrings(tree)


def _docstrings(tree: ast.AST) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                found.add(id(first.value))
    return found


def _namings(
    module: str, path: Path, name: str, extensions: tuple[str, ...], home: str, bare: bool = True
) -> Iterator[int]:
    """Line numbers where `module` names format `name` (whose code lives in `home`)."""
    ends = "|".join(re.escape(e) for e in extensions)
    names = rf"{re.escape(name)}(?:\..+)?|{re.escape(home)}(?:\..+)?|" if bare else ""
    token = re.compile(rf"^(?:{names}.*(?:{ends}))$", re.IGNORECASE)
    package = home if bare else "\0"  # no module is named so
    tree, docs = _parsed(path)
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs:
            text = node.value
            if text and not any(c.isspace() for c in text) and token.match(text):
                yield node.lineno
        elif isinstance(node, ast.ImportFrom) and node.module is not None and not node.level:
            if node.module == package or node.module.startswith(package + "."):
                yield node.lineno
        elif isinstance(node, ast.Import):
            if any(a.name == package or a.name.startswith(package + ".") for a in node.names):
                yield node.lineno


def _is_home(module: str, home: str) -> bool:
    return module == home or module.startswith(home + ".")


def _found() -> dict[tuple[str, str], list[int]]:
    found: dict[tuple[str, str], list[int]] = {}
    modules = _modules()
    for name, (extensions, home, bare) in _formats().items():
        for module, path in modules.items():
            if not _is_home(module, home):
                lines = list(_namings(module, path, name, extensions, home, bare))
                if lines:
                    found[(module, name)] = lines
    return found


def test_no_module_names_a_format_outside_its_home() -> None:
    unexpected = {f"{m}:{lines} names {name}" for (m, name), lines in _found().items() if (m, name) not in ALLOWED}
    assert sorted(unexpected) == []


def test_every_allowed_naming_is_still_there() -> None:
    """An entry no longer needed goes, so the list only shrinks."""
    assert sorted(set(ALLOWED) - set(_found())) == []


def test_the_check_sees_a_naming(tmp_path: Path) -> None:
    """The scan finds each kind of naming it promises to, and passes prose and docstrings."""
    code = tmp_path / "m.py"
    code.write_text(
        '"""A docstring naming gguf.kv and model.gguf."""\n'
        'A = "gguf.kv"\n'
        'B = ".gguf"\n'
        'C = "model-00001-of-00002.GGUF"\n'
        'D = "gguf"\n'
        "from paramio.formats.gguf.constants import MAGIC\n"
        'E = "write a GGUF file, or model.gguf"\n'
        'F = "ggufx"\n'
        'G = "paramio.formats.gguf.writer"\n'
    )
    assert sorted(_namings("m", code, "gguf", (".gguf",), "paramio.formats.gguf")) == [2, 3, 4, 5, 6, 9]
