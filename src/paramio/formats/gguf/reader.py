"""Reading one GGUF file (versions 2 and 3) into entries and typed metadata.

Everything goes through `Cursor`: every count is checked against the bytes that remain before
anything is allocated, so a hostile ``kv_count`` or array count ends in a `TruncatedError`.
Beyond IREE's parser: the current ggml type table (IQ*, BF16, MXFP4 ... sized right), every
tensor's innermost dimension checked against its block size, data ranges checked against the
file, and dtype and shape kept on each entry (`ParameterEntry.tensor`).
"""

from __future__ import annotations

import dataclasses
import struct
from collections.abc import Sequence

import numpy as np

from paramio.core.entries import LazyEntries
from paramio.core.entry import EntryKind, ParameterEntry, entries_from_columns
from paramio.core.errors import FormatError, TruncatedError, UnsupportedFormatError
from paramio.core.source import ByteSource
from paramio.core.tensor import TensorInfo
from paramio.formats.cursor import Cursor
from paramio.formats.gguf.constants import (
    ALIGNMENT_KEY,
    DEFAULT_ALIGNMENT,
    GGML_TYPES,
    MAGIC,
    SUPPORTED_VERSIONS,
    ValueType,
    tensor_nbytes,
)
from paramio.formats.gguf.kv import read_kv_table, read_string
from paramio.formats.regions import Prefix

__all__ = ["FIRST_READ", "GGUFFile", "read_gguf"]


@dataclasses.dataclass(slots=True)
class GGUFFile:
    """One parsed GGUF file: its version, typed key/values (file order), tensors, layout."""

    version: int
    kv: dict[str, dict[str, object]]
    entries: Sequence[ParameterEntry]  #: a list, or `LazyEntries` (built on first use)
    alignment: int
    data_offset: int


def _align(n: int, a: int) -> int:
    return (n + a - 1) // a * a


def _header(cur: Cursor) -> tuple[int, int, int]:
    magic = bytes(cur.buf[:4])
    if magic != MAGIC:
        got = magic.hex() if magic else "nothing"
        raise FormatError(
            f"GGUF file magic missing or invalid ({got}); expected 47475546 ('GGUF')", path=cur.path, offset=0
        )
    cur.skip(4, "GGUF magic")
    version = cur.u32("GGUF version")
    if version not in SUPPORTED_VERSIONS:
        hint = ""
        if int.from_bytes(version.to_bytes(4, "little"), "big") in SUPPORTED_VERSIONS:
            hint = " (this looks like a big-endian GGUF, which paramio does not read)"
        elif version == 1:
            hint = " (version 1 used 32-bit counts; convert it with a newer llama.cpp)"
        raise UnsupportedFormatError(
            f"GGUF format version {version} is unsupported; expected version 2-3{hint}", path=cur.path, offset=4
        )
    tensor_count = cur.u64("tensor count")
    kv_count = cur.u64("metadata key/value count")
    return version, tensor_count, kv_count


#: The first read of a GGUF file, as IRPA and safetensors read theirs: the header, key/values
#: and tensor infos of models without a large vocabulary (one request for a remote file; a view
#: for a mapped one).
FIRST_READ = 64 * 1024
#: How far past the bytes a parse needs a longer header's prefix grows: every growth asks for
#: bytes the header must hold (a need, or a lower bound such as 8 bytes for each string still to
#: come) plus this much, so a remote GGUF transfers at most its header + 64 KiB (the bound IRPA
#: and safetensors keep), in a few requests (each lower bound is a fixed share of what remains).
GROW_AHEAD = 64 * 1024


class _PrefixCursor(Cursor):
    """A `Cursor` over the first bytes of a file (`prefix`), bounded by the whole file (`end`):
    every check reads as for the whole file (same errors, same offsets), and a read the file
    holds but the prefix does not grows the prefix (to what the read needs and `GROW_AHEAD`
    more) first, reading only the bytes past it. Positions are file offsets throughout, so the
    parse goes on over the longer buffer where it stood."""

    __slots__ = ("prefix",)

    def __init__(self, prefix: Prefix, *, path: str, end: int) -> None:
        super().__init__(prefix.buf, path=path)
        self.prefix = prefix
        self.end = max(end, len(self.buf))

    def need(self, n: int, what: str) -> None:
        if 0 <= n and len(self.buf) < self.pos + n <= self.end:
            self.prefix.grow(self.pos + n + GROW_AHEAD)
            self.buf = self.prefix.buf
        super().need(n, what)


