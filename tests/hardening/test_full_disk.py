"""Writable views of a sparse archive on a full filesystem (issue 24, item 15).

``paramio create --data`` leaves a zeroed entry as a hole. A store through a writable mapping
into a hole that the filesystem cannot fill kills the process with SIGBUS; paramio reserves the
blocks (``posix_fallocate``) before it hands out a writable view or writes through the map, so a
full disk is a `SourceError` (ENOSPC) and the process lives. Each case runs in a child on a
4 MiB tmpfs this test mounts (root only; skipped where mounting is refused).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

import paramio

SRC = str(Path(paramio.__file__).resolve().parents[1])
MIB = 1 << 20

_WRITE = """
import sys
import numpy as np
from paramio.core.errors import SourceError
from paramio.index.index import ParameterIndex
from paramio.index.provider import Provider

path, how = sys.argv[1], sys.argv[2]
try:
    if how == "view":
        view = ParameterIndex.open(path, writable=True)["hole"].to_numpy()
        view[:] = 1.0
    elif how == "writable_view":
        e = ParameterIndex.open(path, writable=True)["hole"]
        mv = e.source.writable_view(e.offset, e.length)
        mv[:] = b"\\x01" * e.length
    elif how == "source_write":
        e = ParameterIndex.open(path, writable=True)["hole"]
        e.source.write(e.offset, b"\\x01" * e.length)
    elif how == "provider":
        p = Provider.from_flags(["m=" + path], writable=True)
        p.write("m::hole", np.ones(1 << 19, np.float32))
except SourceError as exc:
    print("refused:", exc)
else:
    print("written")
"""


@pytest.fixture
def full_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs holding a sparse archive with a 2 MiB hole, and a filler taking every other block."""
    mnt = Path("/tmp") / f"paramio-full-{uuid.uuid4().hex[:8]}"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mnt)], capture_output=True, text=True)
    if r.returncode != 0:
        mnt.rmdir()
        pytest.skip(f"cannot mount a small tmpfs here: {r.stderr.strip()}")
    try:
        archive = mnt / "sparse.irpa"
        env = {**os.environ, "PYTHONPATH": SRC}
        r = subprocess.run(
            [sys.executable, "-m", "paramio", "create", "--data=hole=524288xf32", f"--output={archive}"],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
        assert r.returncode == 0, r.stderr
        assert archive.stat().st_size > 2 * MIB and archive.stat().st_blocks * 512 < MIB  # the entry is a hole
        fd = os.open(mnt / "filler", os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            while os.write(fd, b"\xff" * 4096):
                pass
        except OSError:
            pass  # ENOSPC: the filesystem is full
        finally:
            os.close(fd)
        yield archive
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)
        mnt.rmdir()


@pytest.mark.skipif(not hasattr(signal, "SIGBUS"), reason="no SIGBUS on this platform")
@pytest.mark.parametrize("how", ["view", "writable_view", "source_write", "provider"])
def test_a_write_into_a_hole_on_a_full_disk_is_an_error_not_sigbus(full_disk: Path, how: str) -> None:
    before = full_disk.read_bytes()
    r = subprocess.run(
        [sys.executable, "-c", _WRITE, str(full_disk), how],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": SRC},
        timeout=120,
    )
    assert r.returncode == 0, (r.returncode, r.stderr[-800:])
    assert r.stdout.startswith("refused: ") and "No space left on device" in r.stdout, r.stdout
    assert str(full_disk) in r.stdout
    assert full_disk.read_bytes() == before  # nothing was half written


def test_a_write_into_a_hole_with_room_lands(full_disk: Path) -> None:
    (full_disk.parent / "filler").unlink()
    r = subprocess.run(
        [sys.executable, "-c", _WRITE, str(full_disk), "view"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": SRC},
        timeout=120,
    )
    assert (r.returncode, r.stdout) == (0, "written\n"), r.stderr[-800:]
    assert paramio.ParameterIndex.open(full_disk)["hole"].read() == b"\x01" * (2 * MIB)  # untyped: bytes
