"""docs/mlir.md runs as written: its files are written, its commands run and their output checked.

Blocks, in page order: ```mlir whose first line is ``// NAME`` is written to NAME; one whose first
line is ``// expected: NAME`` lists lines NAME must contain; ```python is executed; ```console
runs each ``$ command`` (``paramio`` in-process, IREE's tools and ``cat`` as processes) and checks
that its output is the lines shown after it, line for line (``...`` stands for any lines).
"""

from __future__ import annotations

import contextlib
import io
import re
import shlex
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import compiler_tool

# The guide's own rules for console blocks (``...`` lines), from tests/docs: one definition.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "docs"))
from guide_runner import commands, matches  # noqa: E402

pytestmark = [pytest.mark.interop, pytest.mark.slow, pytest.mark.usefixtures("bindings")]

DOC = Path(__file__).resolve().parents[2] / "docs" / "mlir.md"
_FENCE = re.compile(r"^```(\w+)\n(.*?)^```$", re.S | re.M)


def blocks() -> list[tuple[str, str]]:
    return [(m.group(1), m.group(2)) for m in _FENCE.finditer(DOC.read_text())]


def test_the_page_has_the_examples_this_test_runs() -> None:
    kinds = [k for k, _ in blocks()]
    assert kinds.count("console") >= 5 and kinds.count("mlir") >= 3 and kinds.count("python") >= 2


def _run(command: str, tool: Callable[[str], str]) -> str:
    args = shlex.split(command)
    if args[0] == "paramio":
        from paramio.cli.main import main

        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(args[1:])
        assert code == 0, f"{command}: {err.getvalue()}"
        return out.getvalue()
    if args[0] in ("iree-compile", "iree-opt"):
        args[0] = compiler_tool(args[0])
    elif args[0].startswith("iree-"):
        args[0] = tool(args[0])
    r = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, f"{command}: {r.stderr}"
    return r.stdout


def test_every_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, iree_tool: Callable[[str], str]) -> None:
    monkeypatch.chdir(tmp_path)
    _run("paramio example --make_inputs=.", iree_tool)  # the guide's first step, as a reader runs it
    for kind, body in blocks():
        if kind == "mlir":
            first, _, rest = body.partition("\n")
            name = first.removeprefix("//").strip()
            if name.startswith("expected:"):
                text = Path(name.removeprefix("expected:").strip()).read_text()
                for line in rest.splitlines():
                    assert line in text, line
            else:
                Path(name).write_text(rest)
        elif kind == "python":
            exec(compile(body, str(DOC), "exec"), {})  # noqa: S102 - the page's own example
        elif kind == "console":
            for cmd in commands(body, prompt=True):
                command, shown = cmd.line, cmd.output
                output = _run(command, iree_tool)
                assert matches(shown, output.rstrip().splitlines()), (
                    f"{command}: the output differs from the page.\n--- page:\n"
                    + "\n".join(shown)
                    + f"\n--- actual:\n{output}"
                )
