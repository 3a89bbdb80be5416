"""No dead code in `src/paramio` (issue 23): every module-level function and class is used
somewhere in the package, by name, attribute, import, or a ``"module:name"`` / ``__all__`` string
(lazy tables name what they import that way). Read from the syntax trees, so a definition
kept "just in case" shows up here rather than drifting unnoticed."""

from __future__ import annotations

import ast
import collections
import re
from pathlib import Path

import paramio

PACKAGE = Path(paramio.__file__).resolve().parent
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _unused(root: Path) -> list[str]:
    defined: list[tuple[str, str, int]] = []
    uses: collections.Counter[str] = collections.Counter()
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                defined.append((path.relative_to(root).as_posix(), node.name, node.lineno))
        for node in ast.walk(tree):
            if isinstance(node, ast.Name):
                uses[node.id] += 1
            elif isinstance(node, ast.Attribute):
                uses[node.attr] += 1
            elif isinstance(node, ast.alias):
                uses[node.name.rsplit(".", 1)[-1]] += 1
                if node.asname:
                    uses[node.asname] += 1
            elif isinstance(node, ast.Constant) and isinstance(node.value, str) and len(node.value) < 200:
                uses.update(set(_IDENTIFIER.findall(node.value)))
    return [
        f"{where}:{line} {name}"
        for where, name, line in defined
        if not (name.startswith("__") and name.endswith("__")) and uses[name] == 0
    ]


def test_every_definition_is_used() -> None:
    assert _unused(PACKAGE) == []


def test_the_check_finds_an_unused_definition(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text(
        "def used(): ...\ndef dead(): ...\nclass _Kept: ...\nclass _Gone: ...\nTABLE = {'x': 'a:_Kept'}\nused()\n"
    )
    assert _unused(tmp_path) == ["a.py:2 dead", "a.py:4 _Gone"]


_GUARD = re.compile(r"""find_spec\(\s*["']paramio\.|__import__\(\s*f?["']paramio\.|not built yet""")


def test_no_guard_waits_for_paramio_s_own_modules() -> None:
    """Every paramio module exists: a test or command that skips "until paramio.formats.x is
    built" can only hide a failure now."""
    tests = PACKAGE.parents[1] / "tests"
    roots = [PACKAGE, *([tests] if tests.is_dir() else [])]
    this = Path(__file__).resolve()
    found = [
        f"{path}:{n}"
        for root in roots
        for path in sorted(root.rglob("*.py"))
        if path.resolve() != this
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if _GUARD.search(line)
    ]
    assert found == []
