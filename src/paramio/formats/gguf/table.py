"""The GGUF tensor info table read in one bare walk, without NumPy: what a listing takes.

`reader.read_gguf`'s loop reads every field through the checked `Cursor` and builds an entry per
tensor (about 10 µs each). Here one walk reads each info with a few bare `struct` reads (every
read inside the bytes at hand, growing the cursor's prefix as the loop would), the checks run
once per distinct (dimensions, type) bytes, and entries are built on first use: a listing reads
their keys, offsets and lengths as columns. Anything out of the ordinary gives None and the loop
decides and names the fault. `bulk` is the same with NumPy, for large tables.
"""

from __future__ import annotations

import struct

from paramio.core.source import ByteSource
from paramio.core.tensor import TensorInfo
from paramio.formats.bulk import TableEntries
from paramio.formats.cursor import Cursor
from paramio.formats.gguf.constants import GGML_MAX_DIMS, GGML_TYPES, elements_fault, tensor_nbytes

__all__ = ["plan", "read_plain"]

_U64 = struct.Struct("<Q")
_U32 = struct.Struct("<I")
#: Dimensions and type of an info by its dimension count (the offset is read on its own).
_TAILS = tuple(struct.Struct(f"<{d}QI") for d in range(GGML_MAX_DIMS + 1))


def plan(type_id: int, shape: tuple[int, ...]) -> tuple[int, TensorInfo] | None:
    """(byte length, TensorInfo shared by the tensors of this type and shape), or None when the
    reader's checks (`reader._entry`, `reader._check_elements`) would refuse such a tensor."""
    gtype = GGML_TYPES.get(type_id)
    if gtype is None or elements_fault(shape[::-1]):
        return None
    if (shape[-1] if shape else 1) % gtype.block_size:
        return None
    extra: dict[str, object] = {"ggml_type": type_id} if gtype.quantized else {}
    return tensor_nbytes(gtype, shape), TensorInfo(gtype.paramio_dtype, shape, extra)


def read_plain(source: ByteSource, cur: Cursor, count: int, alignment: int) -> tuple[TableEntries, int] | None:
    """(entries built on first use, data offset) of the `count` tensor infos at the cursor, or
    None when anything is out of the ordinary (a table past the end of the file, more than
    `GGML_MAX_DIMS` dimensions, any check that fails): the caller then runs the reference loop
    from the same position, which raises the exact error. The cursor's prefix grows as the
    loop's would: to what the table holds at the least, and `GROW_AHEAD` more."""
    table_at = cur.pos
    names: list[tuple[int, int]] = []
    rels: list[int] = []
    which: list[int] = []  # each tensor's row in `plans`
    plans: list[tuple[int, TensorInfo]] = []
    seen: dict[bytes, int] = {}
    u64 = _U64.unpack_from
    u32 = _U32.unpack_from
    pos = table_at
    i = 0
    while True:
        buf = cur.buf
        have = min(cur.end, len(buf))  # the bytes at hand: a prefix of the file, maybe
        while i < count:
            rest = 24 * (count - i - 1)
            if pos + 8 > have:
                floor = pos + 24 + rest
                break
            q = pos + 8 + u64(buf, pos)[0]  # name length, name
            if q + 4 > have:
                floor = q + 16 + rest
                break
            nd = u32(buf, q)[0]
            if nd > GGML_MAX_DIMS:
                return None
            nxt = q + 16 + 8 * nd  # count, dims, type (4), offset (8)
            if nxt > have:
                floor = nxt + rest
                break
            head = bytes(buf[q + 4 : nxt - 8])  # dims and type
            row = seen.get(head)
            if row is None:
                *dims, type_id = _TAILS[nd].unpack(head)
                made = plan(type_id, tuple(reversed(dims)))  # GGUF lists the innermost first
                if made is None:
                    return None
                row = seen[head] = len(plans)
                plans.append(made)
            names.append((pos + 8, q))
            rels.append(u64(buf, nxt - 8)[0])
            which.append(row)
            pos = nxt
            i += 1
        else:
            break
        if floor > cur.end or have >= cur.end:
            return None  # the table runs past the end of the file: the loop says where
        cur.need(floor - cur.pos, "tensor info table")  # grows the prefix; the walk goes on
    data_offset = -(-pos // alignment) * alignment
    room = source.size - data_offset  # every tensor must end inside the file
    lengths = [plans[r][0] for r in which]
    if count and (room < 0 or max(map(int.__add__, rels, lengths)) > room):
        return None
    text = str(buf[table_at:pos], "latin-1")  # bytes map 1:1 to latin-1 characters
    keys = [text[a - table_at : b - table_at] for a, b in names]
    if not "".join(keys).isascii():  # ASCII reads the same in UTF-8; any other name as the loop
        keys = [str(buf[a:b], "utf-8", "surrogateescape") for a, b in names]
    offsets = [data_offset + rel for rel in rels]
    infos: list[TensorInfo | None] = [plans[r][1] for r in which]
    return TableEntries(keys, lambda: (offsets, lengths, infos), source, "gguf"), data_offset
