"""The usual IRPA entry table read without NumPy and without an object per entry: a listing's path.

IREE's builders and paramio's writer lay a table out as data entries of 76 bytes, one every 80
(the entry alignment), then paramio's SKIP entries (the attributes record). `read_plain` unpacks
those data rows in one `struct.iter_unpack`, makes `reader._read_one`'s checks on whole columns
(sums, maxima, C-level maps), slices keys from one decoded string, and builds entries on first
use (`LazyEntries`, whose columns a listing prints). The rows after them, when all are SKIP
entries, go through the reference loop itself. Anything else (linked headers, splats, external
entries, an old-style attributes entry, any check that fails) gives None, and the caller runs
the loop from the start, which raises the exact error. `bulk` does the same with NumPy for any
table, for large ones.
"""

from __future__ import annotations

import struct
from itertools import repeat
from operator import add

from paramio.core.entries import LazyEntries
from paramio.core.entry import ParameterEntry, entries_from_columns
from paramio.core.source import ByteSource
from paramio.formats.irpa.layout import ENTRY_ALIGNMENT, ENTRY_HEADER, ENTRY_SIZES, EntryType, align, reference_budget

__all__ = ["read_plain"]

_DATA_SIZE = ENTRY_SIZES[EntryType.DATA]
_STRIDE = align(_DATA_SIZE, ENTRY_ALIGNMENT)
#: A data entry and its padding: header (size, type, flags, name, metadata, alignment), storage.
_ROW = struct.Struct(f"<QIQQQQQQQQ{_STRIDE - _DATA_SIZE}x")
_SIZE_TYPE = struct.Struct("<QI")
assert _ROW.size == _STRIDE and ENTRY_HEADER.size + 16 == _DATA_SIZE


def read_plain(
    source: ByteSource,
    table: memoryview,
    meta: memoryview,
    header: tuple[int, ...],
) -> tuple[LazyEntries, int, int] | None:
    """(entries, rows read, name and metadata bytes they reference) of the table of the archive header at offset 0 when its first rows
    are data entries of the usual layout: every such row checked as the loop checks it. The
    rows after them (``rows read`` onward) are left to the caller, which hands them to the
    loop when every one is a SKIP entry (`tail_is_skips`). None leaves the table to the loop."""
    count, _e_off, e_len, _m_off, m_len, s_off, s_len, next_offset = header
    if next_offset != 0 or count == 0:
        return None
    n = min(count, (e_len + _STRIDE - _DATA_SIZE) // _STRIDE)  # rows that fit (the last may lack padding)
    if n == 0:
        return None
    room = n * _STRIDE
    raw = table[:room] if e_len >= room else bytes(table[:e_len]) + bytes(room - e_len)
    columns = list(zip(*_ROW.iter_unpack(raw), strict=True))
    sizes, types, _flags, name_offs, name_lens, meta_offs, meta_lens, _align, rels, lengths = columns
    k = n
    if sizes.count(_DATA_SIZE) != n or types.count(EntryType.DATA) != n:
        k = next(i for i in range(n) if sizes[i] != _DATA_SIZE or types[i] != EntryType.DATA)
        if k == 0:
            return None
        name_offs, name_lens, meta_offs, meta_lens = name_offs[:k], name_lens[:k], meta_offs[:k], meta_lens[:k]
        rels, lengths = rels[:k], lengths[:k]
    # The loop's checks, for every row at once (each bound is at least as strict as the loop's).
    referenced = sum(name_lens) + sum(meta_lens)
    if (
        max(map(add, name_offs, name_lens)) > m_len
        or max(map(add, meta_offs, meta_lens)) > m_len
        or max(map(add, rels, lengths)) > s_len
        or referenced > reference_budget(source.size)
    ):
        return None
    hi = max(map(add, name_offs, name_lens))
    try:
        text = str(meta[:hi], "ascii")
    except UnicodeDecodeError:
        keys = [str(meta[o : o + m], "utf-8", "surrogateescape") for o, m in zip(name_offs, name_lens, strict=True)]
    else:
        keys = [text[o : o + m] for o, m in zip(name_offs, name_lens, strict=True)]
    if max(meta_lens) == 0:  # IREE's builders write no metadata
        metadata: list[bytes] = list(repeat(b"", k))
    else:
        shared: dict[tuple[int, int], bytes] = {}  # entries naming one range share its bytes
        metadata = [
            shared.get((o, m)) or shared.setdefault((o, m), bytes(meta[o : o + m])) if m else b""
            for o, m in zip(meta_offs, meta_lens, strict=True)
        ]
    offsets = [s_off + rel if length else 0 for rel, length in zip(rels, lengths, strict=True)]  # as IREE: empty at 0
    lens = list(lengths)

    def make(i: int) -> ParameterEntry:
        return ParameterEntry.data(
            keys[i], source, offsets[i], lens[i], metadata=metadata[i], origin="irpa", file_index=i
        )

    def make_all() -> list[ParameterEntry]:
        return entries_from_columns(
            keys=keys, lengths=lens, offsets=offsets, source=source, origin="irpa", metadata=metadata
        )

    return LazyEntries(list(keys), make, make_all, columns=lambda: (offsets, lens, [False] * k)), k, referenced


def tail_is_skips(table: memoryview, e_len: int, first: int, count: int) -> bool:
    """Whether rows `first`.. of the table (the first at ``first * 80``) all are SKIP entries
    whose sizes keep them inside the table: rows the loop reads into no entry."""
    pos = first * _STRIDE
    for _ in range(first, count):
        if e_len - pos < ENTRY_HEADER.size:
            return False
        size, etype = _SIZE_TYPE.unpack_from(table, pos)
        if etype != EntryType.SKIP or not ENTRY_HEADER.size <= size <= e_len - pos:
            return False
        pos += align(size, ENTRY_ALIGNMENT)
    return True
