"""The GGUF tensor info table read at once: a bare walk, then NumPy over every field.

`reader.read_gguf`'s loop reads each tensor info through the checked `Cursor` and builds an
entry per tensor (about 8 µs each). Here the walk reads only the two lengths that lead from one
info to the next, every other field is read with NumPy afterwards, the checks run once per
distinct (type, shape), and entries are built on first use. Anything out of the ordinary gives
None and the loop decides and names the fault. Taken only for large tables or when NumPy is
imported already (`paramio.formats.bulk`).
"""

from __future__ import annotations

import struct

import numpy as np

from paramio.core.entries import LazyEntries
from paramio.core.entry import EntryKind, ParameterEntry, entries_from_columns
from paramio.core.source import ByteSource
from paramio.core.tensor import TensorInfo
from paramio.formats.cursor import Cursor
from paramio.formats.gguf.constants import GGML_MAX_DIMS, GGML_TYPES, elements_fault, tensor_nbytes

__all__ = ["read_table"]

_U64 = struct.Struct("<Q")
_U32 = struct.Struct("<I")
_DATA = EntryKind.DATA


def _walk_low(buf: memoryview, pos: int, count: int) -> tuple[list[int], int]:
    """`_walk` reading only the low byte of the name length and of the dimension count (one
    memoryview index each, no `struct` call): right whenever the other bytes are zero, which
    the caller then checks for every tensor at once. Raises `IndexError` past the end."""
    nd_at = [0] * count
    for i in range(count):
        q = pos + 8 + buf[pos]
        nd_at[i] = q
        pos = q + 16 + 8 * buf[q]
    return nd_at, pos


def _walk(buf: memoryview, pos: int, count: int) -> tuple[list[int], int]:
    """Where each tensor info's dimension count sits, and where the table ends: two `struct`
    reads per tensor and nothing else (every other field is read afterwards, all tensors at
    once). Raises `struct.error` past the end of the buffer."""
    u64 = _U64.unpack_from
    u32 = _U32.unpack_from
    nd_at = [0] * count
    for i in range(count):
        q = pos + 8 + u64(buf, pos)[0]  # name length, name
        nd_at[i] = q
        pos = q + 16 + 8 * u32(buf, q)[0]  # count, dims, type (4), offset (8)
    return nd_at, pos


def _walk_table(
    buf: memoryview, table_at: int, count: int, limit: int
) -> tuple[list[int], int, tuple[np.ndarray, np.ndarray, np.ndarray] | None] | None:
    """(dimension-count positions, end of the table, and `_low_walk_exact`'s arrays when the
    low-byte walk was exact), or None when the walk leaves the first `limit` bytes."""
    checked = None
    if buf.format == "B" and buf.ndim == 1:
        try:
            nd_at_list, pos = _walk_low(buf, table_at, count)
        except IndexError:  # past the end: the exact walk decides
            pass
        else:
            if pos <= limit:
                checked = _low_walk_exact(buf, table_at, nd_at_list, pos, count)
    if checked is None:
        try:
            nd_at_list, pos = _walk(buf, table_at, count)
        except (struct.error, OverflowError):  # past the end (or past 2**63)
            return None
    return (nd_at_list, pos, checked) if pos <= limit else None


def _tails(
    table: np.ndarray, nd_at: np.ndarray, nd: np.ndarray, count: int
) -> tuple[np.ndarray, np.ndarray, list[tuple[int, tuple[int, ...]]], np.ndarray] | None:
    """(types, offsets, distinct (type, shape) pairs, each tensor's pair number) from the
    table bytes, one NumPy gather per distinct dimension count. None past `GGML_MAX_DIMS`."""
    types = np.empty(count, dtype=np.uint32)
    rels = np.empty(count, dtype=np.uint64)
    which = np.empty(count, dtype=np.intp)
    pairs: list[tuple[int, tuple[int, ...]]] = []
    for d in np.unique(nd).tolist():
        if d > GGML_MAX_DIMS:
            return None
        rows = np.flatnonzero(nd == d) if len(pairs) or d != nd[0] or not bool(np.all(nd == d)) else None
        at = (nd_at if rows is None else nd_at[rows]) + 4
        width = 8 * d + 12
        block = table[at[:, None] + np.arange(width)]  # (tensors, dims + type + offset) bytes
        rec = block.view(
            np.dtype({"names": ["t", "o"], "formats": ["<u4", "<u8"], "offsets": [8 * d, 8 * d + 4], "itemsize": width})
        ).ravel()
        sel = slice(None) if rows is None else rows
        types[sel] = rec["t"]
        rels[sel] = rec["o"]
        head = np.ascontiguousarray(block[:, : 8 * d + 4]).view(f"V{8 * d + 4}").ravel()
        if bool(np.all(block[:, : 8 * d + 4] == block[0, : 8 * d + 4])):  # one (type, shape): no sort
            distinct, inverse = head[:1], np.zeros(len(head), dtype=np.intp)
        else:
            distinct, inverse = np.unique(head, return_inverse=True)
        which[sel] = inverse.reshape(-1) + len(pairs)
        for row in distinct.tolist():
            raw = bytes(row)
            dims = struct.unpack_from(f"<{d}Q", raw)
            pairs.append((_U32.unpack_from(raw, 8 * d)[0], dims[::-1]))  # GGUF lists the innermost first
    return types, rels, pairs, which