def _table_floor(buf: memoryview, pos: int, count: int, have: int, end: int) -> int | None:
    """Where the tensor info table at `pos` ends at the least, when it runs past the `have`
    bytes at hand: the infos walked so far, the one cut off, and 24 bytes for each after it.
    None when the walk ends inside the bytes at hand (the table is not short of bytes) or the
    bound passes `end` (a broken table: the reference loop raises the exact error)."""
    u64, u32 = _U64.unpack_from, _U32.unpack_from
    for i in range(count):
        rest = 24 * (count - i - 1)
        if pos + 8 > have:
            floor = pos + 24 + rest
            break
        (name_len,) = u64(buf, pos)
        if pos + 8 + name_len + 4 > have:
            floor = pos + 8 + name_len + 16 + rest
            break
        (n_dims,) = u32(buf, pos + 8 + name_len)
        nxt = pos + 8 + name_len + 4 + 8 * n_dims + 12
        if nxt > have:
            floor = nxt + rest
            break
        pos = nxt
    else:
        return None
    return floor if floor <= end else None


def read_gguf(source: ByteSource, *, strict: bool = False) -> GGUFFile:
    """Parse `source` as one GGUF file, reading its header, key/values and tensor infos only
    (a first read of `FIRST_READ` bytes, grown while the parse needs more: at most the header
    and `GROW_AHEAD` bytes in all). Raises `FormatError`
    (or its `TruncatedError` and `UnsupportedFormatError` subclasses) naming the file, tensor
    and offset. A repeated metadata key warns, or with `strict` raises
    (`paramio.formats.gguf.kv.read_kv_table`)."""
    cur = _PrefixCursor(Prefix(source, FIRST_READ), path=source.name, end=source.size)
    version, tensor_count, kv_count = _header(cur)
    # A key/value pair needs at least 12 bytes (key length, value type); a tensor info 24.
    cur.need_count(kv_count, 12, "metadata key/value table")
    kv = read_kv_table(cur, kv_count, strict=strict)
    alignment = _alignment(kv, source.name)
    cur.need_count(tensor_count, 24, "tensor info table")
    # Every tensor info takes 24 bytes or more: have them at hand before the fast walk (which
    # reads the buffer directly) rather than leave a table past the first read to the loop.
    cur.need(24 * tensor_count, "tensor info table")
    fast = _fast_table(source, cur, tensor_count, alignment)
    while fast is None:  # past the prefix? grow it to what the table holds at the least, and walk again
        have = min(cur.end, len(cur.buf))
        floor = _table_floor(cur.buf, cur.pos, tensor_count, have, cur.end)
        if floor is None:
            break
        cur.need(floor - cur.pos, "tensor info table")
        fast = _fast_table(source, cur, tensor_count, alignment)
    if fast is not None:
        return GGUFFile(version, kv, fast[0], alignment, fast[1])
    infos: list[tuple[str, tuple[int, ...], int, int, int]] = []
    for i in range(tensor_count):
        name = read_string(cur, f"tensor {i} name").decode("utf-8", "surrogateescape")
        cur.key = name
        nd_at = cur.pos
        n_dims = cur.u32("dimension count")
        if n_dims > GGML_MAX_DIMS:
            raise FormatError(
                f"tensor has {n_dims} dimensions; GGUF allows at most {GGML_MAX_DIMS}",
                path=source.name,
                key=name,
                offset=nd_at,
            )
        cur.need_count(n_dims, 8, "dimensions")
        dims = tuple(cur.u64("dimension") for _ in range(n_dims))
        _check_elements(dims, source.name, name, nd_at + 4)
        type_at = cur.pos
        type_id = cur.u32("ggml type")
        offset = cur.u64("data offset")
        infos.append((name, tuple(reversed(dims)), type_id, offset, type_at))
        cur.key = None
    data_offset = _align(cur.pos, alignment)
    entries = [
        _entry(source, i, name, shape, type_id, rel, type_at, data_offset)
        for i, (name, shape, type_id, rel, type_at) in enumerate(infos)
    ]
    return GGUFFile(version, kv, entries, alignment, data_offset)


