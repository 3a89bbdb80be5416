"""One `Progress` type (issue 23): every ``progress`` parameter in `src/paramio` is a byte-count
callback, `paramio.core.source.Progress` (or the equivalent ``Callable[[int], None]``), never an
``object`` called through a ``type: ignore``."""

from __future__ import annotations

import ast
from pathlib import Path

import paramio
from paramio.core.source import Progress
from paramio.formats.progress import ByteProgress

PACKAGE = Path(paramio.__file__).resolve().parent
_ACCEPTED = {"Progress", "Progress | None", "Callable[[int], None]", "Callable[[int], None] | None"}


def test_every_progress_parameter_is_a_byte_callback() -> None:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                a = node.args
                for arg in [*a.posonlyargs, *a.args, *a.kwonlyargs]:
                    if arg.arg == "progress" and arg.annotation is not None:
                        text = ast.unparse(arg.annotation)
                        if text not in _ACCEPTED and "Progress" not in text:
                            found.append(f"{path.relative_to(PACKAGE)}:{node.lineno} {node.name}: {text}")
    assert found == []


def test_the_bar_and_a_plain_function_are_progress() -> None:
    ticks: list[int] = []
    callbacks: list[Progress] = [ticks.append, ByteProgress(10, "x", quiet=False, force=True).advance]
    for callback in callbacks:
        callback(3)
    assert ticks == [3]
