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

from paramio.arrays.metadata import TensorInfo
from paramio.errors import FormatError, TruncatedError, UnsupportedFormatError
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
from paramio.formats.gguf.kv import read_kv, read_string
from paramio.index.entry import EntryKind, ParameterEntry, build_entry
from paramio.index.lazy import LazyEntries
from paramio.sources.base import ByteSource

__all__ = ["GGUFFile", "read_gguf"]


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


def read_gguf(source: ByteSource) -> GGUFFile:
    """Parse `source` as one GGUF file. Raises `FormatError` (or its `TruncatedError` and
    `UnsupportedFormatError` subclasses) naming the file, tensor and offset."""
    size = source.size
    cur = Cursor(source.view(0, size), path=source.name)
    version, tensor_count, kv_count = _header(cur)
    # A key/value pair needs at least 12 bytes (key length, value type); a tensor info 24.
    cur.need_count(kv_count, 12, "metadata key/value table")
    kv: dict[str, dict[str, object]] = {}
    for _ in range(kv_count):
        at = cur.pos
        key, record = read_kv(cur)
        if key in kv:
            raise FormatError(f"duplicate metadata key {key!r}", path=source.name, offset=at)
        kv[key] = record
    alignment = _alignment(kv, source.name)
    cur.need_count(tensor_count, 24, "tensor info table")
    fast = _fast_table(source, cur, tensor_count, alignment)
    if fast is not None:
        return GGUFFile(version, kv, fast[0], alignment, fast[1])
    infos: list[tuple[str, tuple[int, ...], int, int, int]] = []
    for i in range(tensor_count):
        name = read_string(cur, f"tensor {i} name").decode("utf-8", "surrogateescape")
        cur.key = name
        n_dims = cur.u32("dimension count")
        cur.need_count(n_dims, 8, "dimensions")
        dims = tuple(cur.u64("dimension") for _ in range(n_dims))
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


#: ``<dims..., type, offset>`` after a tensor's dimension count, by dimension count.
_TAILS = {n: struct.Struct(f"<{n}QIQ") for n in range(9)}
_TAILS_NEXT = {n: struct.Struct(f"<{n}QIQQ") for n in range(9)}  # ... and the next name's length
_U64 = struct.Struct("<Q")
_U32 = struct.Struct("<I")
_DATA = EntryKind.DATA


def _fast_table(source: ByteSource, cur: Cursor, count: int, alignment: int) -> tuple[LazyEntries, int] | None:
    """The tensor info table walked with bare `struct` reads, and its checks made once per
    distinct (type, shape), entries built on first use. None when anything is out of the
    ordinary (a read past the end, more than 8 dimensions, any check that fails): the caller
    then runs the reference loop, which raises the exact error."""
    buf = cur.buf
    pos = cur.pos
    table_at = pos
    u64 = _U64.unpack_from
    u32 = _U32.unpack_from
    tails = _TAILS
    tails_next = _TAILS_NEXT
    name_at = [0] * count
    name_end = [0] * count
    shapes: list[tuple[int, ...]] = [()] * count
    types = [0] * count
    rels = [0] * count
    try:
        # Each read takes a tensor's dimensions, type and offset and the next tensor's name
        # length: two `struct` calls per tensor.
        n = u64(buf, pos)[0] if count else 0
        last = count - 1
        for i in range(count):
            pos += 8
            name_at[i] = pos
            pos += n
            name_end[i] = pos
            (nd,) = u32(buf, pos)
            values = (tails_next if i != last else tails)[nd].unpack_from(buf, pos + 4)
            shapes[i] = values[:nd][::-1]  # GGUF lists the innermost dimension first
            types[i] = values[nd]
            rels[i] = values[nd + 1]
            pos += 16 + 8 * nd
            if i != last:
                n = values[nd + 2]
    except (struct.error, KeyError, OverflowError):  # past the end, > 8 dims, past 2**63
        return None
    if pos > cur.end:
        return None
    data_offset = _align(pos, alignment)
    size = source.size
    pairs = list(zip(types, shapes, strict=True))
    plans = dict.fromkeys(pairs)
    for type_id, shape in plans:
        plan = _plan(type_id, shape)
        if plan is None:
            return None
        plans[(type_id, shape)] = plan
    spans: list[tuple[int, TensorInfo]] = list(map(plans.__getitem__, pairs))  # type: ignore[arg-type]
    room = size - data_offset  # every tensor must end inside the file
    if count:
        if room < 0 or max(n for n, _ in plans.values()) > room:  # type: ignore[misc]
            return None
        ends = np.fromiter((n for n, _ in spans), dtype=np.uint64, count=count)
        if not bool(np.all(np.array(rels, dtype=np.uint64) <= room - ends)):
            return None
    # Names sliced from one decoded string; bytes map 1:1 to latin-1 characters, and an ASCII
    # name reads the same in UTF-8 (the reference loop's decoding, kept for any other name).
    text = str(buf[table_at:pos], "latin-1")
    keys = [text[a - table_at : b - table_at] for a, b in zip(name_at, name_end, strict=True)]
    if not "".join(keys).isascii():
        keys = [bytes(buf[a:b]).decode("utf-8", "surrogateescape") for a, b in zip(name_at, name_end, strict=True)]

    def make(i: int) -> ParameterEntry:
        length, info = spans[i]
        return build_entry(keys[i], _DATA, length, b"", source, data_offset + rels[i], b"", info, "gguf", i)

    def make_all() -> list[ParameterEntry]:
        return [
            build_entry(k, _DATA, span[0], b"", source, data_offset + rel, b"", span[1], "gguf", i)
            for i, (k, span, rel) in enumerate(zip(keys, spans, rels, strict=True))
        ]

    return LazyEntries(list(keys), make, make_all), data_offset


def _plan(type_id: int, shape: tuple[int, ...]) -> tuple[int, TensorInfo] | None:
    """(byte length, TensorInfo shared by the tensors of this type and shape), or None when
    `_entry` would refuse such a tensor."""
    gtype = GGML_TYPES.get(type_id)
    if gtype is None:
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
