"""Splitting one tensor along an axis into N pieces, and joining N pieces back, without copies
of the whole tensor.

A row-major tensor split along axis k is, in bytes, `outer` rows (the product of the dims
before k) of N pieces each `piece_row` bytes long. A split along axis 0 (or any axis with only
1s before it) is one contiguous byte range per piece: the piece is a plain span of the source,
copied by the kernel or the threaded copier like any entry. Along another axis a piece is a
strided gather; `PieceSource` presents it as a byte source that reads through a bounded buffer
(whole rows of at most `SCRATCH` bytes at a time, or each segment directly when segments are
large), and `JoinedSource` does the reverse for a merge. Writers read these sources in bounded
chunks, so memory stays at a few buffers whatever the tensor's size.

Quantised GGUF tensors are split in whole blocks: along the innermost axis the piece width must
be a multiple of the block size, or the split is refused.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from paramio.core.dtypes import dtype_by_name
from paramio.core.entry import EntryKind, ParameterEntry
from paramio.core.errors import InvalidArgumentError
from paramio.core.source import ByteSource
from paramio.core.tensor import TensorInfo, encode_tensor_metadata

__all__ = ["SCRATCH", "Geometry", "JoinedSource", "PieceSource", "geometry", "join_pieces", "split_entry"]

#: Largest buffer of whole rows read at once for a strided gather or scatter.
SCRATCH = 4 << 20
#: Segments at least this long are read one by one straight into the output (no gather).
DIRECT = 64 << 10


@dataclasses.dataclass(frozen=True, slots=True)
class Geometry:
    """A tensor's bytes as `outer` rows of `units` units of `unit_bytes` along the split axis."""

    key: str
    info: TensorInfo
    axis: int
    count: int
    outer: int
    units: int
    unit_bytes: int

    @property
    def full_row(self) -> int:
        return self.units * self.unit_bytes

    @property
    def piece_row(self) -> int:
        return self.units // self.count * self.unit_bytes

    @property
    def piece_length(self) -> int:
        return self.outer * self.piece_row

    @property
    def piece_info(self) -> TensorInfo:
        shape = list(self.info.shape)
        shape[self.axis] //= self.count
        return self.info.replace(shape=tuple(shape))


def _quantised(dtype: str) -> tuple[int, int] | None:
    """(block size, bytes per block) of a format's quantised dtype (``gguf.q4_0``), else None."""
    from paramio.formats.contract import format_for_dtype

    fmt = format_for_dtype(dtype)
    return fmt.blocks(dtype) if fmt is not None else None