def read_table(source: ByteSource, cur: Cursor, count: int, alignment: int) -> tuple[LazyEntries, int] | None:
    """The tensor info table walked with two bare `struct` reads per tensor, every other
    field read with NumPy afterwards, checks made once per distinct (type, shape), entries
    built on first use. None when anything is out of the ordinary (a read past the end, more
    than `GGML_MAX_DIMS` dimensions, any check that fails): the caller then runs the reference loop, which
    raises the exact error."""
    table_at = cur.pos
    buf = cur.buf
    walked = _walk_table(buf, table_at, count, min(cur.end, len(buf)))  # the bytes at hand
    if walked is None:
        return None  # past them: the caller grows the prefix or runs the loop
    nd_at_list, pos, checked = walked
    data_offset = -(-pos // alignment) * alignment
    size = source.size
    room = size - data_offset  # every tensor must end inside the file
    if count:
        if room < 0:
            return None
        if checked is not None:
            table, nd_at, nd = checked
        else:
            table = np.frombuffer(buf, dtype=np.uint8, count=pos - table_at, offset=table_at)
            nd_at = np.array(nd_at_list, dtype=np.intp) - table_at
            nd = table[nd_at[:, None] + np.arange(4)].view("<u4").ravel()
        got = _tails(table, nd_at, nd, count)
        if got is None:
            return None
        _, rels_np, pairs, which = got
        plans: list[tuple[int, TensorInfo]] = []
        for type_id, shape in pairs:
            plan = _plan(type_id, shape)
            if plan is None:
                return None
            plans.append(plan)
        lengths = [n for n, _ in plans]
        if max(lengths) > room:
            return None
        ends = np.array(lengths, dtype=np.uint64)[which]
        if not bool(np.all(rels_np <= room - ends)):
            return None
        rels: list[int] = rels_np.tolist()
        spans_of: list[int] = which.tolist()
        # Each name starts 8 bytes after the previous tensor info ends.
        starts = np.empty(count, dtype=np.intp)
        starts[0] = 8
        starts[1:] = nd_at[:-1] + 24 + 8 * nd[:-1].astype(np.intp)
        name_starts: list[int] = starts.tolist()
        name_end: list[int] = nd_at.tolist()
    else:
        rels, spans_of, plans, name_starts, name_end = [], [], [], [], []
    # Names sliced from one decoded string; bytes map 1:1 to latin-1 characters, and an ASCII
    # name reads the same in UTF-8 (the reference loop's decoding, kept for any other name).
    text = str(buf[table_at:pos], "latin-1")
    name_at = name_starts
    keys = [text[a:b] for a, b in zip(name_at, name_end, strict=True)]
    if not "".join(keys).isascii():
        keys = [
            bytes(buf[table_at + a : table_at + b]).decode("utf-8", "surrogateescape")
            for a, b in zip(name_at, name_end, strict=True)
        ]

    def make(i: int) -> ParameterEntry:
        length, info = plans[spans_of[i]]
        return ParameterEntry(
            key=keys[i],
            kind=_DATA,
            length=length,
            source=source,
            offset=data_offset + rels[i],
            declared_tensor=info,
            origin="gguf",
            file_index=i,
        )

    def make_all() -> list[ParameterEntry]:
        spans = list(map(plans.__getitem__, spans_of))
        return entries_from_columns(
            keys=keys,
            lengths=[span[0] for span in spans],
            offsets=[data_offset + rel for rel in rels],
            source=source,
            origin="gguf",
            declared=[span[1] for span in spans],
        )

    return LazyEntries(list(keys), make, make_all), data_offset


def _low_walk_exact(
    buf: memoryview, table_at: int, nd_at_list: list[int], end: int, count: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(table bytes, dimension-count positions, dimension counts) when the chain `_walk_low`
    found is the one `_walk` finds: every name length and dimension count, read in full, gives
    the same next position (so no high byte was set). None otherwise."""
    if not count:
        return None if end != table_at else (np.zeros(0, np.uint8), np.zeros(0, np.intp), np.zeros(0, np.uint32))
    table = np.frombuffer(buf, dtype=np.uint8, count=end - table_at, offset=table_at)
    nd_at = np.array(nd_at_list, dtype=np.intp) - table_at
    nd = table[nd_at[:, None] + np.arange(4)].view("<u4").ravel()
    starts = np.empty(count, dtype=np.intp)  # where each tensor info starts
    starts[0] = 0
    starts[1:] = nd_at[:-1] + 16 + 8 * nd[:-1].astype(np.intp)
    low_len = nd_at - starts - 8
    if int(nd_at[-1]) + 16 + 8 * int(nd[-1]) != end - table_at or int(low_len.min()) < 0:
        return None
    name_len = table[starts[:, None] + np.arange(8)].view("<u8").ravel()
    return (table, nd_at, nd) if bool(np.all(name_len == low_len.astype(np.uint64))) else None


def _plan(type_id: int, shape: tuple[int, ...]) -> tuple[int, TensorInfo] | None:
    """(byte length, TensorInfo shared by the tensors of this type and shape), or None when
    `_entry` would refuse such a tensor."""
    gtype = GGML_TYPES.get(type_id)
    if gtype is None or elements_fault(shape[::-1]):
        return None
    if (shape[-1] if shape else 1) % gtype.block_size:
        return None
    extra: dict[str, object] = {"ggml_type": type_id} if gtype.quantized else {}
    return tensor_nbytes(gtype, shape), TensorInfo(gtype.paramio_dtype, shape, extra)
