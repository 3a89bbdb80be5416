"""Every command in a ``sh`` block of docs/cli.md (and of the README) runs, in order, in one empty folder
after only the guide's first step (``paramio example --make_inputs=.``), with the exit status the page says (0 unless a
``# exit N`` comment says otherwise). A doc example that no longer holds fails here."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "cli.md"
#: Pages whose ``sh`` blocks run from the same two inputs (the README's CLI block once it is one).
PAGES = [DOC, ROOT / "README.md"]
_BLOCK = re.compile(r"^```sh\n(.*?)^```", re.S | re.M)
_EXIT = re.compile(r"#\s*exit (\d+)")


def doc_commands(text: str) -> list[tuple[str, int]]:
    """(command line, expected exit status) for each ``paramio`` line of each ``sh`` block."""
    out: list[tuple[str, int]] = []
    for block in _BLOCK.findall(text):
        for line in block.replace("\\\n", " ").splitlines():
            if line.strip().startswith("paramio "):
                m = _EXIT.search(line)
                out.append((line.strip(), int(m.group(1)) if m else 0))
    return out


def _inputs(folder: Path, paramio_cli) -> None:  # type: ignore[no-untyped-def]
    """Only what the guide's first step writes, made as a reader makes it."""
    code, _, err = paramio_cli("example", f"--make_inputs={folder}")
    assert code == 0, err
    assert sorted(p.name for p in folder.iterdir()) == ["model.gguf", "model.safetensors"]


def test_the_page_has_examples_for_every_command() -> None:
    commands = {shlex.split(line)[1] for line, _ in doc_commands(DOC.read_text())}
    assert {"create", "convert", "dump", "verify", "which"} <= commands


@pytest.mark.interop
@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_every_example_runs(page: Path, tmp_path: Path, paramio_cli, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    commands = doc_commands(page.read_text())
    if not commands:
        pytest.skip(f"{page.name} has no paramio command in a sh block")
    _inputs(tmp_path, paramio_cli)
    monkeypatch.chdir(tmp_path)
    for line, expected in commands:
        argv = shlex.split(line, comments=True)
        code, _, err = paramio_cli(*argv[1:])
        assert code == expected, f"{line}\n{err}"
        assert "Traceback" not in err
