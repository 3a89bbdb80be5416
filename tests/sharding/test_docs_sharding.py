"""Every example in docs/sharding.md runs: Python blocks in order in one namespace, and each
``$ paramio ...`` line of a console block with its output compared line for line."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from safetensors.numpy import save_file
from tp_models import model_tensors

DOC = Path(__file__).parents[2] / "docs" / "sharding.md"
_BLOCK = re.compile(r"^```(\w+)\n(.*?)^```", re.S | re.M)


def test_docs_examples_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, paramio_cli) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.chdir(tmp_path)
    save_file(model_tensors(), "model.safetensors", metadata={"format": "np"})
    namespace: dict[str, object] = {}
    ran = 0
    for lang, body in _BLOCK.findall(DOC.read_text()):
        if lang == "python":
            exec(compile(body, f"{DOC.name}:python", "exec"), namespace)
            ran += 1
        elif lang == "console":
            for command, expected in _commands(body):
                args = shlex.split(command)
                assert args[0] == "paramio"
                code, out, err = paramio_cli(*args[1:])
                assert code == 0, (command, err)
                assert out.splitlines() == expected, command
                ran += 1
    assert ran >= 8


def _commands(body: str) -> list[tuple[str, list[str]]]:
    out: list[tuple[str, list[str]]] = []
    for line in body.splitlines():
        if line.startswith("$ "):
            out.append((line[2:], []))
        else:
            out[-1][1].append(line)
    return out