_U64 = struct.Struct("<Q")
_U32 = struct.Struct("<I")
_DATA = EntryKind.DATA
#: ggml's GGML_MAX_DIMS: ``gguf_init_from_file_impl`` (ggml/src/gguf.cpp) refuses a tensor info
#: with more dimensions ("invalid number of dimensions"), so no GGUF reader accepts one. A
#: bound here also keeps the shape's product small (four factors, each below 2**63).
GGML_MAX_DIMS = 4
_I64_MAX = (1 << 63) - 1


def elements_fault(dims: Sequence[int]) -> str | None:
    """What gguf.cpp refuses in ``ne`` (dims innermost first, as in the file), or None: a
    dimension above INT64_MAX (it reads them as int64, so they are negative), or an element
    count that reaches INT64_MAX (its test: ``INT64_MAX / ne[j] <= ne[0] * ... * ne[j-1]``)."""
    ne = [*dims, 1, 1, 1, 1][:GGML_MAX_DIMS]
    for j, d in enumerate(ne):
        if d > _I64_MAX:
            return f"dimension {j} is {d}, more than 2**63-1"
    n = ne[0]
    for d in ne[1:]:
        if d and _I64_MAX // d <= n:
            return f"shape ({', '.join(map(str, dims))}) has 2**63-1 elements or more"
        n *= d
    return None


def _check_elements(dims: tuple[int, ...], path: str, key: str, offset: int) -> None:
    fault = elements_fault(dims)
    if fault:
        raise FormatError(f"tensor {fault}", path=path, key=key, offset=offset)


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


def _fast_table(source: ByteSource, cur: Cursor, count: int, alignment: int) -> tuple[LazyEntries, int] | None:
    """The tensor info table walked with two bare `struct` reads per tensor, every other
    field read with NumPy afterwards, checks made once per distinct (type, shape), entries
    built on first use. None when anything is out of the ordinary (a read past the end, more
    than `GGML_MAX_DIMS` dimensions, any check that fails): the caller then runs the reference loop, which
    raises the exact error."""
    buf = cur.buf
    table_at = cur.pos
    limit = min(cur.end, len(buf))  # the bytes at hand (a prefix of the file, maybe)
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
    if pos > limit:
        return None
    data_offset = _align(pos, alignment)
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


def _alignment(kv: dict[str, dict[str, object]], path: str) -> int:
    record = kv.get(ALIGNMENT_KEY)
    if record is None:
        return DEFAULT_ALIGNMENT
    if record["type"] != ValueType.U32.label:
        raise FormatError(f"{ALIGNMENT_KEY} must be a u32, not {record['type']}", path=path, key=ALIGNMENT_KEY)
    value = record["value"]
    assert isinstance(value, int)
    if value == 0 or value & (value - 1):
        raise FormatError(f"{ALIGNMENT_KEY} {value} is not a power of two", path=path, key=ALIGNMENT_KEY)
    return value


def _entry(
    source: ByteSource,
    index: int,
    name: str,
    shape: tuple[int, ...],
    type_id: int,
    rel: int,
    type_at: int,
    data_offset: int,
) -> ParameterEntry:
    gtype = GGML_TYPES.get(type_id)
    if gtype is None:
        raise UnsupportedFormatError(
            f"ggml tensor type {type_id} is unknown", path=source.name, key=name, offset=type_at
        )
    inner = shape[-1] if shape else 1
    if inner % gtype.block_size:
        raise FormatError(
            f"innermost dimension {inner} is not a multiple of the {gtype.name} block size {gtype.block_size}",
            path=source.name,
            key=name,
            offset=type_at,
        )
    length = tensor_nbytes(gtype, shape)
    start = data_offset + rel
    if start + length > source.size:
        raise TruncatedError(
            f"tensor data {start:#x}..{start + length:#x} ({length} bytes of {gtype.name}) ends past the end "
            f"of the file ({source.size:#x})",
            path=source.name,
            key=name,
            offset=type_at + 4,
        )
    extra: dict[str, object] = {"ggml_type": type_id} if gtype.quantized else {}
    info = TensorInfo(gtype.paramio_dtype, shape, extra)
    return ParameterEntry.data(name, source, start, length, tensor=info, origin="gguf", file_index=index)
