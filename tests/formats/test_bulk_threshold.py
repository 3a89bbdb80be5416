"""When a reader imports NumPy for its bulk path (`paramio.formats.bulk.use_bulk`): each format
names its own break-even with its path without NumPy, so listing a table of tens of thousands of
entries in a fresh process (``paramio dump``) does not pay 50-100 ms of NumPy import."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import paramio
from paramio.formats import bulk
from paramio.formats.gguf import reader as gguf_reader
from paramio.formats.irpa import reader as irpa_reader
from paramio.formats.safetensors import reader as st_reader

SRC = str(Path(paramio.__file__).resolve().parents[1])
ENTRIES = 10_000  # above the old single threshold (8,192), below every format's own


def test_each_reader_names_a_break_even_above_the_default() -> None:
    for reader in (irpa_reader, gguf_reader, st_reader):
        assert reader.BULK_FROM_ENTRIES > ENTRIES > bulk.BULK_MIN_ENTRIES


def test_use_bulk_takes_the_readers_count_unless_numpy_is_imported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "numpy")
    assert not bulk.use_bulk(ENTRIES, 1 << 15)
    assert bulk.use_bulk(1 << 15, 1 << 15)
    assert bulk.use_bulk(ENTRIES)  # the default count
    monkeypatch.setitem(sys.modules, "numpy", np)
    assert bulk.use_bulk(1, 1 << 15)


@pytest.fixture(scope="module")
def large_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("large")
    index = paramio.ParameterIndex()
    for i in range(ENTRIES):
        index.add_buffer(f"layer.{i}.weight", np.full(4, i, np.float32))
    files = {"irpa": folder / "m.irpa"}
    index.create_archive_file(str(files["irpa"]))
    entries = paramio.read_path(files["irpa"]).entries
    for fmt in ("safetensors", "gguf"):
        files[fmt] = folder / f"m.{fmt}"
        paramio.write_path(files[fmt], entries)
    return files


@pytest.mark.parametrize("fmt", ["irpa", "safetensors", "gguf"])
def test_a_dump_of_ten_thousand_entries_imports_no_numpy(fmt: str, large_files: dict[str, Path]) -> None:
    code = (
        "import contextlib, io, sys\n"
        "from paramio.cli.main import main\n"
        "out = io.StringIO()\n"
        "with contextlib.redirect_stdout(out):\n"
        "    assert main(['dump', sys.argv[1]]) == 0\n"
        "print(__import__('json').dumps(['numpy' in sys.modules, out.getvalue().count('layer.')]))\n"
    )
    env = {**os.environ, "PYTHONPATH": SRC}
    done = subprocess.run(
        [sys.executable, "-c", code, str(large_files[fmt])], env=env, capture_output=True, text=True, check=True
    )
    numpy_imported, rows = json.loads(done.stdout.strip().splitlines()[-1])
    assert rows == ENTRIES
    assert not numpy_imported
