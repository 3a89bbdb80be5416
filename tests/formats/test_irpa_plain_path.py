"""The NumPy-free IRPA table reader (`paramio.formats.irpa.table`: what ``paramio dump`` of an
ordinary archive takes) against the reference loop: same entries and attributes, or the same
error and message, on archives damaged where each of its checks looks."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

import paramio
import paramio.formats.irpa.reader as reader
from paramio.core.entries import LazyEntries
from paramio.core.errors import ParamioError
from paramio.formats.contract import get_format
from paramio.formats.irpa.layout import HEADER_PREFIX_SIZE, HEADER_V0_TAIL
from paramio.sources.memory import MemorySource
from paramio.testing.bulk import damaged, describe

_ROW = 80  # a data entry and its padding


@pytest.fixture(autouse=True)
def _plain_reader(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reader, "use_bulk", lambda count, *_: False)


def _archive(tmp_path: Path, *, attributes: bool = True, big_metadata: int = 0) -> bytes:
    index = paramio.ParameterIndex()
    for i in range(10):
        index.add_array(f"layer.{i}.w", np.arange(i + 1, dtype=np.float32 if i % 2 else np.int16))
    index.add_buffer("raw", b"\x01\x02\x03", metadata="m" * big_metadata if big_metadata else "")
    index.add_buffer("empty", b"")
    index.add_array("größe", np.ones(3, np.int8))
    path = tmp_path / "a.irpa"
    paramio.write_path(str(path), index.values(), attributes={"general.name": "x"} if attributes else None)
    return path.read_bytes()


def _outcome(read: object, data: bytes) -> tuple[bool, object]:
    assert callable(read)
    try:
        contents = read(MemorySource(data, name="a.irpa"))
    except ParamioError as exc:
        return False, (type(exc).__name__, str(exc))
    return isinstance(contents.entries, LazyEntries), describe(contents)


def _agrees(data: bytes) -> bool:
    fmt = get_format("irpa")
    plain, got = _outcome(fmt.read_source, data)
    _, want = _outcome(fmt.read_reference, data)
    assert got == want
    return plain


def _table(data: bytes) -> tuple[int, int, int]:
    """(entry count, entry table offset, metadata segment length) of the archive header."""
    count, e_off, _e_len, _m_off, m_len, *_ = HEADER_V0_TAIL.unpack_from(data, HEADER_PREFIX_SIZE)
    return count, e_off, m_len


def _set(data: bytes, row: int, field: int, fmt: str, value: int) -> bytes:
    out = bytearray(data)
    _, e_off, _ = _table(data)
    struct.pack_into(fmt, out, e_off + row * _ROW + field, value)
    return bytes(out)


def test_an_ordinary_archive_takes_the_plain_path(tmp_path: Path) -> None:
    for attributes in (True, False):
        data = _archive(tmp_path, attributes=attributes)
        assert _agrees(data)
        contents = get_format("irpa").read_source(MemorySource(data, name="a.irpa"))  # type: ignore[misc]
        assert contents.attributes == ({"general.name": "x"} if attributes else {})
        assert isinstance(contents.entries, LazyEntries) and contents.entries.dump_columns() is not None


# Field offsets in a data entry: name {20, 28}, metadata {36, 44}, storage {60, 68}; size 0, type 8.
@pytest.mark.parametrize(
    ("what", "row", "field", "fmt", "value"),
    [
        ("name past the metadata segment", 4, 28, "<Q", 1 << 20),
        ("name offset past it", 4, 20, "<Q", 1 << 20),
        ("metadata past it", 6, 44, "<Q", 1 << 20),
        ("storage past the segment", 7, 68, "<Q", 1 << 30),
        ("storage offset past it", 7, 60, "<Q", 1 << 30),
        ("a larger entry size", 3, 0, "<Q", 80),
        ("an entry size past the table", 3, 0, "<Q", 1 << 20),
        ("a skip in the middle", 5, 8, "<I", 0),
        ("a splat type", 5, 8, "<I", 1),
        ("an unknown type", 5, 8, "<I", 9),
        ("an empty entry with a far offset", 11, 60, "<Q", 1 << 40),
        ("a zero-length name far away", 2, 20, "<Q", 1 << 40),
    ],
)
def test_each_row_check_ends_as_the_loop(tmp_path: Path, what: str, row: int, field: int, fmt: str, value: int) -> None:
    data = _archive(tmp_path)
    if what == "a zero-length name far away":
        data = _set(data, row, 28, "<Q", 0)
    if what == "an empty entry with a far offset":
        assert _set(data, row, 68, "<Q", 0) == data  # "empty" has no bytes: IREE puts it at 0
    _agrees(_set(data, row, field, fmt, value))


def test_a_truncated_table_or_count_ends_as_the_loop(tmp_path: Path) -> None:
    data = _archive(tmp_path)
    count, e_off, _ = _table(data)
    for n in (count + 1, count + 40, 1 << 40):
        _agrees(data[:32] + struct.pack("<Q", n) + data[40:])
    for cut in (e_off + 5 * _ROW + 10, e_off + count * _ROW - 8, len(data) - 1):
        _agrees(data[:cut])


def test_names_and_metadata_past_the_reference_budget_end_as_the_loop(tmp_path: Path) -> None:
    data = _archive(tmp_path, attributes=False, big_metadata=300_000)
    count, _, m_len = _table(data)
    for row in range(count):
        data = _set(data, row, 20, "<Q", 0)
        data = _set(data, row, 28, "<Q", m_len)
    with pytest.raises(ParamioError, match="reference more than"):
        get_format("irpa").read_source(MemorySource(data, name="a.irpa"))  # type: ignore[misc]
    _agrees(data)


@pytest.mark.interop
def test_an_old_style_attributes_entry_goes_to_the_loop(tmp_path: Path) -> None:
    """Earlier paramio versions wrote attributes as a DATA entry (here written by IREE's builder,
    which adds no SKIP record): the loop decides whether its bytes are the record."""
    rt = pytest.importorskip("iree.runtime")
    index = rt.ParameterIndex()
    index.add_buffer("w", b"\x00" * 4)
    index.add_buffer("__paramio_attributes__", b'{"paramio_attributes": 1, "attributes": {"a": 1}}')
    path = tmp_path / "old.irpa"
    index.create_archive_file(str(path))
    data = path.read_bytes()
    assert not _agrees(data)
    contents = get_format("irpa").read_source(MemorySource(data, name="a.irpa"))  # type: ignore[misc]
    assert contents.attributes == {"a": 1} and [e.key for e in contents.entries] == ["w"]


def test_damaged_archives_end_as_the_loop(tmp_path: Path) -> None:
    seed = _archive(tmp_path)

    @settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(data=damaged(seed))
    def agrees(data: bytes) -> None:
        _agrees(data)

    agrees()


def test_data_rows_then_an_external_entry_go_to_the_loop_and_dump_names_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A column table never holds external rows (`paramio.index.dump.external_entries` relies on
    it): a table of data rows and then an external entry is read by the loop, and the listing
    names the file the external bytes come from."""
    from paramio.cli.main import main

    (tmp_path / "blob.bin").write_bytes(bytes(range(32)))
    names = b"w" + b"ext" + b"blob.bin"
    table = _ROW + 92
    meta_off = 96 + table
    storage = 512
    out = bytearray(storage + 16)
    struct.pack_into("<4sHHQQQ", out, 0, b"IRPA", 0, 0, 88, 0, 0)
    struct.pack_into("<Q6Q", out, 32, 2, 96, table, meta_off, len(names), storage, 16)
    struct.pack_into("<QIQQQQQQQQ", out, 96, 76, 2, 0, 0, 1, 0, 0, 64, 0, 16)  # "w": 16 bytes of storage
    struct.pack_into("<QIQQQQQQ", out, 96 + _ROW, 92, 3, 0, 1, 3, 0, 0, 0)  # "ext"
    struct.pack_into("<QQQQ", out, 96 + _ROW + 60, 4, 8, 8, 4)  # path "blob.bin", bytes 8..12
    out[meta_off : meta_off + len(names)] = names
    path = tmp_path / "x.irpa"
    path.write_bytes(bytes(out))
    contents = get_format("irpa").read_path(str(path))
    assert not (isinstance(contents.entries, LazyEntries) and contents.entries.dump_columns() is not None)
    assert [e.key for e in contents.entries] == ["w", "ext"]
    assert main(["dump", f"--parameters={path}"]) == 0
    assert f"// `ext` bytes from `{tmp_path / 'blob.bin'}`" in capsys.readouterr().out
