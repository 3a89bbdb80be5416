"""Loading part of each tensor: one rank's piece (``rank=, world_size=, split=``) or each device's
slice of a JAX sharding (``sharding=``), reading only the bytes those parts hold.

A slice of a row-major tensor is, in bytes, a run of equal-length spans: one span when only the
leading axis is cut (or every axis before the cut has size 1), one span per row of the axes
before the innermost cut axis otherwise. `slice_entry` turns a slice into an ordinary entry whose
source (`SpansSource`) is the concatenation of those spans, so the loader plans, budgets and
parallelises it like any tensor, and each read becomes the planner's requests
(`paramio.core.planner.plan_reads` with the source's own gap and request limits: a remote source
merges neighbouring rows into one ranged GET, a local file reads each span with one ``pread``).

The rank form reuses `paramio shard`'s rules (`paramio.sharding.plan.split_axis` and
`paramio.sharding.tensor.geometry`): glob patterns to axes, the first matching pattern wins,
other tensors are replicated, a dimension that is not a multiple of the world size is refused,
and so is a cut through a quantised GGUF block. A JAX sharding's slices
(``Sharding.addressable_devices_indices_map``) are read once per distinct slice (devices that
hold the same slice share the read), placed on their devices, and assembled with
``jax.make_array_from_single_device_arrays``.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import TypeAlias

import numpy as np

from paramio.core.dtypes import dtype_by_name
from paramio.core.entry import EntryKind, ParameterEntry, fill_pattern
from paramio.core.errors import InvalidArgumentError, SourceError
from paramio.core.planner import Span, plan_reads
from paramio.core.source import ByteSource
from paramio.core.tensor import TensorInfo, encode_tensor_metadata
from paramio.loading.targets import Slot, Target, aligned_bytes, host_layout
from paramio.sharding.plan import split_axis, split_rules
from paramio.sharding.tensor import _quantised, geometry
from paramio.sources.protocols import SupportsFileDescriptor

__all__ = [
    "ShardingSpec",
    "SplitSpec",
    "SpansSource",
    "box_spans",
    "prepare",
    "rank_piece",
    "slice_entry",
]

#: ``split=``: glob pattern -> axis, as ``paramio shard --split=PATTERN=AXIS`` takes them.
SplitSpec: TypeAlias = Mapping[str, int] | Iterable[tuple[str, int] | str]
#: ``sharding=``: one ``jax.sharding.Sharding`` for every tensor, a mapping of keys or glob
#: patterns to shardings (None: not sharded), or a callable ``(key, shape) -> Sharding | None``.
ShardingSpec: TypeAlias = object


class SpansSource(ByteSource):
    """The bytes of `entry` at ``starts[i] .. starts[i] + run`` (offsets within the entry; `run`
    one length for every span, or one per span), one after another: the bytes of one slice of
    a tensor (or of several, back to back), read without the rest."""

    def __init__(self, entry: ParameterEntry, starts: np.ndarray, run: int | np.ndarray, name: str) -> None:
        starts = np.ascontiguousarray(starts, dtype=np.int64)
        lens = np.broadcast_to(np.asarray(run, dtype=np.int64), starts.shape)
        keep = lens > 0
        self.entry = entry
        self.starts = starts[keep]
        self.lens = np.ascontiguousarray(lens[keep])
        self.ends = np.cumsum(self.lens)
        self.name = name
        inner = entry.source
        if inner is not None:  # merge and cut requests as the real source would
            self.max_gap = inner.max_gap
            self.max_request = inner.max_request
        self._size = int(self.ends[-1]) if len(self.ends) else 0

    @property
    def size(self) -> int:
        return self._size

    def view(self, offset: int, length: int) -> memoryview:
        buf = bytearray(length)
        self.readinto(offset, memoryview(buf))
        return memoryview(buf).toreadonly()

    def _spans(self, offset: int, n: int) -> tuple[list[int], list[int], list[int]]:
        """The entry offsets, lengths and output positions of the span parts holding bytes
        ``[offset, offset + n)`` of this source (n > 0)."""
        first = int(np.searchsorted(self.ends, offset, side="right"))
        last = int(np.searchsorted(self.ends, offset + n - 1, side="right"))
        offs = self.starts[first : last + 1].copy()
        lens = self.lens[first : last + 1].copy()
        skip = offset - (int(self.ends[first]) - int(self.lens[first]))
        offs[0] += skip
        lens[0] -= skip
        lens[-1] -= int(self.ends[last]) - (offset + n)
        ats = np.zeros(len(offs), np.int64)
        np.cumsum(lens[:-1], out=ats[1:])
        return offs.tolist(), lens.tolist(), ats.tolist()

    def readinto(self, offset: int, out: memoryview | bytearray) -> int:
        dst = memoryview(out).cast("B")
        n = len(dst)
        self.check_span(offset, n)
        if n == 0:
            return 0
        offs, lens, ats = self._spans(offset, n)
        entry = self.entry
        src = entry.source
        if src is None:  # a splat: each span is the pattern at its own phase
            for o, k, at in zip(offs, lens, ats, strict=True):
                fill_pattern(dst[at : at + k], entry.pattern, o)
            return n
        base = entry.offset
        if self.max_gap == 0 and isinstance(src, SupportsFileDescriptor):
            # A local file: one pread per span, straight into place (no gap is worth reading).
            fd = src.descriptor()
            for o, k, at in zip(offs, lens, ats, strict=True):
                _pread_all(fd, dst[at : at + k], base + o, src.name)
            return n
        plan = plan_reads(
            [Span(base + o, k) for o, k in zip(offs, lens, strict=True)],
            max_gap=self.max_gap,
            max_request=self.max_request,
        )
        for req in plan:
            if len(req.pieces) == 1 and req.pieces[0].length == req.length:
                p = req.pieces[0]
                at = ats[p.span] + p.span_offset
                src.readinto(req.start, dst[at : at + p.length])
                continue
            body = memoryview(bytearray(req.length))
            src.readinto(req.start, body)
            for p in req.pieces:
                at = ats[p.span] + p.span_offset
                dst[at : at + p.length] = body[p.request_offset : p.request_offset + p.length]
        return n


def _pread_all(fd: int, out: memoryview, offset: int, name: str) -> None:
    """Fill `out` from file offset `offset`. Raises `SourceError` for a file that shrank or a
    failed read."""
    done = 0
    try:
        while done < len(out):
            got = os.preadv(fd, [out[done:]], offset + done)
            if got <= 0:
                raise SourceError("file shrank while reading", path=name, offset=offset + done)
            done += got
    except OSError as exc:
        raise SourceError(f"read failed: {exc.strerror or exc}", path=name, offset=offset) from exc


def _piece(
    entry: ParameterEntry, key: str, info: TensorInfo, starts: np.ndarray, run: int, what: str
) -> ParameterEntry:
    """The entry for bytes ``starts[i] .. + run`` of `entry`, typed as `info`."""
    fields: dict[str, object] = {"key": key, "declared_tensor": info, "metadata": encode_tensor_metadata(info)}
    length = len(starts) * run
    if entry.source is not None and len(starts) <= 1:
        start = int(starts[0]) if len(starts) else 0
        return entry.replace(offset=entry.offset + start, length=length, **fields)  # a plain span
    src = SpansSource(entry, starts, run, f"{entry.source.name if entry.source else '<splat>'} ({what})")
    return ParameterEntry(
        kind=EntryKind.DATA,
        length=length,
        source=src,
        origin=entry.origin,
        **fields,  # type: ignore[arg-type]
    )


def rank_piece(key: str, entry: ParameterEntry, axis: int, rank: int, world_size: int) -> ParameterEntry:
    """Piece `rank` of `world_size` of `entry` split along `axis`, as `paramio shard` cuts it.

    Raises `InvalidArgumentError` naming the key where `paramio shard` refuses the split (no
    type, axis out of range, a dimension not a multiple of `world_size`, a cut through a
    quantisation block or a byte)."""
    g = geometry(key, entry.tensor, entry.length, axis, world_size)
    starts = np.arange(g.outer, dtype=np.int64) * g.full_row + rank * g.piece_row
    if g.outer == 1 or g.piece_row == g.full_row:
        starts, run = starts[:1], g.piece_length  # one contiguous range
    else:
        run = g.piece_row
    return _piece(entry, key, g.piece_info, starts, run, f"rank {rank} of {world_size} along axis {g.axis}")


def box_spans(key: str, info: TensorInfo | None, length: int, box: Sequence[tuple[int, int]]) -> tuple[np.ndarray, int]:
    """The entry offsets of the spans holding ``tensor[start0:stop0, start1:stop1, ...]`` (one
    ``(start, stop)`` per axis), in row-major order, and their common length.

    Raises `InvalidArgumentError` naming the key for a tensor without a type, a box that does
    not fit the shape, a cut through a quantisation block or a byte of a packed type, and
    bytes that disagree with the shape."""
    if info is None:
        raise InvalidArgumentError("has no dtype and shape, so it cannot be sliced", key=key)
    shape = [int(d) for d in info.shape]
    if len(box) != len(shape):
        raise InvalidArgumentError(f"a slice of {len(box)} axes does not fit shape {shape}", key=key)
    for d, (a, b) in enumerate(box):
        if not 0 <= a <= b <= shape[d]:
            raise InvalidArgumentError(f"slice {a}:{b} of axis {d} is outside shape {shape}", key=key)
    units, lo, hi = list(shape), [a for a, _ in box], [b for _, b in box]
    q = _quantised(info.dtype)
    if q is not None:  # the innermost axis in whole blocks
        block, block_bytes = q
        if not shape or shape[-1] % block or lo[-1] % block or hi[-1] % block:
            raise InvalidArgumentError(
                f"slice {lo[-1] if shape else 0}:{hi[-1] if shape else 0} of {info.dtype}{shape} would cut its "
                f"{block}-element blocks; cut the innermost axis at multiples of {block}, or another axis",
                key=key,
            )
        units[-1], lo[-1], hi[-1] = shape[-1] // block, lo[-1] // block, hi[-1] // block
        bits = 8 * block_bytes
    else:
        try:
            bits = dtype_by_name(info.dtype).bits
        except InvalidArgumentError as exc:
            raise InvalidArgumentError(f"has an unknown element type {info.dtype!r}", key=key) from exc
    total = int(np.prod(units, dtype=object)) * bits if units else bits
    if total != 8 * length:
        raise InvalidArgumentError(f"{info.dtype}{shape} takes {total / 8:g} bytes but the entry has {length}", key=key)
    if any(a == b for a, b in zip(lo, hi, strict=True)):
        return np.zeros(0, np.int64), 0
    # The innermost axis the box cuts; the spans run over it and every axis after it.
    k = max((d for d in range(len(units)) if (lo[d], hi[d]) != (0, units[d])), default=0)
    strides = [1] * len(units)
    for d in range(len(units) - 2, -1, -1):
        strides[d] = strides[d + 1] * units[d + 1]
    run_bits = (hi[k] - lo[k]) * (strides[k] if units else 1) * bits if units else bits
    offsets = np.zeros(1, np.int64) + (lo[k] * strides[k] if units else 0)
    for d in range(k - 1, -1, -1):  # row-major: the outer axes vary slowest
        offsets = (np.arange(lo[d], hi[d], dtype=np.int64)[:, None] * strides[d] + offsets[None, :]).reshape(-1)
    starts_bits = offsets * bits
    if run_bits % 8 or np.any(starts_bits % 8):
        raise InvalidArgumentError(
            f"{info.dtype} packs {bits}-bit elements; the slice {list(box)} of {shape} would cut bytes", key=key
        )
    return starts_bits // 8, run_bits // 8


def slice_entry(key: str, entry: ParameterEntry, box: Sequence[tuple[int, int]]) -> ParameterEntry:
    """``entry[box]`` (one ``(start, stop)`` per axis) as an entry that reads only its bytes.
    Raises what `box_spans` raises."""
    info = entry.tensor
    starts, run = box_spans(key, info, entry.length, box)
    assert info is not None
    piece_info = info.replace(shape=tuple(b - a for a, b in box))
    if len(starts) > 1 and np.all(np.diff(starts) == run):  # adjacent rows: one range
        starts, run = starts[:1], run * len(starts)
    return _piece(entry, key, piece_info, starts, run, f"slice {box}")


# -- the rank form ------------------------------------------------------------------------------


def _rank_items(
    items: Sequence[tuple[str, ParameterEntry]], rank: int, world_size: int, split: SplitSpec
) -> list[tuple[str, ParameterEntry]]:
    rules = split_rules(split)
    out = []
    for key, entry in items:
        rule = split_axis(key, rules)
        out.append((key, entry if rule is None else rank_piece(key, entry, rule[1], rank, world_size)))
    return out


def _check_rank(rank: int | None, world_size: int | None, split: SplitSpec | None) -> tuple[int, int, SplitSpec]:
    if rank is None or world_size is None or split is None:
        raise InvalidArgumentError("a rank's slices need all of rank=, world_size= and split= ({pattern: axis})")
    for name, v in (("rank", rank), ("world_size", world_size)):
        if isinstance(v, bool) or not isinstance(v, int):
            raise InvalidArgumentError(f"{name} must be an integer, not {v!r}")
    if world_size < 1 or not 0 <= rank < world_size:
        raise InvalidArgumentError(f"rank {rank} is not one of world_size {world_size}'s ranks 0..{world_size - 1}")
    return rank, world_size, split


# -- the JAX form -------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class _Sharded:
    """One key's sharded layout: the global shape and sharding, and each distinct slice (its
    NumPy dtype and shape, where its bytes start in the combined buffer, its devices)."""

    shape: tuple[int, ...]
    dtype: np.dtype[np.generic]
    sharding: object
    parts: tuple[tuple[tuple[int, ...], int, int, tuple[object, ...]], ...]  # (shape, start, nbytes, devices)


def _sharding_for(spec: ShardingSpec, key: str, shape: tuple[int, ...]) -> object | None:
    if isinstance(spec, Mapping):
        if key in spec:
            found: object | None = spec[key]
            return found
        for pattern, s in spec.items():
            if fnmatch.fnmatchcase(key, pattern):
                found = s
                return found
        return None
    if callable(spec) and not hasattr(spec, "addressable_devices_indices_map"):
        made: object | None = spec(key, shape)
        return made
    return spec


def _box(index: tuple[slice, ...], shape: tuple[int, ...]) -> tuple[tuple[int, int], ...]:
    out = []
    for s, n in zip(index, shape, strict=True):
        a, b, step = s.indices(n)
        if step != 1:
            raise InvalidArgumentError(f"a sharding slice with step {step} is not supported")
        out.append((a, max(a, b)))
    return tuple(out)


def _jax_items(
    items: Sequence[tuple[str, ParameterEntry]], spec: ShardingSpec
) -> tuple[list[tuple[str, ParameterEntry]], dict[str, _Sharded]]:
    out: list[tuple[str, ParameterEntry]] = []
    plans: dict[str, _Sharded] = {}
    for key, entry in items:
        info = entry.tensor
        sharding = _sharding_for(spec, key, info.shape if info is not None else (entry.length,))
        if sharding is None:
            out.append((key, entry))
            continue
        if not hasattr(sharding, "addressable_devices_indices_map"):
            raise InvalidArgumentError(
                f"sharding for {key!r} is a {type(sharding).__name__}, not a jax.sharding.Sharding"
            )
        dtype, shape = host_layout(entry)
        if info is None or tuple(shape) != tuple(info.shape):
            raise InvalidArgumentError(
                f"is {info.dtype if info else 'untyped'} bytes, which JAX cannot hold as a typed array; "
                "load it without a sharding",
                key=key,
            )
        by_box: dict[tuple[tuple[int, int], ...], list[object]] = {}
        try:
            indices = sharding.addressable_devices_indices_map(shape)
        except ValueError as exc:  # JAX's IndivisibleError: as `paramio shard`, no uneven slices
            raise InvalidArgumentError(f"cannot be sharded as asked: {exc}", key=key) from exc
        for device, index in indices.items():
            by_box.setdefault(_box(index, shape), []).append(device)
        pieces = [slice_entry(key, entry, box) for box in by_box]
        parts, start = [], 0
        for box, piece in zip(by_box, pieces, strict=True):
            parts.append((tuple(b - a for a, b in box), start, piece.length, tuple(by_box[box])))
            start += piece.length
        plans[key] = _Sharded(tuple(shape), dtype, sharding, tuple(parts))
        out.append((key, _joined(key, entry, pieces, start)))
    return out, plans


def _joined(key: str, entry: ParameterEntry, pieces: Sequence[ParameterEntry], length: int) -> ParameterEntry:
    """One untyped entry holding `pieces` (slices of `entry`) back to back: what the loader
    reads for a sharded key, every distinct slice in one buffer."""
    starts: list[np.ndarray] = []
    runs: list[np.ndarray] = []
    for p in pieces:
        if isinstance(p.source, SpansSource):
            starts.append(p.source.starts)
            runs.append(p.source.lens)
        else:  # one contiguous range of the entry's source
            starts.append(np.array([p.offset - entry.offset], np.int64))
            runs.append(np.array([p.length], np.int64))
    src = SpansSource(
        entry,
        np.concatenate(starts) if starts else np.zeros(0, np.int64),
        np.concatenate(runs) if runs else np.zeros(0, np.int64),
        f"{entry.source.name if entry.source else '<splat>'} (shards of {key!r})",
    )
    assert src.size == length
    return ParameterEntry(key=key, kind=EntryKind.DATA, length=length, source=src, origin=entry.origin)


class ShardedJaxTarget(Target):
    """`inner` (the JAX target) for unsharded keys; for sharded ones, one host buffer holding
    each distinct slice, put on its devices and assembled into one ``jax.Array``."""

    name = "jax"

    def __init__(self, inner: Target, plans: Mapping[str, _Sharded]) -> None:
        from paramio.arrays.frameworks import require

        self._jax = require("jax")
        self.inner = inner
        self.device = inner.device
        self.plans = dict(plans)

    def allocate(self, key: str, entry: ParameterEntry) -> Slot:
        plan = self.plans.get(key)
        if plan is None:
            return self.inner.allocate(key, entry)
        flat = aligned_bytes(entry.length)
        return Slot(key, plan.dtype, plan.shape, entry.length, memoryview(flat), flat, plan)  # type: ignore[arg-type]

    def upload(self, slot: Slot, offset: int, data: memoryview, owner: object) -> None:
        self.inner.upload(slot, offset, data, owner)

    def make_staging(self, nbytes: int) -> tuple[object, memoryview]:
        return self.inner.make_staging(nbytes)

    def finish(self, slot: Slot) -> object:
        plan = slot.extra
        if not isinstance(plan, _Sharded):
            return self.inner.finish(slot)
        jax = self._jax
        flat: np.ndarray = slot.handle  # type: ignore[assignment]
        arrays: list[object] = []
        for shape, start, nbytes, devices in plan.parts:
            host = flat[start : start + nbytes].view(plan.dtype).reshape(shape)
            arrays.extend(jax.device_put(host, d) for d in devices)
        return jax.make_array_from_single_device_arrays(plan.shape, plan.sharding, arrays)

    def close(self) -> None:
        self.inner.close()


# -- the loader's entry point -------------------------------------------------------------------


def prepare(
    items: Sequence[tuple[str, ParameterEntry]],
    target: Target,
    *,
    sharding: ShardingSpec | None = None,
    rank: int | None = None,
    world_size: int | None = None,
    split: SplitSpec | None = None,
) -> tuple[list[tuple[str, ParameterEntry]], Target]:
    """The items and target a load reads when it asks for slices: each split tensor replaced by
    the entry of its slice(s), and for a JAX sharding a target that assembles ``jax.Array``\\s.

    Raises `InvalidArgumentError` for a rank form missing one of its arguments, a rank outside
    the world, `sharding` with a target other than ``"jax"`` or with the rank form, and what
    `rank_piece` and `box_spans` raise for a tensor that cannot be cut as asked."""
    if sharding is not None:
        if rank is not None or world_size is not None or split is not None:
            raise InvalidArgumentError("give sharding= or rank=/world_size=/split=, not both")
        if target.name != "jax":
            raise InvalidArgumentError(f"sharding= places jax.Arrays; it needs into='jax', not {target.name!r}")
        if target.device is not None:
            raise InvalidArgumentError("sharding= names the devices; leave device= out")
        new, plans = _jax_items(items, sharding)
        return new, ShardedJaxTarget(target, plans) if plans else target
    if rank is None and world_size is None and split is None:
        return list(items), target
    r, w, s = _check_rank(rank, world_size, split)
    return _rank_items(items, r, w, s), target
