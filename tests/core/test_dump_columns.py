"""The IRPA listing read from the table's columns equals the listing built from entries."""

from __future__ import annotations

import numpy as np
import pytest

from paramio.core.entries import LazyEntries
from paramio.core.entry import ParameterEntry
from paramio.formats.irpa.attributes import ATTRIBUTES_KEY, encode_record
from paramio.formats.irpa.writer import plan_archive, write_archive
from paramio.formats.registry import read_path
from paramio.index.dump import format_dump
from paramio.index.index import DuplicatePolicy, ParameterIndex
from paramio.sources.memory import MemorySource


def legacy_attributes_entry(attributes: dict[str, object]) -> ParameterEntry:
    """Attributes as paramio wrote them before they moved into a SKIP entry: a DATA entry."""
    blob = encode_record(attributes)
    return ParameterEntry.data(ATTRIBUTES_KEY, MemorySource(blob), 0, len(blob))


def write_legacy(path, entries: list[ParameterEntry]) -> None:
    """An archive laid out as IREE's builder would, nothing added (today's writer marks an entry
    under the reserved name as user data with a SKIP record)."""
    plan = plan_archive(entries)
    buf = bytearray(plan.total_size)
    buf[: len(plan.header_and_tables)] = plan.header_and_tables
    for e, off in zip(entries, plan.data_offsets, strict=True):
        if off is not None:
            buf[off : off + e.length] = e.read()
    path.write_bytes(bytes(buf))


def _archive(tmp_path, *, splat: bool, attributes: bool, duplicate: bool) -> str:
    index = ParameterIndex(duplicates=DuplicatePolicy.KEEP)
    index.add_array("a", np.arange(5, dtype=np.float32))
    index.add_buffer("empty", b"")
    if splat:
        index.add_splat("s", np.float32(2.0), 64)
    index.add_array("b", np.arange(3, dtype=np.int8))
    if duplicate:
        index.add_array("a", np.zeros(2, dtype=np.int16))
    entries = list(index.values())
    if attributes:  # the old placement, in the middle, so later rows shift when it is taken out
        entries.insert(2, legacy_attributes_entry({"k": "v"}))
    p = tmp_path / "x.irpa"
    if attributes:
        write_legacy(p, entries)
    else:
        write_archive(p, entries, durable=False)
    return str(p)


@pytest.mark.parametrize("splat", [False, True])
@pytest.mark.parametrize("attributes", [False, True])
@pytest.mark.parametrize("duplicate", [False, True])
def test_columns_listing_matches_entries(tmp_path, splat: bool, attributes: bool, duplicate: bool) -> None:
    path = _archive(tmp_path, splat=splat, attributes=attributes, duplicate=duplicate)
    contents = read_path(path)
    lazy = contents.entries
    assert isinstance(lazy, LazyEntries) and lazy.dump_columns() is not None
    assert ("k" in contents.attributes) == attributes
    expected = format_dump(list(lazy), scope="m")
    assert format_dump(read_path(path).entries, scope="m") == expected
    index = ParameterIndex.open(path, duplicates="keep" if duplicate else "error")
    assert index.dump("m") == expected


def test_changed_index_lists_its_entries(tmp_path) -> None:
    path = _archive(tmp_path, splat=True, attributes=True, duplicate=False)
    index = ParameterIndex.open(path)
    index.add_array("c", np.ones(2, dtype=np.float32))
    assert index.dump() == format_dump(index.values())
    index = ParameterIndex.open(path)
    index.add(ParameterEntry.splat("a", b"\x01", 7), duplicates="last")
    assert index.dump() == format_dump(index.values())
    assert "       - |                - |                7 | `a`" in index.dump()
    index = ParameterIndex.open(path)
    index.remove("b")
    assert index.dump() == format_dump(index.values())
    assert "`b`" not in index.dump()
