"""Golden bytes: archives paramio writes, compared with the bytes IREE's builder produces."""

from __future__ import annotations

import hashlib
import struct
from pathlib import Path

import numpy as np
import pytest

from paramio import ParameterIndex
from paramio.core.entry import ParameterEntry
from paramio.formats.irpa import plan_archive, write_archive

# iree-create-parameters --splat=s=2xf32=1.5 --data=d=3xi8=7 (reference §1.9), 4096 bytes.
SPLAT_AND_DATA_SHA256 = "b2b3601c97be0e1d40b637ad7830a379b372fe0bd70ff12092c9d3669036a1d5"


def _golden_splat_and_data() -> bytes:
    """The §1.9 archive spelled out field by field, independent of the writer's code."""
    out = bytearray(4096)
    struct.pack_into("<4sHHQQQ", out, 0, b"IRPA", 0, 0, 88, 0, 0)
    struct.pack_into("<Q6Q", out, 32, 2, 96, 172, 268, 2, 320, 3)
    struct.pack_into("<QIQQQQQQ", out, 0x60, 85, 1, 0, 0, 1, 0, 0, 0)
    struct.pack_into("<Q16sB", out, 0x9C, 8, bytes.fromhex("0000c03f"), 4)
    struct.pack_into("<QIQQQQQQ", out, 0xC0, 76, 2, 0, 1, 1, 0, 0, 64)
    struct.pack_into("<QQ", out, 0xFC, 0, 3)
    out[0x10C:0x10E] = b"sd"
    out[0x140:0x143] = b"\x07\x07\x07"
    return bytes(out)


def test_golden_splat_and_data(tmp_path: Path) -> None:
    index = ParameterIndex()
    index.add_splat("s", np.float32(1.5), 8)
    index.add_buffer("d", b"\x07\x07\x07")
    index.create_archive_file(tmp_path / "t.irpa")
    data = (tmp_path / "t.irpa").read_bytes()
    assert data == _golden_splat_and_data()
    assert hashlib.sha256(data).hexdigest() == SPLAT_AND_DATA_SHA256


def test_empty_archive_is_one_page(tmp_path: Path) -> None:
    write_archive(tmp_path / "e.irpa", [])
    data = (tmp_path / "e.irpa").read_bytes()
    expected = bytearray(4096)
    struct.pack_into("<4sHHQQQ", expected, 0, b"IRPA", 0, 0, 88, 0, 0)
    struct.pack_into("<Q6Q", expected, 32, 0, 96, 0, 96, 0, 96, 0)
    assert data == bytes(expected)


def test_layout_offsets_match_iree_convert_fixture() -> None:
    """iree-convert-parameters.txt: two 32-byte, one 64 and one 128-byte entry land at 448/512/576/640."""
    from paramio.sources import MemorySource

    src = MemorySource(bytes(256))
    entries = [
        ParameterEntry.data("a0", src, 0, 32),
        ParameterEntry.data("a1", src, 32, 32),
        ParameterEntry.data("b0", src, 64, 64),
        ParameterEntry.data("b1", src, 128, 128),
    ]
    plan = plan_archive(entries)
    assert plan.data_offsets == [448, 512, 576, 640]
    assert plan.total_size == 4096


def test_metadata_offsets_and_empty_names() -> None:
    from paramio.sources import MemorySource

    src = MemorySource(b"xyz")
    entries = [
        ParameterEntry.data("", src, 0, 1, metadata=b"M"),
        ParameterEntry.splat("k", b"\x01", 4),
        ParameterEntry.data("z", src, 1, 2),
    ]
    plan = plan_archive(entries)
    buf = plan.header_and_tables
    # name {offset: m, length} even for an empty name; metadata offset 0 when empty
    first = struct.unpack_from("<QIQQQQQQ", buf, 96)
    assert first[3:7] == (0, 0, 0, 1)
    second = struct.unpack_from("<QIQQQQQQ", buf, 96 + 80)
    assert second[3:7] == (1, 1, 0, 0)
    third = struct.unpack_from("<QIQQQQQQ", buf, 96 + 80 + 96)
    assert third[3:7] == (2, 1, 0, 0)
    meta_off, meta_len = struct.unpack_from("<QQ", buf, 56)
    assert buf[meta_off : meta_off + meta_len] == b"Mkz"


@pytest.mark.parametrize("alignment", [1, 16, 64, 4096])
def test_alignment_places_data(tmp_path: Path, alignment: int) -> None:
    index = ParameterIndex()
    index.add_buffer("a", b"\x01" * 5)
    index.add_buffer("b", b"\x02" * 7)
    out = index.create_archive_file(tmp_path / "a.irpa", alignment=alignment)
    assert all(e.offset % alignment == 0 for e in out.values())
    assert out["b"].read() == b"\x02" * 7
    # IREE records 64 in every data entry whatever the placement alignment
    raw = (tmp_path / "a.irpa").read_bytes()
    assert struct.unpack_from("<Q", raw, 96 + 52)[0] == 64


@pytest.mark.parametrize("alignment", [0, 3, 48, -64])
def test_non_power_of_two_alignment_refused(tmp_path: Path, alignment: int) -> None:
    from paramio.core.errors import InvalidArgumentError

    with pytest.raises(InvalidArgumentError, match="not a power of two"):
        write_archive(tmp_path / "x.irpa", [], alignment=alignment)
    assert not (tmp_path / "x.irpa").exists()
