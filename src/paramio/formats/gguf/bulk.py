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

from paramio.core.source import ByteSource
from paramio.core.tensor import TensorInfo
from paramio.formats.bulk import Rows, TableEntries
from paramio.formats.cursor import Cursor
from paramio.formats.gguf.constants import GGML_MAX_DIMS
from paramio.formats.gguf.table import plan

__all__ = ["read_table"]

_U64 = struct.Struct("<Q")
_U32 = struct.Struct("<I")


def _walk(buf: memoryview, pos: int, i: int, count: int, nd_at: list[int], have: int) -> tuple[int, int, int]:
    """Walk tensor infos `i`.. from `pos` while each lies whole in the first `have` bytes of
    `buf`, two `struct` reads per info (every other field is read afterwards, all at once),
    noting where each dimension count sits in `nd_at`. Returns ``(i, pos, floor)``: the first
    info not walked and where it starts, and where the table ends at the least (that info's
    fixed fields or what its lengths say, and 24 bytes for each info after it); ``i == count``
    when the walk is done."""
    u64 = _U64.unpack_from
    u32 = _U32.unpack_from
    while i < count:
        rest = 24 * (count - i - 1)
        if pos + 8 > have:
            return i, pos, pos + 24 + rest
        q = pos + 8 + u64(buf, pos)[0]  # name length, name
        if q + 4 > have:
            return i, pos, q + 16 + rest
        nxt = q + 16 + 8 * u32(buf, q)[0]  # count, dims, type (4), offset (8)
        if nxt > have:
            return i, pos, nxt + rest
        nd_at[i] = q
        pos = nxt
        i += 1
    return i, pos, pos


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


def read_table(source: ByteSource, cur: Cursor, count: int, alignment: int) -> tuple[TableEntries, int] | None:
    """The tensor info table walked with two bare `struct` reads per tensor (growing the
    cursor's prefix where the table runs past it, to what the table holds at the least), every
    other field read with NumPy afterwards, checks made once per distinct (type, shape),
    entries built on first use. None when anything is out of the ordinary (a table past the
    end of the file, more than `GGML_MAX_DIMS` dimensions, any check that fails): the caller
    then runs the reference loop, which raises the exact error."""
    table_at = cur.pos
    nd_at_list = [0] * count
    i, pos = 0, table_at
    while True:
        buf = cur.buf
        have = min(cur.end, len(buf))  # the bytes at hand: a prefix of the file, maybe
        i, pos, floor = _walk(buf, pos, i, count, nd_at_list, have)
        if i == count:
            break
        if floor > cur.end or have >= cur.end:
            return None  # the table runs past the end of the file: the loop says where
        # Read what the table holds at the least (the cursor reads `GROW_AHEAD` more), walk on.
        cur.need(floor - cur.pos, "tensor info table")
    data_offset = -(-pos // alignment) * alignment
    size = source.size
    room = size - data_offset  # every tensor must end inside the file
    if count:
        if room < 0:
            return None
        table = np.frombuffer(buf, dtype=np.uint8, count=pos - table_at, offset=table_at)
        nd_at = np.array(nd_at_list, dtype=np.intp) - table_at
        nd = table[nd_at[:, None] + np.arange(4)].view("<u4").ravel()
        got = _tails(table, nd_at, nd, count)
        if got is None:
            return None
        _, rels_np, pairs, which = got
        plans: list[tuple[int, TensorInfo]] = []
        for type_id, shape in pairs:
            made = plan(type_id, shape)
            if made is None:
                return None
            plans.append(made)
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

    def rows() -> Rows:
        spans = list(map(plans.__getitem__, spans_of))
        return [data_offset + rel for rel in rels], [span[0] for span in spans], [span[1] for span in spans]

    return TableEntries(keys, rows, source, "gguf"), data_offset
