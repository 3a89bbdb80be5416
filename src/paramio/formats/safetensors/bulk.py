"""Canonical safetensors headers checked in bulk with NumPy, without building a JSON tree.

`header.parse_header` (Python's `json`, then every check of the library, tensor by tensor) is
the reference: about 10 µs a tensor. A header in the canonical form writers produce is checked
here on whole arrays instead, and its entries are built on first use (`TableEntries`); anything
else, or any failed check, gives None and the reference parser decides and names the fault.
Taken only for large headers or when NumPy is imported already (`paramio.formats.bulk`).
"""

from __future__ import annotations

import dataclasses
import json
import re

import numpy as np

from paramio.core.source import ByteSource
from paramio.core.tensor import TensorInfo
from paramio.formats.bulk import Rows, TableEntries
from paramio.formats.safetensors.header import _METADATA_KEY, Header, TensorRecord
from paramio.formats.safetensors.layout import DTYPES, StDType, by_code

__all__ = ["Columns", "lazy_entries", "parse_canonical"]


_PLAIN = rb'[^"\\\x00-\x1f]*'  # a JSON string body without escapes: its text is its value
_CANON_METADATA = re.compile(
    rb'\{"__metadata__":(null|\{(?:"'
    + _PLAIN
    + rb'":"'
    + _PLAIN
    + rb'"(?:,"'
    + _PLAIN
    + rb'":"'
    + _PLAIN
    + rb'")*)?\}),"'
)
_MAX_DIGITS = 15  # exact in int64 and float64, far below u64's limit
_MAX_REGION = 1024  # bytes between a shape's or offsets' brackets: more goes to the full parser
_ONES = np.uint64(0xFFFFFFFFFFFFFFFF)
_PADDING = frozenset(b" \t\n\r")  # what may follow the JSON (writers pad with spaces)
_SCAN = 1 << 16  # bytes per slice of the quote scan
_SWAR_STEPS = tuple(
    (np.uint64(mask), np.uint64(factor), np.uint64(shift))
    for mask, factor, shift in (
        (0x0F0F0F0F0F0F0F0F, 10 << 8 | 1, 8),  # digit pairs
        (0x00FF00FF00FF00FF, 100 << 16 | 1, 16),  # quads
        (0x0000FFFF0000FFFF, 10000 << 32 | 1, 32),  # octets
    )
)
_MAX_CODE = max(len(d.code) for d in DTYPES)


@dataclasses.dataclass(frozen=True, slots=True)
class Columns:
    """A canonical header by column: what `parse_header` gives, not yet built into records.

    Tensor ``i`` is ``keys[i]``, dtype ``dtype_table[dtype_ids[i]]``, shape
    ``dims[dim_starts[i] : dim_starts[i] + ndims[i]]``, at ``[begins[i], begins[i] + lengths[i])``
    of the data buffer."""

    keys: list[str]
    dtype_table: list[StDType]
    dtype_ids: np.ndarray
    dims: np.ndarray
    dim_starts: np.ndarray
    ndims: np.ndarray
    begins: np.ndarray
    lengths: np.ndarray
    metadata: dict[str, str] | None
    #: ``{key: i}``, built by the duplicate check; handed to the index that adopts the entries.
    positions: dict[str, int] | None = None

    def rows(self) -> tuple[list[StDType], list[tuple[int, ...]], list[int], list[int]]:
        """Per tensor: dtype, shape, begin, length, as Python objects."""
        table = self.dtype_table
        dims: list[int] = self.dims.tolist()
        shapes = [tuple(dims[s : s + k]) for s, k in zip(self.dim_starts.tolist(), self.ndims.tolist(), strict=True)]
        return [table[i] for i in self.dtype_ids.tolist()], shapes, self.begins.tolist(), self.lengths.tolist()

    def header(self) -> Header:
        dtypes, shapes, begins, lengths = self.rows()
        return Header(
            [
                TensorRecord(k, d, s, b, b + n)
                for k, d, s, b, n in zip(self.keys, dtypes, shapes, begins, lengths, strict=True)
            ],
            self.metadata,
        )


