"""``paramio load``: the summary line, the --json schema, usage errors, progress on a terminal
and silence in a pipe."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

Cli = Callable[..., tuple[int, str, str]]
SRC = str(Path(__file__).resolve().parents[2] / "src")


def test_text_summary(paramio_cli: Cli, st_file: tuple[Path, dict[str, np.ndarray]]) -> None:
    path, a = st_file
    code, out, err = paramio_cli("load", f"--parameters=model={path}")
    assert code == 0 and err == ""
    total = sum(x.nbytes for x in a.values())
    assert out.startswith(f"loaded {len(a)} tensors, {total} bytes into numpy in ")
    assert "GB/s" in out and out.count("\n") == 1


@pytest.mark.parametrize("into", ["numpy", "torch", "iree"])
def test_json_schema(paramio_cli: Cli, st_file: tuple[Path, dict[str, np.ndarray]], into: str) -> None:
    if into == "torch":
        pytest.importorskip("torch")
    if into == "iree":
        pytest.importorskip("iree.runtime")
    path, a = st_file
    code, out, err = paramio_cli("load", f"--parameters={path}", f"--into={into}", "--budget=64KiB", "--json")
    assert code == 0 and err == ""
    doc = json.loads(out)
    assert next(iter(doc)) == "version" and doc["version"] == 1
    assert set(doc) - {"import_seconds"} == {
        "tensors", "bytes", "seconds", "first_tensor_seconds", "gb_per_s", "into", "device", "budget",
        "concurrency", "chunk", "peak_in_flight", "peak_staging", "io", "io_note", "sources", "version",
    }  # fmt: skip
    assert doc["tensors"] == len(a) and doc["bytes"] == sum(x.nbytes for x in a.values())
    assert doc["into"] == into and doc["budget"] == 65536 and doc["sources"] == [str(path)]
    assert doc["device"] == ("local-task" if into == "iree" else None)
    assert 0 < doc["peak_in_flight"] <= 65536 and doc["seconds"] > 0 and doc["gb_per_s"] >= 0


def test_several_sources_and_scopes(
    paramio_cli: Cli, tmp_path: Path, st_file: tuple[Path, dict[str, np.ndarray]]
) -> None:
    path, a = st_file
    other = tmp_path / "o.irpa"
    code, _, _ = paramio_cli("create", "--splat=s=16xf32=1", f"--output={other}")
    assert code == 0
    code, out, _ = paramio_cli("load", f"--parameters=m={path}", f"--parameters=x={other}", "--json")
    assert code == 0 and json.loads(out)["tensors"] == len(a) + 1


def test_errors(paramio_cli: Cli, tmp_path: Path, st_file: tuple[Path, dict[str, np.ndarray]]) -> None:
    path, _ = st_file
    assert paramio_cli("load")[0] == 2
    code, _, err = paramio_cli("load", f"--parameters={path}", "--into=tensorflow")
    assert code == 2 and "--into=tensorflow: expected one of numpy, torch, jax, cupy, iree" in err
    code, _, err = paramio_cli("load", f"--parameters={path}", "--budget=lots")
    assert code == 2 and "--budget" in err
    code, _, err = paramio_cli("load", f"--parameters={tmp_path / 'missing.irpa'}")
    assert code == 1 and err.count("\n") == 1 and "missing.irpa" in err and "Traceback" not in err
    code, _, err = paramio_cli("load", "--parameters=ftp://host/model.irpa")  # URLs: tests/remote
    assert code == 1 and "no byte source for ftp:// URLs" in err and err.count("\n") == 1


_SHOW_BAR = (
    "import sys, paramio.formats.progress as p; p.MIN_BYTES_FOR_BAR = 0; "
    "from paramio.cli.main import main; sys.exit(main(sys.argv[1:]))"
)


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": SRC, "COLUMNS": "100", "TERM": "xterm"}


@pytest.mark.interop
def test_progress_on_a_terminal_silence_in_a_pipe(st_file: tuple[Path, dict[str, np.ndarray]]) -> None:
    path, _ = st_file
    args = [sys.executable, "-c", _SHOW_BAR, "load", f"--parameters={path}", "--budget=4KiB", "--concurrency=1"]
    piped = subprocess.run(args, capture_output=True, text=True, env=_env(), timeout=120)
    assert piped.returncode == 0 and piped.stderr == ""
    leader, follower = pty.openpty()
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=follower, env=_env())
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(leader, 4096)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    out, _ = proc.communicate(timeout=120)
    os.close(leader)
    assert proc.returncode == 0 and out.startswith(b"loaded ")
    shown = b"".join(chunks)
    assert b"loading" in shown  # the bar drew on the terminal (it erases itself when done)
