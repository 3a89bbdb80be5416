"""Each reader's bulk path (`paramio.formats.bulk`) against its reference reader, and when it runs.

The property tests hold `Format.read_source` (bulk path first) and `Format.read_reference`
equal on valid files and on random damaged copies (`paramio.testing.formats`): same entries
and attributes, or the same error class and message. The bulk path is taken for small tables
only when NumPy is already imported, so listing a file in a fresh process imports no NumPy.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

from paramio.formats.contract import get_format
from paramio.sources.memory import MemorySource
from paramio.testing.bulk import check_bulk_agrees, damaged

_SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _irpa_seed(folder: Path) -> bytes:
    """Data entries of several types, splats, an attributes record and a non-ASCII key."""
    import paramio

    index = paramio.ParameterIndex()
    for i in range(12):
        index.add_array(f"layer.{i}.w", np.arange(i + 1, dtype=np.float32 if i % 2 else np.int16))
        if i % 5 == 0:
            index.add_splat(f"layer.{i}.s", np.float32(i), 16)
    index.add_buffer("raw", b"\x01\x02\x03")
    index.add_array("größe", np.ones(3, np.int8))
    path = folder / "seed.irpa"
    paramio.write_path(str(path), index.values(), attributes={"general.name": "x"})
    return path.read_bytes()


def _safetensors_seed(folder: Path) -> bytes:
    """Several dtypes, a scalar, an empty tensor, a non-ASCII key and ``__metadata__``."""
    import safetensors.numpy

    tensors = {
        "a": np.arange(6, dtype=np.float32).reshape(2, 3),
        "b": np.zeros((0, 4), np.int64),
        "c": np.array(3, np.int8),
        "größe": np.ones(5, np.float16),
        "d": np.arange(12, dtype=np.uint8).reshape(3, 2, 2),
    }
    path = folder / "seed.safetensors"
    safetensors.numpy.save_file(tensors, str(path), metadata={"format": "pt", "k": "v"})
    return path.read_bytes()


def _gguf_seed(folder: Path) -> bytes:
    """Tensors of several shapes, a quantised one, a non-ASCII name; key/values of each kind."""
    import gguf

    path = folder / "seed.gguf"
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_uint32("n", 7)
    w.add_array("strs", ["x", "yy", ""])
    for i in range(8):
        w.add_tensor(f"t.{i}.é" if i == 5 else f"t.{i}", np.zeros((i % 3 + 1, 32), dtype=np.float32))
    w.add_tensor("q", np.zeros((2, 34), dtype=np.uint8), raw_dtype=gguf.GGMLQuantizationType.Q8_0)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path.read_bytes()


_SEEDS = {"irpa": _irpa_seed, "safetensors": _safetensors_seed, "gguf": _gguf_seed}


@functools.cache
def _seed(fmt: str) -> bytes:
    pytest.importorskip({"irpa": "numpy", "safetensors": "safetensors", "gguf": "gguf"}[fmt])
    with tempfile.TemporaryDirectory() as tmp:
        return _SEEDS[fmt](Path(tmp))


@pytest.mark.parametrize("fmt", sorted(_SEEDS))
def test_a_valid_file_takes_the_bulk_path_and_agrees(fmt: str) -> None:
    assert check_bulk_agrees(get_format(fmt), _seed(fmt)), "the seed must exercise the bulk path"


@pytest.mark.parametrize("fmt", sorted(_SEEDS))
def test_bulk_path_agrees_on_damaged_files(fmt: str) -> None:
    seed = _seed(fmt)

    @_SETTINGS
    @given(data=damaged(seed))
    def agrees(data: bytes) -> None:
        check_bulk_agrees(get_format(fmt), data)

    agrees()


def test_a_disagreement_is_reported() -> None:
    """The check can fail: a bulk path that drops an entry is caught."""
    fmt = get_format("irpa")
    broken_entries = fmt.replace(read_source=lambda source: fmt.read_source(source).replace(entries=[]))  # type: ignore[misc]
    with pytest.raises(AssertionError, match="bulk path"):
        check_bulk_agrees(broken_entries, _seed("irpa"))


def _listing_imports(path: Path) -> dict[str, object]:
    code = (
        "import contextlib, io, json, sys\n"
        "from paramio.cli.main import main\n"
        "out = io.StringIO()\n"
        "with contextlib.redirect_stdout(out):\n"
        f"    code = main(['dump', '--parameters={path}'])\n"
        "from paramio.index.index import ParameterIndex\n"
        f"n = len(ParameterIndex.open({str(path)!r}).items())\n"
        "print(json.dumps({'code': code, 'numpy': 'numpy' in sys.modules, 'rows': out.getvalue().count('`'), 'n': n}))\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.parametrize("fmt", sorted(_SEEDS))
def test_dump_of_a_small_file_imports_no_numpy(fmt: str, tmp_path: Path) -> None:
    """``paramio dump`` (and `items()`) of an ordinary file reads it entry by entry: NumPy costs a
    process more to import than the reference loops cost for a table of this size."""
    path = tmp_path / f"small.{fmt}"
    path.write_bytes(_seed(fmt))
    got = _listing_imports(path)
    assert got["code"] == 0 and got["numpy"] is False, got
    assert got["n"] and got["rows"] == 2 * int(got["n"])  # each key printed once in backticks


@pytest.mark.interop
def test_gguf_table_past_the_first_read_takes_the_bulk_path(tmp_path: Path) -> None:
    """A tensor table longer than the first read is read in bulk too, with the loop's result."""
    gguf = pytest.importorskip("gguf")
    from paramio.formats.gguf.reader import FIRST_READ

    path = tmp_path / "long.gguf"
    w = gguf.GGUFWriter(str(path), "llama")
    for i in range(6000):
        w.add_tensor(f"model.layers.{i}.attention.weight", np.zeros(4, np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    data = path.read_bytes()
    assert data.index(b"model.layers.5999.") > FIRST_READ
    assert check_bulk_agrees(get_format("gguf"), data)
    contents = get_format("gguf").read_source(MemorySource(data, name="long.gguf"))  # type: ignore[misc]
    assert [e.key for e in contents.entries][-1] == "model.layers.5999.attention.weight"
