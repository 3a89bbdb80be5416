"""The NumPy-free tensor table reader (`paramio.formats.gguf.table`: what ``paramio dump`` of an
ordinary file takes) under the reference loop's own tests: every test imported here runs again
with the NumPy bulk path switched off, so the plain reader is the fast path they check."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import paramio.formats.gguf.reader as reader
from paramio.core.entries import LazyEntries
from paramio.core.errors import ParamioError
from paramio.sources.memory import MemorySource

gguf = pytest.importorskip("gguf")

from test_gguf_fast_paths import (  # noqa: E402, F401  (collected again, under the fixture below)
    _outcome,
    test_fast_table_matches_the_loop,
    test_low_byte_walk_checked_against_full_fields,
)
from test_gguf_mutation import (  # noqa: E402, F401
    sample,
    test_byte_flips,
    test_hostile_files,
    test_truncation_everywhere,
)


@pytest.fixture(autouse=True)
def _plain_reader(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reader, "use_bulk", lambda count, *_: False)


def _write(path: Path, count: int, name: str = "blk.{}.attn.weight") -> bytes:
    w = gguf.GGUFWriter(str(path), "llama")
    for i in range(count):
        shape = [(4, 32), (32,), (2, 2, 32)][i % 3]
        w.add_tensor(name.format(i), np.zeros(shape, np.float32 if i % 2 else np.float16))
    w.add_tensor("q", np.zeros((2, 34), dtype=np.uint8), raw_dtype=gguf.GGMLQuantizationType.Q8_0)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path.read_bytes()


@pytest.mark.interop
def test_a_listing_reads_columns_and_builds_entries_as_the_loop(tmp_path: Path) -> None:
    data = _write(tmp_path / "m.gguf", 40)
    f = reader.read_gguf(MemorySource(data, name="m.gguf"))
    assert isinstance(f.entries, LazyEntries)
    columns = f.entries.dump_columns()
    assert columns is not None
    keys, offsets, lengths, splats = columns
    loop = reader.read_gguf(MemorySource(data, name="m.gguf"), bulk=False).entries
    assert (keys, offsets, lengths) == ([e.key for e in loop], [e.offset for e in loop], [e.length for e in loop])
    assert splats == [False] * len(loop)
    assert _outcome(data, fast=True) == _outcome(data, fast=False)
    assert f.entries[3].tensor == loop[3].tensor and f.entries[-1].tensor.extra == {"ggml_type": 8}


@pytest.mark.interop
def test_a_table_past_the_first_read_grows_the_prefix_as_the_loop(tmp_path: Path) -> None:
    data = _write(tmp_path / "long.gguf", 3000, "model.layers.{}.self_attn.q_proj.weight")
    assert data.index(b"model.layers.2999.") > reader.FIRST_READ
    f = reader.read_gguf(MemorySource(data, name="long.gguf"))
    assert isinstance(f.entries, LazyEntries)
    assert _outcome(data, fast=True) == _outcome(data, fast=False)
    for cut in (reader.FIRST_READ - 3, reader.FIRST_READ + 5, data.index(b"model.layers.2999.") + 9):
        assert _outcome(data[:cut], fast=True) == _outcome(data[:cut], fast=False)


def _one_tensor(info: bytes, data: int = 4096) -> bytes:
    """A GGUF file of one tensor info `info` (dimension count onward) named ``t``, and `data`
    bytes after the header (so that only the check under test can refuse it)."""
    head = b"GGUF" + (3).to_bytes(4, "little") + (1).to_bytes(8, "little") + (0).to_bytes(8, "little")
    body = head + (1).to_bytes(8, "little") + b"t" + info
    return body + bytes(-len(body) % 32 + data)


@pytest.mark.parametrize(
    ("info", "message"),
    [
        ((1).to_bytes(4, "little") + (10).to_bytes(8, "little") + (2).to_bytes(4, "little") + bytes(8), "block size"),
        ((1).to_bytes(4, "little") + (32).to_bytes(8, "little") + (4).to_bytes(4, "little") + bytes(8), "type 4"),
        ((2).to_bytes(4, "little") + (2**40).to_bytes(8, "little") * 2 + bytes(12), "2\\*\\*63-1 elements"),
        ((1).to_bytes(4, "little") + (2**63).to_bytes(8, "little") + bytes(12), "more than 2\\*\\*63-1"),
        ((1).to_bytes(4, "little") + (2048).to_bytes(8, "little") + bytes(12), "ends past the end"),
        ((1).to_bytes(4, "little") + (4).to_bytes(8, "little") + bytes(4) + (4096).to_bytes(8, "little"), "past"),
        ((5).to_bytes(4, "little") + bytes(52), "at most 4"),
    ],
)
def test_each_check_of_the_plain_reader_refuses_as_the_loop(info: bytes, message: str) -> None:
    data = _one_tensor(info)
    with pytest.raises(ParamioError, match=message):
        reader.read_gguf(MemorySource(data, name="m.gguf"))
    assert _outcome(data, fast=True) == _outcome(data, fast=False)
    fine = _one_tensor((1).to_bytes(4, "little") + (32).to_bytes(8, "little") + bytes(12))
    assert isinstance(reader.read_gguf(MemorySource(fine, name="m.gguf")).entries, LazyEntries)
