"""The IRPA reader: every check IREE makes, with our errors naming file, entry and offset."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np
import pytest

from paramio import ParameterIndex
from paramio.core.entry import EntryKind
from paramio.core.errors import FormatError, ParamioError, TruncatedError, UnsupportedFormatError
from paramio.formats.irpa import read_archive
from paramio.formats.irpa.layout import ENTRY_HEADER
from paramio.sources import MemorySource


def _archive(tmp_path: Path) -> bytes:
    index = ParameterIndex()
    index.add_splat("s", np.float32(1.5), 8)
    index.add_buffer("d", b"\x07\x07\x07", metadata="meta")
    index.add_buffer("w", np.arange(4, dtype=np.float32))
    index.create_archive_file(tmp_path / "t.irpa")
    return (tmp_path / "t.irpa").read_bytes()


def _read(data: bytes, name: str = "t.irpa") -> list:
    return read_archive(MemorySource(data, name=name))


def test_reads_every_kind(tmp_path: Path) -> None:
    entries = _read(_archive(tmp_path))
    assert [e.key for e in entries] == ["s", "d", "w"]
    s, d, w = entries
    assert s.kind is EntryKind.SPLAT and s.pattern == np.float32(1.5).tobytes() and s.length == 8
    assert d.metadata == b"meta" and d.read() == b"\x07\x07\x07"
    assert w.to_numpy().tolist() == [0.0, 1.0, 2.0, 3.0]
    assert w.to_numpy().dtype == np.float32


def test_data_is_a_zero_copy_view_of_the_mapping(tmp_path: Path) -> None:
    _archive(tmp_path)
    index = ParameterIndex.open(tmp_path / "t.irpa")
    arr = index["w"].to_numpy()
    assert not arr.flags.owndata and not arr.flags.writeable
    assert np.shares_memory(arr, np.frombuffer(index["w"].memoryview(), dtype=np.uint8))


@pytest.mark.parametrize(
    ("size", "message"),
    [(0, "not enough bytes for a valid IRPA header"), (31, "not enough bytes for a valid IRPA header")],
)
def test_short_file(tmp_path: Path, size: int, message: str) -> None:
    data = _archive(tmp_path)[:size]
    with pytest.raises(TruncatedError, match=message) as info:
        _read(data)
    assert info.value.path == "t.irpa" and info.value.offset == 0


def test_bad_magic(tmp_path: Path) -> None:
    data = b"NOPE" + _archive(tmp_path)[4:]
    with pytest.raises(FormatError) as info:
        _read(data)
    assert str(info.value) == "t.irpa: at offset 0x0: IRPA file magic missing or invalid 45504F4E; expected 41505249"


def test_version_checks_follow_iree_order(tmp_path: Path) -> None:
    data = bytearray(_archive(tmp_path))
    struct.pack_into("<H", data, 4, 1)
    with pytest.raises(UnsupportedFormatError, match="major version 1.0"):
        _read(bytes(data))
    struct.pack_into("<HH", data, 4, 0, 2)
    with pytest.raises(UnsupportedFormatError, match="version 0.2 not supported"):
        _read(bytes(data))
    struct.pack_into("<HHQ", data, 4, 0, 0, 96)
    with pytest.raises(FormatError, match="exactly 88 bytes but was reported as 96"):
        _read(bytes(data))


def test_truncated_entry_table_names_offsets(tmp_path: Path) -> None:
    data = _archive(tmp_path)[:100]
    with pytest.raises(TruncatedError) as info:
        _read(data)
    assert "entry table 0x60.." in str(info.value)
    assert info.value.offset == 40


def test_truncated_after_data_still_parses_as_iree_does(tmp_path: Path) -> None:
    data = _archive(tmp_path)
    index = _read(data)
    end = max(e.offset + e.length for e in index if not e.is_splat)
    assert [e.key for e in _read(data[:end])] == ["s", "d", "w"]
    with pytest.raises(TruncatedError, match="storage segment"):
        _read(data[: end - 1])


def test_storage_reference_out_of_range_names_entry(tmp_path: Path) -> None:
    data = bytearray(_archive(tmp_path))
    # entry 1 ("d") starts at 96 + 96; its storage length field is at +68
    struct.pack_into("<Q", data, 96 + 96 + 68, 1 << 40)
    with pytest.raises(TruncatedError) as info:
        _read(bytes(data))
    assert info.value.key == "d"
    assert "storage reference" in str(info.value) and "entry 'd'" in str(info.value)


def test_name_reference_out_of_range(tmp_path: Path) -> None:
    data = bytearray(_archive(tmp_path))
    struct.pack_into("<Q", data, 96 + 28, 10_000)  # entry 0 name length
    with pytest.raises(TruncatedError, match="name reference"):
        _read(bytes(data))


def test_splat_pattern_length_bounds(tmp_path: Path) -> None:
    data = bytearray(_archive(tmp_path))
    data[96 + 84] = 17
    with pytest.raises(FormatError, match="splat pattern length 17 out of bounds 16"):
        _read(bytes(data))
    data[96 + 84] = 3  # IREE's parser accepts 0..16; so do we (the writer refuses them)
    assert _read(bytes(data))[0].pattern == np.float32(1.5).tobytes()[:3]


def test_unknown_entry_type(tmp_path: Path) -> None:
    data = bytearray(_archive(tmp_path))
    struct.pack_into("<I", data, 96 + 8, 9)
    with pytest.raises(UnsupportedFormatError, match="entry type 9"):
        _read(bytes(data))


def test_skip_entries_are_dropped_but_checked(tmp_path: Path) -> None:
    data = bytearray(_archive(tmp_path))
    struct.pack_into("<I", data, 96 + 8, 0)
    assert [e.key for e in _read(bytes(data))] == ["d", "w"]
    struct.pack_into("<Q", data, 96 + 28, 10_000)
    with pytest.raises(TruncatedError, match="name reference"):
        _read(bytes(data))


def test_entry_count_larger_than_table(tmp_path: Path) -> None:
    data = bytearray(_archive(tmp_path))
    struct.pack_into("<Q", data, 32, 1 << 62)
    with pytest.raises(TruncatedError, match="entry table truncated"):
        _read(bytes(data))


def test_zero_length_data_entry_gets_offset_zero(tmp_path: Path) -> None:
    index = ParameterIndex()
    index.add_buffer("empty", b"")
    out = index.create_archive_file(tmp_path / "z.irpa")
    assert out["empty"].offset == 0 and out["empty"].length == 0 and out["empty"].read() == b""


def _external_archive(tmp_path: Path, rel: str, r_off: int, r_len: int) -> bytes:
    """An archive with one EXTERNAL entry (IREE never writes these; we build it by hand)."""
    name, path = b"ext", rel.encode()
    table = ENTRY_HEADER.size + 32
    meta_off = 96 + table
    out = bytearray(4096)
    struct.pack_into("<4sHHQQQ", out, 0, b"IRPA", 0, 0, 88, 0, 0)
    struct.pack_into("<Q6Q", out, 32, 1, 96, table, meta_off, len(name) + len(path), 4096, 0)
    struct.pack_into("<QIQQQQQQ", out, 96, table, 3, 0, 0, len(name), 0, 0, 0)
    struct.pack_into("<QQQQ", out, 96 + ENTRY_HEADER.size, len(name), len(path), r_off, r_len)
    out[meta_off : meta_off + len(name) + len(path)] = name + path
    return bytes(out)


def test_external_entries_resolve_relative_to_the_archive(tmp_path: Path) -> None:
    (tmp_path / "blob.bin").write_bytes(bytes(range(32)))
    (tmp_path / "x.irpa").write_bytes(_external_archive(tmp_path, "blob.bin", 8, 4))
    index = ParameterIndex.open(tmp_path / "x.irpa")
    entry = index["ext"]
    assert entry.kind is EntryKind.EXTERNAL
    assert entry.read() == bytes([8, 9, 10, 11])


def test_external_range_past_end(tmp_path: Path) -> None:
    (tmp_path / "blob.bin").write_bytes(bytes(4))
    (tmp_path / "x.irpa").write_bytes(_external_archive(tmp_path, "blob.bin", 2, 8))
    with pytest.raises(TruncatedError, match="external range") as info:
        ParameterIndex.open(tmp_path / "x.irpa")
    assert info.value.key == "ext"


def test_linked_archives_are_followed(tmp_path: Path) -> None:
    a = ParameterIndex()
    a.add_buffer("a", b"AAAA")
    a.create_archive_file(tmp_path / "a.irpa")
    b = ParameterIndex()
    b.add_buffer("b", b"BBBB")
    b.create_archive_file(tmp_path / "b.irpa")
    first = bytearray((tmp_path / "a.irpa").read_bytes())
    struct.pack_into("<Q", first, 16, len(first))
    linked = bytes(first) + (tmp_path / "b.irpa").read_bytes()
    entries = _read(linked)
    assert [(e.key, e.read()) for e in entries] == [("a", b"AAAA"), ("b", b"BBBB")]


def test_open_missing_file_names_it(tmp_path: Path) -> None:
    from paramio.core.errors import SourceError

    with pytest.raises(SourceError) as info:
        ParameterIndex.open(tmp_path / "missing.irpa")
    assert info.value.path == os.fspath(tmp_path / "missing.irpa")
    assert isinstance(info.value, OSError)


def test_every_truncation_raises_only_our_errors(tmp_path: Path) -> None:
    data = _archive(tmp_path)
    for n in range(400):
        try:
            entries = _read(data[:n])
        except ParamioError:
            continue
        for e in entries:
            e.read()
