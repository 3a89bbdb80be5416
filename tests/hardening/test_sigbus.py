"""Views into a mapped file die with SIGBUS when another program truncates the file; the
copy-on-open mode (`ParameterIndex.open(copy=True)`) keeps them valid (issue 18, item 9)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import paramio
from paramio.core.errors import InvalidArgumentError

_TOUCH = """
import os, sys
import paramio
index = paramio.ParameterIndex.open(sys.argv[1], copy=sys.argv[2] == "copy")
view = index["w"].to_numpy()            # a view: into the map, or into the in-memory copy
os.truncate(sys.argv[1], 0)             # what another program rewriting the file does
print(int(view.astype("int64").sum()))  # touch every page of the view
"""


def _touch(path: Path, mode: str) -> subprocess.CompletedProcess[str]:
    src = str(Path(paramio.__file__).resolve().parent.parent)
    env = {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run(
        [sys.executable, "-c", _TOUCH, str(path), mode], capture_output=True, text=True, timeout=120, env=env
    )


def _archive(tmp_path: Path) -> tuple[Path, int]:
    w = np.arange(1 << 18, dtype=np.int32)  # 1 MiB: pages well past the header
    path = tmp_path / "m.safetensors"
    index = paramio.ParameterIndex()
    index.add_array("w", w)
    paramio.write_path(str(path), index.values())
    return path, int(w.astype(np.int64).sum())


@pytest.mark.skipif(not hasattr(signal, "SIGBUS"), reason="no SIGBUS on this platform")
def test_mapped_view_dies_with_sigbus_when_the_file_is_truncated(tmp_path: Path) -> None:
    """The documented risk: the default (mapped) mode cannot survive the file shrinking."""
    path, _ = _archive(tmp_path)
    result = _touch(path, "map")
    assert result.returncode == -signal.SIGBUS, (result.returncode, result.stderr[-500:])


def test_copy_mode_keeps_views_valid_when_the_file_is_truncated(tmp_path: Path) -> None:
    path, expected = _archive(tmp_path)
    result = _touch(path, "copy")
    assert result.returncode == 0, result.stderr[-500:]
    assert int(result.stdout) == expected
    assert path.stat().st_size == 0  # the file really was truncated under the view


def test_copy_mode_reads_every_format_and_names_the_file(tmp_path: Path) -> None:
    arrays = {"a": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.ones(4, np.int8)}
    for ext in ("irpa", "safetensors", "gguf"):
        index = paramio.ParameterIndex()
        for k, v in arrays.items():
            index.add_array(k, v)
        path = tmp_path / f"m.{ext}"
        paramio.write_path(str(path), index.values())
        copied = paramio.ParameterIndex.open(path, copy=True)
        path.write_bytes(b"")  # the copy no longer depends on the file
        for k, v in arrays.items():
            got = copied[k].to_numpy()
            np.testing.assert_array_equal(got.reshape(v.shape).view(v.dtype), v)
            assert copied[k].source is not None and copied[k].source.path == str(path)


def test_copy_mode_cannot_be_writable(tmp_path: Path) -> None:
    path, _ = _archive(tmp_path)
    with pytest.raises(InvalidArgumentError, match="cannot also be writable"):
        paramio.ParameterIndex.open(path, copy=True, writable=True)


def test_convert_preload_reads_into_memory(tmp_path: Path) -> None:
    from paramio.cli.main import main

    path, expected = _archive(tmp_path)
    out = tmp_path / "o.irpa"
    assert main(["convert", f"--parameters={path}", f"--output={out}", "--parameter_mode=preload", "--quiet"]) == 0
    got = paramio.ParameterIndex.open(out)["w"].to_numpy().view(np.int32)
    assert int(got.astype(np.int64).sum()) == expected
