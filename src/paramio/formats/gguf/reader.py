"""Reading one GGUF file (versions 2 and 3) into entries and typed metadata.

Everything goes through `Cursor`: every count is checked against the bytes that remain before
anything is allocated, so a hostile ``kv_count`` or array count ends in a `TruncatedError`.
Beyond IREE's parser: the current ggml type table (IQ*, BF16, MXFP4 ... sized right), every
tensor's innermost dimension checked against its block size, data ranges checked against the
file, and dtype and shape kept on each entry (`ParameterEntry.tensor`).
"""

from __future__ import annotations

from collections.abc import Sequence

from paramio.core.entry import ParameterEntry
from paramio.core.errors import FormatError, TruncatedError, UnsupportedFormatError
from paramio.core.records import MutableRecord
from paramio.core.source import ByteSource
from paramio.core.tensor import TensorInfo
from paramio.formats.bulk import use_bulk
from paramio.formats.cursor import Cursor
from paramio.formats.gguf.constants import (
    ALIGNMENT_KEY,
    DEFAULT_ALIGNMENT,
    GGML_MAX_DIMS,
    GGML_TYPES,
    MAGIC,
    SUPPORTED_VERSIONS,
    ValueType,
    elements_fault,
    tensor_nbytes,
)
from paramio.formats.gguf.kv import read_kv_table, read_string
from paramio.formats.gguf.table import read_plain
from paramio.formats.regions import Prefix

__all__ = ["FIRST_READ", "GGUFFile", "read_gguf"]


class GGUFFile(MutableRecord):
    """One parsed GGUF file: its version, typed key/values (file order), tensors, layout."""

    __slots__ = ("version", "kv", "entries", "alignment", "data_offset")
    __match_args__ = __slots__
    version: int
    kv: dict[str, dict[str, object]]
    entries: Sequence[ParameterEntry]  #: a list, or `LazyEntries` (built on first use)
    alignment: int
    data_offset: int

    def __init__(
        self,
        version: int,
        kv: dict[str, dict[str, object]],
        entries: Sequence[ParameterEntry],
        alignment: int,
        data_offset: int,
    ) -> None:
        self.version = version
        self.kv = kv
        self.entries = entries
        self.alignment = alignment
        self.data_offset = data_offset


#: A tensor table this long is read with NumPy even when it is not imported yet: below it, the
#: walk without NumPy (`gguf/table.py`) lists faster than importing NumPy would let the bulk path
#: (``paramio dump`` processes: 338 against 399 ms at 100,000 tensors; `paramio.formats.bulk`).
BULK_FROM_ENTRIES = 1 << 17


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


def read_gguf(source: ByteSource, *, strict: bool = False, bulk: bool = True) -> GGUFFile:
    """Parse `source` as one GGUF file, reading its header, key/values and tensor infos only
    (a first read of `FIRST_READ` bytes, grown while the parse needs more: at most the header
    and `GROW_AHEAD` bytes in all). Raises `FormatError`
    (or its `TruncatedError` and `UnsupportedFormatError` subclasses) naming the file, tensor
    and offset. A repeated metadata key warns, or with `strict` raises
    (`paramio.formats.gguf.kv.read_kv_table`). A large tensor table is read at once
    (`paramio.formats.gguf.bulk`) unless `bulk` is false."""
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
    if bulk and use_bulk(tensor_count, BULK_FROM_ENTRIES):
        from paramio.formats.gguf.bulk import read_table

        fast = read_table(source, cur, tensor_count, alignment)
        if fast is not None:
            return GGUFFile(version, kv, fast[0], alignment, fast[1])
    elif bulk:
        plain = read_plain(source, cur, tensor_count, alignment)
        if plain is not None:
            return GGUFFile(version, kv, plain[0], alignment, plain[1])
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


def _check_elements(dims: tuple[int, ...], path: str, key: str, offset: int) -> None:
    fault = elements_fault(dims)
    if fault:
        raise FormatError(f"tensor {fault}", path=path, key=key, offset=offset)


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
