"""Reading one safetensors file: frame, header and the library's tiling rules, then entries.

Checks, in the library's order: at least 8 bytes; the claimed header length at most
100,000,000 (checked before anything is read for it) and inside the file; the header (see
`header`); tensors sorted by ``data_offsets`` tile the data buffer from 0 with no hole and no
overlap; each tensor's byte size equals dtype bits x element count (sub-byte tensors must end
on a byte); the file ends exactly where the last tensor does. Entries come out in the header's
document order (IREE's order), each a zero-copy span of one shared `FileSource`.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import repeat
from math import prod
from operator import attrgetter, itemgetter, mul, sub

from paramio.core.entries import LazyEntries
from paramio.core.entry import ParameterEntry
from paramio.core.errors import FormatError, TruncatedError
from paramio.core.source import ByteSource
from paramio.core.tensor import TensorInfo
from paramio.formats.bulk import TableEntries, use_bulk
from paramio.formats.cursor import Cursor
from paramio.formats.regions import Prefix, first_read
from paramio.formats.safetensors.header import Header, HeaderColumns, TensorRecord, parse_columns, parse_header
from paramio.formats.safetensors.layout import (
    HEADER_LENGTH_SIZE,
    MAX_HEADER_SIZE,
    USIZE_MAX,
)

TYPE_CHECKING = False  # `typing` is not imported to read a file (mypy reads this as typing's)
if TYPE_CHECKING:
    from paramio.formats.safetensors.bulk import Columns

__all__ = ["FIRST_READ", "SafetensorsFile", "read_file", "read_header"]

#: The first read of a file from a source that pays per request (a URL): the length and, for
#: most files, the whole header. A local file is asked for the length, then the header.
FIRST_READ = 64 * 1024
#: Header bytes per tensor in a canonical header, about (to tell a large table before parsing it).
_BYTES_PER_TENSOR = 64
_first = itemgetter(0)
_second = itemgetter(1)
_bits = attrgetter("bits")


class SafetensorsFile:
    """What one file holds: entries in document order, ``__metadata__`` and the data start."""

    __slots__ = ("_columns", "_header", "data_start", "entries", "metadata", "source")

    def __init__(
        self,
        source: ByteSource,
        header: Header | HeaderColumns | Columns,
        data_start: int,
        entries: Sequence[ParameterEntry],
    ) -> None:
        self.source = source
        self._header = header if isinstance(header, Header) else None
        self._columns = None if isinstance(header, Header) else header
        self.data_start = data_start
        self.entries = entries
        #: ``__metadata__``, None when absent or null.
        self.metadata: dict[str, str] | None = header.metadata

    @property
    def header(self) -> Header:
        if self._header is None:
            assert self._columns is not None
            self._header = self._columns.header()
        return self._header


#: A header of about this many tensors is checked with NumPy even when it is not imported yet:
#: below it, the checks without NumPy (`header.parse_columns`) list faster than importing NumPy
#: would let the bulk path (``paramio dump`` processes: 196 against 218 ms at 30,000 tensors,
#: 841 against 463 ms at 100,000; `paramio.formats.bulk`).
BULK_FROM_ENTRIES = 1 << 15


def read_header(source: ByteSource) -> tuple[Header, int]:
    """The validated header of `source` and the offset where its data buffer starts.

    Raises `TruncatedError` when the file is too short for what it claims, `FormatError` for any
    other breach of the format (named file, tensor and byte offset).
    """
    raw, data_start = _frame(source)
    return _checked_header(source, raw, data_start), data_start


def _frame(source: ByteSource) -> tuple[memoryview, int]:
    """The header's bytes and where the data starts, read through the source: the length (from
    a remote source, a first read of `FIRST_READ` bytes, which usually holds the whole header),
    then the rest of the header, whose claimed length is checked against the limit and the
    file first."""
    name = source.name
    size = source.size
    if size < HEADER_LENGTH_SIZE:
        raise TruncatedError(
            f"file has {size} bytes; a safetensors file needs at least {HEADER_LENGTH_SIZE}", path=name, offset=0
        )
    prefix = Prefix(source, first_read(source, HEADER_LENGTH_SIZE, FIRST_READ))
    cur = Cursor(prefix.buf[:HEADER_LENGTH_SIZE], path=name)
    n = cur.u64("header length")
    if n > MAX_HEADER_SIZE:
        raise FormatError(f"header length {n} exceeds the limit of {MAX_HEADER_SIZE} bytes", path=name, offset=0)
    if HEADER_LENGTH_SIZE + n > size:
        raise TruncatedError(
            f"header of {n} bytes ends at {HEADER_LENGTH_SIZE + n:#x} but the file ends at {size:#x}",
            path=name,
            offset=0,
        )
    (raw,) = prefix.spans([(HEADER_LENGTH_SIZE, n)])
    return raw, HEADER_LENGTH_SIZE + n


def _checked_header(source: ByteSource, raw: memoryview, data_start: int) -> Header:
    header = parse_header(raw, path=source.name)
    _check_tiling(header.tensors, data_start, source.size, source.name)
    return header


def _check_tiling(tensors: list[TensorRecord], data_start: int, size: int, name: str) -> None:
    available = size - data_start
    pos = 0
    for t in sorted(tensors, key=lambda t: (t.begin, t.end)):
        where = data_start + t.begin if data_start + t.begin <= USIZE_MAX else None
        if t.end < t.begin:
            raise FormatError(
                f"data_offsets [{t.begin}, {t.end}] end before they begin", path=name, key=t.key, offset=where
            )
        if t.begin != pos:
            what = "leaves a hole after" if t.begin > pos else "overlaps"
            raise FormatError(
                f"data_offsets [{t.begin}, {t.end}] {what} the previous tensor's data, which ends at "
                f"{pos} (tensors must tile the data buffer)",
                path=name,
                key=t.key,
                offset=where,
            )
        pos = t.end
        nbytes = _nbytes(t, name)
        if t.end - t.begin != nbytes:
            raise FormatError(
                f"data_offsets [{t.begin}, {t.end}] hold {t.end - t.begin} bytes but {t.dtype.code} "
                f"{list(t.shape)} needs {nbytes}",
                path=name,
                key=t.key,
                offset=where,
            )
        if t.end > available:
            raise TruncatedError(
                f"data ends at {data_start + t.end:#x} but the file ends at {size:#x}",
                path=name,
                key=t.key,
                offset=where,
            )
    if pos != available:
        raise FormatError(
            f"the file has {available - pos} bytes after the last tensor's data (ends at "
            f"{data_start + pos:#x}); safetensors files must end there",
            path=name,
            offset=data_start + pos,
        )


def _shape_text(shape: tuple[int, ...]) -> str:
    """A shape for a one-line message: a header may give a tensor a million dimensions."""
    if len(shape) <= 16:
        return str(list(shape))
    return f"[{', '.join(map(str, shape[:8]))}, ... ({len(shape)} dimensions)]"


def _nbytes(t: TensorRecord, name: str) -> int:
    """Element count x bits / 8, with the library's overflow checks in u64 arithmetic."""
    count = 1
    for d in t.shape:
        count *= d
        if count > USIZE_MAX:
            raise FormatError(f"shape {_shape_text(t.shape)} overflows a 64-bit element count", path=name, key=t.key)
    bits = count * t.dtype.bits
    if bits > USIZE_MAX:
        raise FormatError(f"shape {_shape_text(t.shape)} overflows a 64-bit bit count", path=name, key=t.key)
    if bits % 8:
        raise FormatError(
            f"{count} elements of {t.dtype.code} ({t.dtype.bits} bits each) do not end on a byte boundary",
            path=name,
            key=t.key,
        )
    return bits // 8


