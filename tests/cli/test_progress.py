"""Progress on a terminal, silence in pipes, for every command that can run for seconds
(issue 17 item 6): checked on a real pseudo-terminal."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("rich")

SIZE = "67108864xi8=7"  # 64 MiB, patterned (written byte by byte), the bar's threshold


def _env() -> dict[str, str]:
    src = str(Path(__file__).resolve().parents[2] / "src")
    return {**os.environ, "PYTHONPATH": src, "TERM": "xterm", "COLUMNS": "100"}


def _on_tty(args: list[str]) -> tuple[int, bytes]:
    """Run ``paramio ARGS`` with stdout and stderr on a pty; (exit status, what the tty got)."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "paramio", *args], stdin=subprocess.DEVNULL, stdout=slave, stderr=slave, env=_env()
    )
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    return proc.wait(timeout=120), b"".join(chunks)


def _in_pipe(args: list[str]) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "paramio", *args], capture_output=True, env=_env(), timeout=120)


@pytest.mark.parametrize("command", ["create", "extract"])
def test_bar_on_a_terminal_and_nothing_in_a_pipe(command: str, tmp_path: Path) -> None:
    big = tmp_path / "big.irpa"
    create = ["create", f"--data=w={SIZE}", f"--output={big}", "--quiet"]
    if command == "create":
        tty_args, pipe_args = create[:-1], [*create[:-2], f"--output={tmp_path / 'b2.irpa'}", "--quiet"]
        label = b"writing"
    else:
        assert _in_pipe(create).returncode == 0
        tty_args = ["dump", str(big), f"--extract=w={tmp_path / 'w.bin'}"]
        pipe_args = ["dump", str(big), f"--extract=w={tmp_path / 'w2.bin'}"]
        label = b"extracting"
    code, seen = _on_tty(tty_args)
    assert code == 0, seen
    assert label in seen and b"\x1b[" in seen  # rich drew (and cleared) a bar
    piped = _in_pipe(pipe_args)
    assert piped.returncode == 0 and piped.stderr == b""
    if command == "extract":
        assert (tmp_path / "w.bin").read_bytes() == (tmp_path / "w2.bin").read_bytes() == b"\x07" * (64 << 20)
    # --quiet silences the bar on a terminal too
    code, seen = _on_tty(
        [*tty_args[:-1], tty_args[-1] + ".q", "--quiet"]
        if command == "extract"
        else [*create[:-2], f"--output={tmp_path / 'b3.irpa'}", "--quiet"]
    )
    assert code == 0 and label not in seen
