"""The one mechanism that runs the guide's code blocks (docs/*.md), block by block, in page order.

The rules a page is written to, so a reader of the source knows what runs:

- ```` ```python ````: executed in-process, every block of a page in one namespace, with the page's
  folder (a fresh empty folder after only the guide's first step, `guide_inputs.make_inputs`) as
  the working directory. Its ``assert`` lines are the checks.
- ```` ```console ````: each ``$ command`` line (``\\`` continues it) runs in that folder; the lines
  after it, up to the next ``$``, are its output (stdout then stderr, trailing blank lines dropped), compared line for line; a
  line ``...`` stands for any number of lines, and a line ending in ``...`` for any line that
  starts with what precedes it. ``# exit N`` at the end of the command says its exit
  status (else 0). ``paramio`` runs in-process, ``iree-*`` tools and ``python`` as processes.
- ```` ```sh ````: every command runs as in a console block; the output is not shown, so not compared.
- ```` ```mlir ```` whose first line is ``// file: NAME``: written to NAME (a later block compiles it).
- ```` ```text ````, ```` ```json ````, ```` ```toml ````, ```` ```yaml ````: output or data a page
  shows, not code.
- A code block that must not run has, on the line just above it, ``<!-- not run: REASON -->``.
- A fence with no language is refused: each block says what it is.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

#: Languages that are code, and run.
RUN = {"python", "console", "sh", "mlir"}
#: Languages that are shown data: output, file contents.
DATA = {"text", "json", "toml", "yaml"}

_FENCE = re.compile(r"^(?P<indent> *)```(?P<info>[^\n`]*)\n(?P<body>.*?)^(?P=indent)```[ \t]*$", re.S | re.M)
_NOT_RUN = re.compile(r"<!--\s*not run:\s*(?P<why>.+?)\s*-->\s*$")
_EXIT = re.compile(r"\s+#\s*exit (\d+)\s*$")


@dataclass(frozen=True, slots=True)
class Block:
    """One fenced block of a page: its language, body, first line number, and why it does not run."""

    lang: str
    body: str
    line: int
    not_run: str | None


def blocks(text: str) -> list[Block]:
    """The fenced blocks of a Markdown page, in order (indented fences, as in lists, included)."""
    out: list[Block] = []
    for m in _FENCE.finditer(text):
        start = text.count("\n", 0, m.start()) + 1
        before = text[: m.start()].rstrip("\n").rsplit("\n", 1)[-1]
        why = _NOT_RUN.search(before)
        indent = len(m.group("indent"))
        body = "\n".join(line[indent:] for line in m.group("body").splitlines()) + "\n"
        lang = m.group("info").strip().split(" ", 1)[0].split("{", 1)[0]
        out.append(Block(lang, body, start, why.group("why") if why else None))
    return out


@dataclass(frozen=True, slots=True)
class Command:
    """One ``$ command`` of a console block, its expected exit status and shown output lines."""

    line: str
    exit: int
    output: list[str]


def commands(body: str, *, prompt: bool) -> list[Command]:
    """The commands of a console (``prompt``) or sh block; sh blocks show no output."""
    out: list[Command] = []
    lines = body.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if prompt and not line.startswith("$ "):
            if not out:
                raise AssertionError(f"console output before any command: {line!r}")
            out[-1].output.append(line)
            continue
        cmd = line[2:] if prompt else line
        while cmd.endswith("\\") and i < len(lines):
            cmd = cmd[:-1].rstrip() + " " + lines[i].strip()
            i += 1
        if not prompt and (not cmd.strip() or cmd.lstrip().startswith("#")):
            continue
        m = _EXIT.search(cmd)
        status = int(m.group(1)) if m else 0
        out.append(Command(cmd[: m.start()] if m else cmd, status, []))
    return out


def matches(shown: list[str], actual: list[str]) -> bool:
    """Whether output lines match the shown ones (``...`` rules: the module docstring)."""
    if not shown:
        return not actual
    if shown[0] == "...":
        return any(matches(shown[1:], actual[k:]) for k in range(len(actual) + 1))
    return bool(actual) and _line_matches(shown[0], actual[0]) and matches(shown[1:], actual[1:])


def _line_matches(shown: str, actual: str) -> bool:
    """Equal, or for a shown line ending in ``...``, the actual one starts with what precedes it."""
    if shown.endswith("..."):
        return actual.startswith(shown[:-3])
    return shown.rstrip() == actual.rstrip()


def run_command(line: str, tool: Callable[[str], str]) -> tuple[int, str]:
    """Run one documented command in the current folder: (exit status, stdout + stderr)."""
    args = shlex.split(line, comments=True)
    if args[0] == "paramio":
        from paramio.cli.main import main

        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(args[1:])
        return code, out.getvalue() + err.getvalue()
    if args[0] == "python":
        args[0] = sys.executable
    elif args[0].startswith("iree-"):
        args[0] = tool(args[0])
    else:
        raise AssertionError(f"the guide runs paramio, iree-* and python commands only, not {args[0]!r}")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([*sys.path[:1], env.get("PYTHONPATH", "")])
    r = subprocess.run(args, capture_output=True, text=True, timeout=300, env=env)
    return r.returncode, r.stdout + r.stderr


def _raise_missing_extra(output: str) -> None:
    """A command that failed for want of an optional package says so in one line (``needs the
    torch extra: pip install 'paramio[torch]'``): raise it as the library would, for the test
    to skip on."""
    from paramio.core.errors import MissingExtraError

    for line in output.splitlines():
        head, sep, rest = line.partition(": needs the ")
        if sep and rest.endswith("]'") and " extra: pip install 'paramio[" in rest:
            raise MissingExtraError(rest.split(" ", 1)[0])


def run_page(page: Path, tool: Callable[[str], str]) -> int:
    """Run every code block of `page` in the current folder; returns how many blocks ran."""
    namespace: dict[str, object] = {"__name__": f"guide:{page.name}"}
    ran = 0
    for block in blocks(page.read_text()):
        where = f"{page.name}:{block.line}"
        if block.lang == "" or (block.lang not in RUN and block.lang not in DATA):
            raise AssertionError(f"{where}: a fence must name its language (one of {sorted(RUN | DATA)})")
        if block.not_run is not None or block.lang in DATA:
            continue
        if block.lang == "python":
            # Blank lines first, so a traceback names the page's own line numbers.
            exec(compile("\n" * block.line + block.body, str(page), "exec"), namespace)  # noqa: S102 - the page's own example
        elif block.lang == "mlir":
            first, _, rest = block.body.partition("\n")
            if not first.startswith("// file:"):
                raise AssertionError(f"{where}: an mlir block starts with '// file: NAME'")
            Path(first.removeprefix("// file:").strip()).write_text(rest)
        else:
            for cmd in commands(block.body, prompt=block.lang == "console"):
                code, output = run_command(cmd.line, tool)
                if code != cmd.exit:
                    _raise_missing_extra(output)
                assert code == cmd.exit, f"{where}: {cmd.line}: exit {code}, not {cmd.exit}\n{output}"
                assert "Traceback" not in output, f"{where}: {cmd.line}\n{output}"
                if block.lang == "console":
                    assert matches(cmd.output, output.rstrip().splitlines()), (
                        f"{where}: {cmd.line}: the output differs from the page.\n--- page:\n"
                        + "\n".join(cmd.output)
                        + "\n--- actual:\n"
                        + output
                    )
        ran += 1
    return ran
