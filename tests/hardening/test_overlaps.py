"""Entries sharing bytes with the archive's own structure, or with each other.

IREE's parser does not check overlaps (`iree-internals.md` §1.2: segments "may overlap";
§1.8: overlaps "not validated at all"), so IREE loads such an archive and serves the header's
own bytes as the entry. paramio still reads them read-only, as IREE does (recorded below against
IREE's runtime), but `verify` reports them and writable opens refuse them: an in-place write
into such an entry rewrites the header or table and destroys the archive.
"""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

import paramio.formats.gguf as pg
from paramio.cli.main import main
from paramio.core.entry import ParameterEntry
from paramio.core.errors import FormatError
from paramio.formats.irpa.layout import ENTRY_HEADER
from paramio.index.index import ParameterIndex
from paramio.index.provider import Provider
from paramio.index.writable import WritableArchive
from paramio.sources.memory import MemorySource


def _irpa(path: Path, **buffers: bytes) -> Path:
    index = ParameterIndex()
    for k, v in buffers.items():
        index.add_buffer(k, v)
    index.create_archive_file(path)
    return path


def _entry_at(data: bytearray, i: int) -> int:
    """File offset of entry `i`'s header in an IREE-laid-out table (entries 16-aligned)."""
    pos = 96
    for _ in range(i):
        pos += (ENTRY_HEADER.size + 16 + 15) // 16 * 16
    return pos


def header_overlapping(tmp_path: Path, storage_at: int = 0, length: int = 128) -> Path:
    """A one-entry archive whose storage segment starts at `storage_at`, the entry covering
    `length` bytes there (0: the header itself)."""
    path = _irpa(tmp_path / "h.irpa", w=bytes(range(16)))
    data = bytearray(path.read_bytes())
    struct.pack_into("<QQ", data, 72, storage_at, len(data) - storage_at)  # storage segment
    struct.pack_into("<QQ", data, _entry_at(data, 0) + ENTRY_HEADER.size, 0, length)  # the entry's storage ref
    path.write_bytes(bytes(data))
    return path


def entries_overlapping(tmp_path: Path) -> Path:
    path = _irpa(tmp_path / "e.irpa", a=b"A" * 64, b=b"B" * 64)
    data = bytearray(path.read_bytes())
    struct.pack_into("<QQ", data, _entry_at(data, 1) + ENTRY_HEADER.size, 32, 64)  # b starts inside a
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize(
    ("storage_at", "what"), [(0, "the archive header"), (96, "the entry table"), (172, "the metadata segment")]
)
def test_verify_reports_entries_over_the_structure(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], storage_at: int, what: str
) -> None:
    path = header_overlapping(tmp_path, storage_at, 16)
    assert main(["verify", str(path)]) == 1
    out = capsys.readouterr().out
    assert f"entry 'w' at offset {storage_at:#x}: data {storage_at:#x}..{storage_at + 16:#x} overlaps {what}" in out
    assert "an in-place write into it would corrupt the archive" in out


def test_verify_passes_iree_made_archives(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _irpa(tmp_path / "ok.irpa", a=b"A" * 64, b=b"B" * 3)
    assert main(["verify", str(path), "--quiet"]) == 0
    assert capsys.readouterr().out == f"{path}: irpa, 2 entries: OK\n"


@pytest.mark.interop
def test_read_only_opens_read_them_as_iree_does(tmp_path: Path) -> None:
    path = header_overlapping(tmp_path)
    ours = ParameterIndex.open(path)["w"].read()
    assert ours == path.read_bytes()[:128] and ours[:4] == b"IRPA"
    rt = pytest.importorskip("iree.runtime")
    index = rt.ParameterIndex()
    index.load(str(path), mmap=False)
    ((key, entry),) = index.items()
    assert key == "w" and bytes(entry.file_view) == ours  # IREE serves the header as the entry


@pytest.mark.parametrize("make", [header_overlapping, entries_overlapping])
def test_writable_opens_refuse_overlaps(tmp_path: Path, make: object) -> None:
    path = make(tmp_path)  # type: ignore[operator]
    before = path.read_bytes()
    for opener in (
        lambda: WritableArchive(path),
        lambda: Provider.from_flags([str(path)], writable=True),
        lambda: ParameterIndex.open(path, writable=True),
    ):
        with pytest.raises(FormatError, match="overlaps .*cannot be opened writable") as info:
            opener()
        assert info.value.path == str(path)
        assert info.value.key in ("w", "b")
    assert path.read_bytes() == before


def test_writable_open_refuses_overlaps_in_other_formats(tmp_path: Path) -> None:
    """A GGUF file whose second tensor's offset points at the first tensor's bytes."""
    entries = [ParameterEntry.data(f"t{i}", MemorySource(bytes([i]) * 32), 0, 32) for i in range(2)]
    (path,) = pg.write_gguf(tmp_path / "m.gguf", entries, durable=False)
    data = bytearray(Path(path).read_bytes())
    name = struct.pack("<Q", 2) + b"t1"
    at = data.index(name) + len(name)
    n_dims = struct.unpack_from("<I", data, at)[0]
    offset_field = at + 4 + 8 * n_dims + 4
    assert struct.unpack_from("<Q", data, offset_field)[0] == 32
    struct.pack_into("<Q", data, offset_field, 16)
    Path(path).write_bytes(bytes(data))
    assert ParameterIndex.open(path)["t1"].read() == bytes(16) + b"\x01" * 16  # read-only: served as written
    with pytest.raises(FormatError, match="overlaps entry 't0'"):
        WritableArchive(path)
    assert main(["verify", path]) == 1


def test_writable_open_of_a_large_table_checks_from_its_columns(tmp_path: Path) -> None:
    """10,000 entries (the reader's lazy table): checked from the table's columns, one sort."""
    index = ParameterIndex()
    for i in range(10_000):
        index.add_buffer(f"k{i}", b"x" * 4)
    index.create_archive_file(tmp_path / "many.irpa")
    with WritableArchive(tmp_path / "many.irpa") as w:
        assert len(w.index) == 10_000