def geometry(key: str, info: TensorInfo | None, length: int, axis: int, count: int) -> Geometry:
    """How tensor `key` of `info` splits along `axis` into `count` pieces.

    Raises `InvalidArgumentError` naming the key when it cannot: no dtype or shape, an axis out
    of range, a dimension that is not a multiple of `count`, a cut through quantisation blocks,
    a sub-byte element type along the innermost axis, or bytes that disagree with the shape.
    """
    if count < 1:
        raise InvalidArgumentError(f"the piece count must be positive, not {count}", key=key)
    if info is None:
        raise InvalidArgumentError("has no dtype and shape, so it cannot be split; replicate it instead", key=key)
    shape = [int(d) for d in info.shape]
    if not shape:
        raise InvalidArgumentError("is a scalar, so it cannot be split; replicate it instead", key=key)
    if not -len(shape) <= axis < len(shape):
        raise InvalidArgumentError(f"has {len(shape)} dimensions; axis {axis} is out of range", key=key)
    axis %= len(shape)
    if shape[axis] % count:
        raise InvalidArgumentError(
            f"dimension {axis} of {info.dtype}{shape} is {shape[axis]}, not a multiple of {count}", key=key
        )
    q = _quantised(info.dtype)
    units = list(shape)
    if q is not None:
        block, block_bytes = q
        if shape[-1] % block:
            raise InvalidArgumentError(f"innermost dimension {shape[-1]} is not a multiple of {block}", key=key)
        if axis == len(shape) - 1 and (shape[-1] // count) % block:
            raise InvalidArgumentError(
                f"splitting {info.dtype}{shape} along axis {axis} into {count} pieces would cut its "
                f"{block}-element blocks ({shape[-1]}/{count} = {shape[-1] // count} is not a multiple of {block})",
                key=key,
            )
        units[-1] //= block
        elem = block_bytes
    else:
        try:
            dt = dtype_by_name(info.dtype)
        except InvalidArgumentError as exc:
            raise InvalidArgumentError(f"has an unknown element type {info.dtype!r}", key=key) from exc
        if dt.bits % 8:
            inner = 1
            for d in shape[axis + 1 :]:
                inner *= d
            if (inner * (shape[axis] // count) * dt.bits) % 8 or (inner * dt.bits) % 8:
                raise InvalidArgumentError(
                    f"{info.dtype} packs {dt.bits}-bit elements; splitting {shape} along axis {axis} "
                    f"into {count} would cut bytes",
                    key=key,
                )
            # Treat `inner` packed elements as one unit of whole bytes.
            elem = inner * dt.bits // 8
            units = shape[: axis + 1] + [1] * (len(shape) - axis - 1)
        else:
            elem = dt.itemsize
    outer = 1
    for d in units[:axis]:
        outer *= d
    unit_bytes = elem
    for d in units[axis + 1 :]:
        unit_bytes *= d
    g = Geometry(key, info, axis, count, outer, units[axis], unit_bytes)
    if g.outer * g.full_row != length:
        raise InvalidArgumentError(
            f"{info.dtype}{shape} takes {g.outer * g.full_row} bytes but the entry has {length}", key=key
        )
    return g


def _typed(entry: ParameterEntry, key: str, info: TensorInfo) -> dict[str, object]:
    """Fields a piece (or a joined tensor) of `entry` gets: its key, type and ``TENSORv0``."""
    return {"key": key, "declared_tensor": info, "metadata": encode_tensor_metadata(info)}


def split_entry(entry: ParameterEntry, g: Geometry, index: int, key: str | None = None) -> ParameterEntry:
    """Piece `index` of `entry` as an entry (no bytes copied): a span of the same source when
    the piece is contiguous, a splat when the entry is one, else a strided `PieceSource`."""
    fields = _typed(entry, key if key is not None else entry.key, g.piece_info)
    if entry.is_splat and (not entry.pattern or g.piece_row % len(entry.pattern) == 0):
        return entry.replace(length=g.piece_length, **fields)
    if g.outer == 1 and entry.source is not None:
        return entry.replace(offset=entry.offset + index * g.piece_row, length=g.piece_length, **fields)
    name = key if key is not None else entry.key
    metadata = encode_tensor_metadata(g.piece_info)
    src = PieceSource(entry, g, index)
    return ParameterEntry(
        key=name,
        kind=EntryKind.DATA,
        length=g.piece_length,
        metadata=metadata,
        source=src,
        declared_tensor=g.piece_info,
        origin=entry.origin,
    )


def join_pieces(pieces: Sequence[ParameterEntry], g: Geometry, key: str) -> ParameterEntry:
    """The tensor `pieces` were split from (geometry `g` of the whole), as one entry."""
    if len(pieces) != g.count:
        raise InvalidArgumentError(f"{len(pieces)} pieces given for a split into {g.count}", key=key)
    for i, p in enumerate(pieces):
        if p.length != g.piece_length:
            raise InvalidArgumentError(f"piece {i} ({p.key}) has {p.length} bytes, expected {g.piece_length}", key=key)
    first = pieces[0]
    fields = _typed(first, key, g.info)
    if all(p.is_splat and p.pattern == first.pattern for p in pieces) and (
        not first.pattern or g.piece_row % len(first.pattern) == 0
    ):
        return first.replace(length=g.outer * g.full_row, **fields)
    if g.outer == 1 and all(p.source is not None for p in pieces):
        s0 = pieces[0].source
        if all(p.source is s0 and p.offset == pieces[0].offset + i * g.piece_row for i, p in enumerate(pieces)):
            return first.replace(length=g.full_row, **fields)  # already contiguous in one source
    src = JoinedSource(pieces, g)
    metadata = encode_tensor_metadata(g.info)
    return ParameterEntry(
        key=key,
        kind=EntryKind.DATA,
        length=src.size,
        metadata=metadata,
        source=src,
        declared_tensor=g.info,
        origin=first.origin,
    )


class _Virtual(ByteSource):
    """A read-only source whose bytes are computed by `readinto`; `view` returns a copy."""

    name: str
    _size: int

    @property
    def size(self) -> int:
        return self._size

    def view(self, offset: int, length: int) -> memoryview:
        self.check_span(offset, length)
        buf = bytearray(length)
        self.readinto(offset, buf)
        return memoryview(buf)

    def read(self, offset: int, length: int) -> bytes:
        return bytes(self.view(offset, length))


class PieceSource(_Virtual):
    """Piece `index` of `entry` split as `g`: row o of the piece is bytes
    ``[o * full_row + index * piece_row, + piece_row)`` of the entry."""

    def __init__(self, entry: ParameterEntry, g: Geometry, index: int) -> None:
        self.entry, self.g, self.index = entry, g, index
        self._size = g.piece_length
        self.name = f"{entry.key} piece {index} of {g.count} along axis {g.axis}"

    def readinto(self, offset: int, out: memoryview | bytearray) -> int:
        dst = memoryview(out).cast("B")
        self.check_span(offset, len(dst))
        g, prow, frow = self.g, self.g.piece_row, self.g.full_row
        pos, end = offset, offset + len(dst)
        while pos < end:
            o, r = divmod(pos, prow)
            at = pos - offset
            if r == 0 and end - pos >= prow and prow < DIRECT and frow <= SCRATCH:
                rows = min((end - pos) // prow, max(1, SCRATCH // frow), g.outer - o)
                scratch = np.empty(rows * frow, np.uint8)
                self.entry.readinto(scratch, o * frow)
                target = np.frombuffer(dst[at : at + rows * prow], np.uint8).reshape(rows, prow)
                target[:] = scratch.reshape(rows, g.count, prow)[:, self.index, :]
                pos += rows * prow
                continue
            take = min(prow - r, end - pos)
            self.entry.readinto(dst[at : at + take], o * frow + self.index * prow + r)
            pos += take
        return len(dst)


class JoinedSource(_Virtual):
    """The whole tensor of `pieces` split as `g`: row o is row o of every piece in turn."""

    def __init__(self, pieces: Sequence[ParameterEntry], g: Geometry) -> None:
        self.pieces, self.g = list(pieces), g
        self._size = g.outer * g.full_row
        self.name = f"{g.key} joined from {g.count} pieces along axis {g.axis}"

    def readinto(self, offset: int, out: memoryview | bytearray) -> int:
        dst = memoryview(out).cast("B")
        self.check_span(offset, len(dst))
        g, prow, frow = self.g, self.g.piece_row, self.g.full_row
        pos, end = offset, offset + len(dst)
        while pos < end:
            o, rem = divmod(pos, frow)
            p, r = divmod(rem, prow)
            at = pos - offset
            if rem == 0 and end - pos >= frow and prow < DIRECT and frow <= SCRATCH:
                rows = min((end - pos) // frow, max(1, SCRATCH // frow), g.outer - o)
                target = np.frombuffer(dst[at : at + rows * frow], np.uint8).reshape(rows, g.count, prow)
                scratch = np.empty(rows * prow, np.uint8)
                for i, piece in enumerate(self.pieces):
                    piece.readinto(scratch, o * prow)
                    target[:, i, :] = scratch.reshape(rows, prow)
                pos += rows * frow
                continue
            take = min(prow - r, end - pos)
            self.pieces[p].readinto(dst[at : at + take], o * prow + r)
            pos += take
        return len(dst)