def parse_canonical(raw: bytes | memoryview, available: int) -> Columns | None:
    """The header, when `raw` is in the canonical form writers produce and every check passes.

    Canonical: ``{["__metadata__":{...},]"k":{"dtype":"D","shape":[...],"data_offsets":[b,e]},...}``
    with no whitespace (but trailing padding), escapes (but in ``__metadata__`` strings, which
    `json` reads on their own), control bytes or repeated keys, and numbers of at most 15 digits. Then every ``"`` delimits a string, so the quotes' positions
    give the structure: each tensor has exactly ten, every byte between strings is checked
    against the fixed text or the number grammar, numbers are read in bulk, and the checks of
    `parse_header` and of the reader's tiling run on whole arrays. Anything else, or any
    failed check, gives None: the caller runs the full parser, which decides exactly as before
    and names the fault.

    `raw` may be a view of a mapped file: it is read in place, never copied whole (fresh
    anonymous memory costs a page fault per 4 KiB, more than the parse itself here).
    """
    whole = memoryview(raw).cast("B")
    end = len(whole)
    while end and whole[end - 1] in _PADDING:
        end -= 1
    data = whole[:end]
    if bytes(data[-3:]) != b"]}}":
        return None
    arr = np.frombuffer(data, dtype=np.uint8)
    if int(arr.min()) < 0x20:
        return None
    ascii_only = int(arr.max()) < 0x80
    if not ascii_only:
        try:
            str(data, "utf-8")
        except UnicodeDecodeError:
            return None
    metadata: dict[str, str] | None = None
    if bytes(data[:16]) == b'{"__metadata__":':
        m = _CANON_METADATA.match(data)
        if m is not None:
            metadata = json.loads(bytes(m.group(1)))  # canonical by the pattern: plain strings only
            start = m.end() - 1
        else:  # strings with escapes (paramio's carried record is JSON inside a string)
            escaped = _escaped_metadata(data, ascii_only)
            if escaped is None:
                return None
            metadata, start = escaped
    elif bytes(data[:2]) == b'{"':
        start = 1
    else:
        return None
    found = _quotes(arr, start)
    if found is None or len(found) == 0 or len(found) % 10:
        return None
    n = len(found) // 10
    q = found.reshape(n, 10)
    length = len(arr)
    nxt = np.empty(n, dtype=np.int64)  # where each tensor's text ends (the next key's quote)
    nxt[:-1] = q[1:, 0]
    nxt[-1] = length
    # The fixed text around the strings. Each template's own quotes must be the next quotes in
    # `q`, so matching it also fixes those positions: "k" then ':{"dtype":"' (quotes 1-4),
    # '","shape":[' (quotes 5-7), '],"data_offsets":[' (quotes 8-9), ']},' before the next key.
    if not (
        _text_at(data, q[:, 1], b'":{"dtype":"')
        and _text_at(data, q[:, 5], b'","shape":[')
        and _text_at(data, q[:, 8] - 2, b'],"data_offsets":[')
        and _text_at(data, nxt[:-1] - 3, b"]},")
    ):
        return None
    code_widths = q[:, 5] - q[:, 4] - 1
    if not bool(np.all((code_widths >= 1) & (code_widths <= _MAX_CODE))):
        return None
    code0 = bytes(data[int(q[0, 4]) + 1 : int(q[0, 5]) + 1])  # the first code and its closing quote
    if _text_at(data, q[:, 4] + 1, code0):  # one dtype (the common case): no per-code table
        first = by_code(code0[:-1].decode("ascii", "replace"))
        codes = None if first is None else ([first], np.zeros(n, dtype=np.int64))
    else:
        codes = _dtype_codes(arr, q[:, 4] + 1, code_widths)
    if codes is None:
        return None
    dtype_table, dtype_ids = codes
    # Numbers: shapes in [q7 + 3, q8 - 2), offsets in [q9 + 3, next - 3), each followed by "]".
    shapes = _numbers(arr, q[:, 7] + 3, q[:, 8] - 2)
    pairs = _numbers(arr, q[:, 9] + 3, nxt - 3)
    if shapes is None or pairs is None or not bool(np.all(pairs[1] == 2)):
        return None
    dims, ndims = shapes
    offsets = pairs[0].reshape(n, 2)
    begins, ends = offsets[:, 0], offsets[:, 1]
    counts = _element_counts(dims, ndims, n)
    if counts is None:
        return None
    bits = np.array([d.bits for d in dtype_table], dtype=np.int64)[dtype_ids] * counts
    if bool(np.any(bits % 8)):
        return None
    lengths = ends - begins
    if not _tiles(begins, ends, lengths, bits // 8, available):
        return None
    keys = _keys(data, q[:, 0] + 1, q[:, 1], ascii_only)
    positions = dict(zip(keys, range(n), strict=True))  # the duplicate check, kept for the index
    if len(positions) != n or _METADATA_KEY in positions:
        return None
    dim_starts = np.zeros(n, dtype=np.int64)
    np.cumsum(ndims[:-1], out=dim_starts[1:])
    return Columns(keys, dtype_table, dtype_ids, dims, dim_starts, ndims, begins, lengths, metadata, positions)


def _escaped_metadata(data: memoryview, ascii_only: bool) -> tuple[dict[str, str] | None, int] | None:
    """(``__metadata__``, where the first tensor key's quote is) when the header opens with a
    metadata object of strings that hold escapes, parsed by `json` alone (its strings are read
    as serde reads them but for lone surrogates, which are left to the full parser); None for
    anything else."""
    text = str(data, "utf-8")
    try:
        value, end = _METADATA_DECODER.raw_decode(text, 16)
    except (ValueError, RecursionError):
        return None
    if text[end : end + 2] != ',"' or "\\u" in text[16:end] and re.search(r"\\u[dD][89a-fA-F]", text[16:end]):
        return None
    if value is not None and (type(value) is not dict or not all(type(v) is str for v in value.values())):
        return None
    start = end + 1 if ascii_only else len(text[: end + 1].encode("utf-8"))
    return value, start


#: Reads one JSON value at a given position (`raw_decode`): any value not a string is refused.
_METADATA_DECODER = json.JSONDecoder()


def _quotes(arr: np.ndarray, start: int) -> np.ndarray | None:
    """Positions (int32) of the ``"`` bytes of ``arr[start:]``; None when it holds a backslash
    (an escape). Scanned in slices, so no temporary is larger than one slice."""
    found = []
    for lo in range(start, len(arr), _SCAN):
        part = arr[lo : lo + _SCAN]
        if bool(np.any(part == 0x5C)):
            return None
        hits = np.flatnonzero(part == 0x22)
        hits += lo
        found.append(hits)
    return np.concatenate(found, dtype=np.int32, casting="same_kind") if found else np.zeros(0, dtype=np.int32)


def _text_at(data: bytes | memoryview, starts: np.ndarray, text: bytes) -> bool:
    """Whether `text` occurs at every position of `starts` (`data` has no NUL byte, so the
    fixed-width byte strings NumPy compares are exact)."""
    k = len(text)
    if len(starts) and (int(starts.min()) < 0 or int(starts.max()) > len(data) - k):
        return False
    windows = np.ndarray((len(data) - k + 1,), dtype=f"S{k}", buffer=data, strides=(1,))
    return bool(np.all(windows[starts] == text))


def _dtype_codes(arr: np.ndarray, starts: np.ndarray, widths: np.ndarray) -> tuple[list[StDType], np.ndarray] | None:
    """(distinct dtypes, each tensor's index into them); None for a code the library lacks."""
    span = 8 if int(widths.max()) <= 8 else 16
    pad = np.arange(span)
    raw = arr[np.minimum(starts[:, None] + pad, len(arr) - 1)]
    raw[pad[None, :] >= widths[:, None]] = 0
    words = np.ascontiguousarray(raw).view(np.uint64)  # (n, 1 or 2): a code fits 16 bytes
    word = words[:, 0] if span == 8 else words[:, 0] ^ (words[:, 1] * np.uint64(0x9E3779B97F4A7C15))
    ids = np.zeros(len(word), dtype=np.int64)
    firsts: list[int] = []
    todo = np.arange(len(word))
    while len(todo):  # a model has a few dtypes: one pass per dtype
        if len(firsts) == 8:
            return None
        row = int(todo[0])
        same = word[todo] == word[row]
        if span == 16 and not bool(np.all(raw[todo[same]] == raw[row])):
            return None  # two codes mixed to one word: leave it to the full parser
        ids[todo[same]] = len(firsts)
        firsts.append(row)
        todo = todo[~same]
    table: list[StDType] = []
    for row in firsts:
        d = by_code(bytes(raw[row, : int(widths[row])]).decode("ascii", "replace"))
        if d is None:
            return None
        table.append(d)
    return table, ids


def _numbers(arr: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """The comma-separated JSON integers in each region ``[lo, hi)``, which the caller has
    shown to be bracketed by ``[`` and ``]``: all values in order and the count per region.
    None unless every region is empty or ``N(,N)*``, each N without a leading zero and of at
    most 15 digits.

    Every step is a flat pass over uint8 arrays or one per number (broadcasts, axis reductions
    and large int64 temporaries cost more than the parse here): the regions are copied into
    the rows of one zero-padded block by fixed-width records, each number is then read from
    the 16 bytes ending at its last digit, eight digits per uint64 (SWAR)."""
    m = len(lo)
    widths = hi - lo
    if m == 0 or int(widths.min()) < 0:
        return (np.zeros(0, dtype=np.int64), np.zeros(m, dtype=np.int64)) if m == 0 else None
    w = int(widths.max()) + 1  # every row ends in at least one zero byte
    if w > _MAX_REGION:
        return None
    if w > len(arr) - int(lo.max()):  # a record would read past the end: pad a copy
        arr = np.concatenate((arr, np.zeros(w, dtype=np.uint8)))
    flat = np.zeros(16 + m * w, dtype=np.uint8)  # 16 zero bytes ahead of the first number
    block = flat[16:]
    records = np.ndarray((len(arr) - w + 1,), dtype=f"V{w}", buffer=arr, strides=(1,))
    block.view(f"V{w}")[:] = records[lo]
    keep = np.tri(w + 1, w, -1, dtype=np.uint8) * np.uint8(0xFF)  # row k: k bytes of 0xFF
    block &= keep.view(f"V{w}").reshape(-1)[widths].view(np.uint8)
    digit = (flat - np.uint8(0x30)) < 10
    comma = flat == 0x2C
    if int(np.count_nonzero(digit)) + int(np.count_nonzero(comma)) != int(widths.sum()):
        return None  # a byte other than a digit or comma inside a region
    # A comma needs a digit on each side (a row's first byte follows a zero byte).
    if bool(np.any(comma[1:-1] & ~(digit[:-2] & digit[2:]))):
        return None
    edges = np.flatnonzero(np.diff(digit.view(np.int8)))  # `flat` starts and ends with zeros
    starts = edges[0::2] + 1
    ends = edges[1::2]  # each number's last digit
    rows = starts - 16
    rows //= w
    per_region = np.bincount(rows, minlength=m)
    if len(starts) == 0:
        return np.zeros(0, dtype=np.int64), per_region
    width = ends - starts
    width += 1
    if int(width.max()) > _MAX_DIGITS or bool(np.any((flat[starts] == 0x30) & (width > 1))):
        return None
    # The 16 bytes ending at each last digit, as two little-endian words, bytes before the
    # number cleared; then 8 digits per word: pairs, quads, octets. In place: every fresh
    # array of this size costs its pages again.
    ends -= 15
    words = np.ndarray((len(flat) - 15,), dtype="V16", buffer=flat, strides=(1,))[ends].view("<u8").reshape(-1, 2)
    lead = np.subtract(16, width, out=width)  # bytes before the number
    lead <<= 2  # half their bits: a shift by 64 is two shifts by 32
    half = np.minimum(lead, 32, out=rows)
    lead -= half
    mask = ends.view(np.uint64)  # reused
    for col, shift in ((0, half.view(np.uint64)), (1, lead.view(np.uint64))):
        np.left_shift(_ONES, shift, out=mask)
        mask <<= shift
        words[:, col] &= mask
    _swar8(words)
    values = np.multiply(words[:, 0], np.uint64(100_000_000), out=mask)
    values += words[:, 1]
    return values.view(np.int64), per_region


def _swar8(v: np.ndarray) -> None:
    """Each uint64 of `v`, eight ASCII digits (or zero bytes) most significant first in little-
    endian order, replaced by their value, in place."""
    for mask, factor, shift in _SWAR_STEPS:
        v &= mask
        v *= factor
        v >>= shift


def _element_counts(dims: np.ndarray, ndims: np.ndarray, n: int) -> np.ndarray | None:
    """Elements per tensor; None when any count could reach 2**52 (left to the full parser,
    which checks u64 overflow exactly)."""
    if len(dims) == 0:
        return np.ones(n, dtype=np.int64)
    owner = np.repeat(np.arange(n), ndims)
    log = np.bincount(owner, weights=np.log2(np.maximum(dims, 1).astype(np.float64)), minlength=n)
    if float(log.max()) >= 52:
        return None
    starts = np.zeros(n, dtype=np.int64)
    np.cumsum(ndims[:-1], out=starts[1:])
    counts = np.multiply.reduceat(np.append(dims, 1), starts)
    counts[ndims == 0] = 1
    return counts


def _keys(data: memoryview, lo: np.ndarray, hi: np.ndarray, ascii_only: bool) -> list[str]:
    if ascii_only:
        text = str(data, "ascii")
        return [text[a:b] for a, b in zip(lo.tolist(), hi.tolist(), strict=True)]
    return [str(data[a:b], "utf-8") for a, b in zip(lo.tolist(), hi.tolist(), strict=True)]


def _tiles(begins: np.ndarray, ends: np.ndarray, lengths: np.ndarray, need: np.ndarray, available: int) -> bool:
    """The tiling rule of `reader` in bulk: sorted by (begin, end), each tensor starts where the
    last ended (the first at 0), holds exactly its dtype x shape bytes, and the last ends the file."""
    if bool(np.any(lengths < 0)) or not bool(np.all(lengths == need)):
        return False
    if not (int(begins[0]) == 0 and bool(np.all(begins[1:] == ends[:-1]))):
        order = np.lexsort((ends, begins))  # document order is not file order
        begins, ends = begins[order], ends[order]
        if not (int(begins[0]) == 0 and bool(np.all(begins[1:] == ends[:-1]))):
            return False
    return int(ends[-1]) == available


def lazy_entries(source: ByteSource, columns: Columns, data_start: int) -> TableEntries:
    def rows() -> Rows:  # Python lists once, on first use: cheaper per entry than NumPy scalars
        dtypes, shapes, begins, lengths = columns.rows()
        # One TensorInfo per (dtype, shape), shared between tensors: TensorInfo is frozen.
        shared: dict[tuple[str, tuple[int, ...]], TensorInfo] = {}
        infos: list[TensorInfo | None] = []
        for d, shape in zip(dtypes, shapes, strict=True):
            info = shared.get((d.name, shape))
            if info is None:
                info = shared[(d.name, shape)] = TensorInfo(d.name, shape)
            infos.append(info)
        return [b + data_start for b in begins], lengths, infos

    return TableEntries(columns.keys, rows, source, "safetensors", positions=columns.positions)