def _plain_entries(source: ByteSource, columns: HeaderColumns, data_start: int) -> LazyEntries | None:
    """The entries of a header that `_check_tiling` accepts, its checks made on whole columns
    (products, comparisons and sorts in C), built on first use (a listing reads the columns);
    None when a check fails or a tensor holds no elements, for `_check_tiling` to decide and name."""
    keys = columns.keys
    begins = list(map(_first, columns.offsets))
    ends = list(map(_second, columns.offsets))
    lengths = list(map(sub, ends, begins))
    counts = list(map(prod, columns.shapes))
    need = list(map(mul, counts, map(_bits, columns.dtypes)))
    available = source.size - data_start
    if not keys:
        return LazyEntries([], _no_entry, list) if available == 0 else None
    # Every count positive (a zero-element tensor goes to `_check_tiling`: its overflow checks
    # see every partial product), so an exact byte size means positive lengths and bit counts.
    if min(counts) <= 0 or max(need) > USIZE_MAX or need != list(map(mul, lengths, repeat(8))):
        return None
    if begins[0] != 0 or begins[1:] != ends[:-1]:  # not in file order: sort by (begin, end)
        spans = sorted(zip(begins, ends, strict=True))
        first, last = list(map(_first, spans)), list(map(_second, spans))
        if first[0] != 0 or first[1:] != last[:-1] or last[-1] != available:
            return None
    elif ends[-1] != available:
        return None
    offsets = [b + data_start for b in begins]

    def tensors() -> list[TensorInfo | None]:
        # One TensorInfo per (dtype, shape), shared between tensors: TensorInfo is frozen.
        shared: dict[tuple[str, tuple[int, ...]], TensorInfo] = {}
        infos: list[TensorInfo | None] = []
        for d, dims in zip(columns.dtypes, columns.shapes, strict=True):
            shape = tuple(dims)
            info = shared.get((d.name, shape))
            if info is None:
                info = shared[(d.name, shape)] = TensorInfo(d.name, shape)
            infos.append(info)
        return infos

    return TableEntries(keys, lambda: (offsets, lengths, tensors()), source, "safetensors")


