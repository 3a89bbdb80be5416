"""Crash safety: a writer killed with SIGKILL at random points never leaves a partial file under
a final name, and every archive that exists opens and reads back exactly."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

KILLS = 30

# The child writes archives forever: by the library (IRPA create) and by conversion
# (`paramio.write_path` from an index opened from a safetensors file). Every file's content is a
# function of its name, so the parent can verify whatever it finds.
_CHILD = r"""
import sys, itertools, numpy as np
import paramio
folder = sys.argv[1]
src = paramio.ParameterIndex.open(folder + "/src.safetensors")
for n in itertools.count():
    if n == 2:
        # One archive of each kind exists before the parent starts killing, so every kill has
        # files to verify however slow this machine is.
        print("ready", flush=True)
    k = n % 4
    if n % 2 == 0:
        index = paramio.ParameterIndex()
        for i in range(6):
            index.add_array(f"t{i}", np.full((1 << 16,), k * 10 + i, dtype=np.float32))
        index.create_archive_file(f"{folder}/lib{k}.irpa")
    else:
        paramio.write_path(f"{folder}/conv{k}.irpa", src.values(), attributes=src.attributes)
"""


def _expected_source(folder: Path) -> dict[str, np.ndarray]:
    return {f"w{i}": np.arange(1 << 17, dtype=np.float32) * (i + 1) for i in range(4)}


def _verify(folder: Path, source: dict[str, np.ndarray]) -> int:
    """Check every final-named archive; returns how many were checked."""
    import paramio

    checked = 0
    for path in sorted(folder.glob("*.irpa")):
        index = paramio.ParameterIndex.open(str(path))
        if path.name.startswith("lib"):
            k = int(path.stem[3:])
            assert index.keys() == [f"t{i}" for i in range(6)]
            for i in range(6):
                arr = index[f"t{i}"].to_numpy()
                assert arr.shape == (1 << 16,) and bool(np.all(arr == k * 10 + i)), path
        else:
            assert index.keys() == list(source)
            for key, want in source.items():
                np.testing.assert_array_equal(index[key].to_numpy(), want)
        checked += 1
    return checked


@pytest.mark.slow
@pytest.mark.interop
def test_sigkill_leaves_no_partial_archives(tmp_path: Path) -> None:
    import safetensors.numpy

    source = _expected_source(tmp_path)
    safetensors.numpy.save_file(source, str(tmp_path / "src.safetensors"))
    rng = random.Random(11)
    checked = 0
    for _ in range(KILLS):
        proc = subprocess.Popen(
            [sys.executable, "-c", _CHILD, str(tmp_path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if line.strip() != "ready":
            proc.kill()
            pytest.fail(f"child did not start: {line!r} {proc.communicate()[1][-2000:]}")
        time.sleep(rng.uniform(0.0, 0.06))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        assert proc.returncode == -signal.SIGKILL, proc.stderr.read() if proc.stderr else ""
        checked += _verify(tmp_path, source)
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    # Only temporary files (never a final name) may be left behind by a killed writer.
    assert all(p.startswith(".") for p in leftovers)
    assert checked > 0
