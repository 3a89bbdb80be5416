"""`conversion.restore` by column (a reader's `TableEntries`, untyped claims): the same entries
and the same warnings as the restore entry by entry, without building an entry."""

from __future__ import annotations

import json
import struct
import warnings
from pathlib import Path

import numpy as np
import pytest

import paramio
import paramio.formats.gguf.reader as gguf_reader
import paramio.formats.safetensors.reader as st_reader
from paramio.core.errors import FormatWarning
from paramio.formats import conversion
from paramio.formats.bulk import TableEntries
from paramio.formats.contract import get_format
from paramio.sources.memory import MemorySource
from paramio.testing.bulk import describe


@pytest.fixture(autouse=True)
def _plain_readers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(st_reader, "use_bulk", lambda count, *_: False)
    monkeypatch.setattr(gguf_reader, "use_bulk", lambda count, *_: False)


def _both(fmt: str, data: bytes) -> tuple[object, object, list[str], list[str]]:
    """(restored by column, restored entry by entry, the warnings of each)."""
    f = get_format(fmt)
    assert f.read_source is not None
    results = []
    for by_column in (True, False):
        contents = f.read_source(MemorySource(data, name=f"m.{fmt}"))
        assert isinstance(contents.entries, TableEntries)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            if by_column:
                restored = conversion.restore(f, contents)
                assert isinstance(restored.entries, TableEntries) and restored.entries._made == 0
            else:
                carried = f.take_carried(contents.attributes)
                assert carried is not None
                for k, v in carried.attributes.items():
                    contents.attributes.setdefault(k, v)
                contents.entries = conversion._restored(f, contents, carried)
                restored = contents
        results.append((describe(restored), [str(w.message) for w in caught if w.category is FormatWarning]))
    (a, wa), (b, wb) = results
    return a, b, wa, wb


@pytest.mark.parametrize("fmt", ["safetensors", "gguf"])
def test_a_file_converted_from_untyped_entries(fmt: str, tmp_path: Path) -> None:
    index = paramio.ParameterIndex()
    for i in range(20):
        index.add_buffer(f"layer.{i}.weight", np.full(4 + i % 3, i, np.float32).tobytes())
    index.add_array("typed", np.arange(6, dtype=np.float32).reshape(2, 3))
    path = tmp_path / f"m.{fmt}"
    paramio.write_path(str(path), index.values())
    by_column, by_entry, wa, wb = _both(fmt, path.read_bytes())
    assert by_column == by_entry and wa == wb == []
    entries = by_column[0]  # type: ignore[index]
    assert [e[-1] for e in entries[:3]] == [None, None, None]  # untyped again
    assert entries[-1][-1] is not None  # the typed entry keeps its type


def _safetensors(tensors: dict[str, tuple[str, list[int], int]], carried: dict[str, object]) -> bytes:
    header: dict[str, object] = {"__metadata__": {"paramio.carried": json.dumps({"version": 1, "tensors": carried})}}
    pos = 0
    for key, (dtype, shape, n) in tensors.items():
        header[key] = {"dtype": dtype, "shape": shape, "data_offsets": [pos, pos + n]}
        pos += n
    raw = json.dumps(header, separators=(",", ":")).encode()
    return struct.pack("<Q", len(raw)) + raw + bytes(pos)


def test_a_claim_on_a_typed_tensor_is_distrusted_with_the_same_warning() -> None:
    data = _safetensors(
        {"a": ("U8", [4], 4), "b": ("F32", [1], 4), "c": ("U8", [2], 2), "d": ("U8", [4], 4)},
        {"a": None, "b": None, "d": None},
    )
    by_column, by_entry, wa, wb = _both("safetensors", data)
    assert by_column == by_entry
    assert wa == wb and len(wa) == 1 and "entry 'b'" in wa[0] and "claims type no type" in wa[0]
    types = [e[-1] for e in by_column[0]]  # type: ignore[index]
    assert types[0] is None and types[1] is not None and types[2] is not None and types[3] is None


def test_typed_claims_or_metadata_go_entry_by_entry() -> None:
    typed = {"a": {"dtype": "float32", "shape": [1]}}
    data = _safetensors({"a": ("U8", [4], 4)}, typed)
    f = get_format("safetensors")
    contents = f.read_source(MemorySource(data, name="m.safetensors"))  # type: ignore[misc]
    restored = conversion.restore(f, contents)
    assert not isinstance(restored.entries, TableEntries)
    assert restored.entries[0].tensor is not None and restored.entries[0].tensor.dtype == "float32"


@pytest.mark.parametrize("fmt", ["safetensors", "gguf"])
def test_table_entries_are_freed_without_the_cyclic_collector(fmt: str, tmp_path: Path) -> None:
    """A reader's `TableEntries` holds no reference cycle: an index dropped is freed at once (a
    cycle left every listed table to the collector: open + ``keys()`` of 10,000 entries in a loop
    took 1.1-1.3x the time)."""
    import gc

    index = paramio.ParameterIndex()
    for i in range(50):
        index.add_array(f"t.{i}", np.zeros(4, np.float32))
    path = tmp_path / f"m.{fmt}"
    paramio.write_path(str(path), index.values())
    data = path.read_bytes()
    f = get_format(fmt)
    assert f.read_source is not None
    gc.collect()
    gc.disable()
    try:
        contents = f.read_source(MemorySource(data, name=f"m.{fmt}"))
        assert isinstance(contents.entries, TableEntries)
        assert contents.entries.dump_columns() is not None and len(contents.entries.all()) == 50
        del contents
        assert gc.collect() == 0
    finally:
        gc.enable()