def _no_entry(i: int) -> ParameterEntry:
    raise IndexError(i)


def read_file(source: ByteSource, *, bulk: bool = True) -> SafetensorsFile:
    """Validate `source` and build its entries (zero-copy spans of `source`), reading the
    length and the header only.

    A large header in canonical form is checked in bulk and its entries are built on first use
    (`paramio.formats.safetensors.bulk`); any other header through `header.parse_columns` and
    `_plain_entries` (no NumPy; entries built on first use where every check passes at once).
    With `bulk` false, every header goes through the reference checks of `read_header`."""
    raw, data_start = _frame(source)
    if bulk and use_bulk(len(raw) // _BYTES_PER_TENSOR, BULK_FROM_ENTRIES):
        from paramio.formats.safetensors.bulk import lazy_entries, parse_canonical

        columns = parse_canonical(raw, source.size - data_start)
        if columns is not None:
            return SafetensorsFile(source, columns, data_start, lazy_entries(source, columns, data_start))
    if bulk:  # the plain path: no NumPy, checks on whole columns, entries built on first use
        parsed = parse_columns(raw, path=source.name)
        if isinstance(parsed, HeaderColumns):
            plain = _plain_entries(source, parsed, data_start)
            if plain is not None:
                return SafetensorsFile(source, parsed, data_start, plain)
            parsed = parsed.header()
        _check_tiling(parsed.tensors, data_start, source.size, source.name)
        header = parsed
    else:
        header = _checked_header(source, raw, data_start)
    entries = [
        ParameterEntry.data(
            t.key,
            source,
            data_start + t.begin,
            t.end - t.begin,
            tensor=TensorInfo(t.dtype.name, t.shape),
            origin="safetensors",
            file_index=i,
        )
        for i, t in enumerate(header.tensors)
    ]
    return SafetensorsFile(source, header, data_start, entries)
