"""Writing one safetensors file: plan the header, then stream every entry's bytes into place.

The header is compact JSON exactly as the reference library writes it (``__metadata__`` first,
then tensors, ``{"dtype","shape","data_offsets"}``, padded with spaces to a multiple of 8), so
a file read from the library and written back is byte-identical. Tensors keep the given order.

Alignment. The library refuses holes between tensors, so padding can only go in the header:
``alignment=N`` pads the header with spaces until the data buffer starts at a multiple of N,
and lays the data (not the header's key order) out by decreasing size alignment, so that every
tensor whose byte size is a multiple of N starts at a multiple of N in the file, and every other
tensor at a multiple of the largest power of two dividing its size. Without `alignment`, data
follows the given order, as the library's own files do for entries read from them.
"""

from __future__ import annotations

import dataclasses
import json
import os
import struct
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from paramio.core.entry import ParameterEntry
from paramio.core.errors import DuplicateKeyError, InvalidArgumentError
from paramio.core.tensor import TensorInfo
from paramio.formats.conversion import check_file_size
from paramio.formats.output import AtomicOutput, copy_entry
from paramio.formats.safetensors.layout import (
    ATTRIBUTE_INDEX_METADATA,
    ATTRIBUTE_METADATA,
    DEFAULT_HEADER_ALIGNMENT,
    HEADER_LENGTH_SIZE,
    MAX_HEADER_SIZE,
    StDType,
    by_code,
    by_name,
    is_index_path,
)

if TYPE_CHECKING:
    from paramio.formats.conversion import Loss, Prepared

__all__ = [
    "FilePlan",
    "metadata_from_attributes",
    "plan_file",
    "plan_losses",
    "prepare",
    "write_file",
    "write_planned",
]

_LEN = struct.Struct("<Q")


@dataclasses.dataclass(frozen=True, slots=True)
class FilePlan:
    """Where every byte goes: the framed header (length + JSON + padding) and each entry's
    absolute data offset, in the order the entries were given."""

    header: bytes
    data_offsets: list[int]
    total_size: int

    @property
    def data_start(self) -> int:
        return len(self.header)


def _check_alignment(alignment: int | None) -> int:
    if alignment is None:
        return DEFAULT_HEADER_ALIGNMENT
    if not isinstance(alignment, int) or alignment < 1 or alignment & (alignment - 1):
        raise InvalidArgumentError(f"alignment {alignment!r} is not a positive power of two")
    return max(alignment, DEFAULT_HEADER_ALIGNMENT)


def _describe(entry: ParameterEntry) -> tuple[StDType, tuple[int, ...]]:
    """The safetensors dtype and shape of `entry` (untyped entries become U8 [length])."""
    info = entry.tensor
    if info is None:
        u8 = by_code("U8")
        assert u8 is not None
        return u8, (entry.length,)
    dt = by_name(info.dtype)
    if dt is None:
        raise InvalidArgumentError(
            f"dtype {info.dtype!r} has no safetensors code; convert it or drop the entry", key=entry.key
        )
    bits = info.count * dt.bits
    if bits % 8 or bits // 8 != entry.length:
        raise InvalidArgumentError(
            f"{dt.code} {list(info.shape)} needs {bits / 8:g} bytes but the entry holds {entry.length}",
            key=entry.key,
        )
    return dt, tuple(int(s) for s in info.shape)


def _lowbit(n: int, cap: int) -> int:
    return cap if n == 0 else min(n & -n, cap)


def plan_file(
    entries: Sequence[ParameterEntry],
    *,
    metadata: dict[str, str] | None = None,
    alignment: int | None = None,
) -> FilePlan:
    """Lay out `entries`. Raises `InvalidArgumentError` for a dtype safetensors cannot name, a
    shape that does not match the entry's length, a key that is not valid UTF-8 or is
    ``__metadata__``, and `DuplicateKeyError` for a repeated key."""
    align = _check_alignment(alignment)
    described = []
    seen: set[str] = set()
    for e in entries:
        if e.key in seen:
            raise DuplicateKeyError("key appears twice; a safetensors file holds each key once", key=e.key)
        if e.key == "__metadata__":
            raise InvalidArgumentError("'__metadata__' is reserved in safetensors headers", key=e.key)
        seen.add(e.key)
        described.append(_describe(e))
    order = list(range(len(entries)))
    if alignment is not None:
        order.sort(key=lambda i: -_lowbit(entries[i].length, align))
    rel: list[int] = [0] * len(entries)
    pos = 0
    for i in order:
        rel[i] = pos
        pos += entries[i].length
    body: dict[str, object] = {}
    if metadata is not None:
        body["__metadata__"] = metadata
    for e, (dt, shape), begin in zip(entries, described, rel, strict=True):
        body[e.key] = {"dtype": dt.code, "shape": list(shape), "data_offsets": [begin, begin + e.length]}
    try:
        text = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidArgumentError(
            f"a key or metadata string is not valid UTF-8: {exc.object[exc.start : exc.end]!r}"
        ) from exc
    start = HEADER_LENGTH_SIZE + len(text)
    start += -start % align
    n = start - HEADER_LENGTH_SIZE
    if n > MAX_HEADER_SIZE:
        raise InvalidArgumentError(f"the header would take {n} bytes; safetensors allows {MAX_HEADER_SIZE}")
    check_file_size(start + pos, "safetensors")
    header = _LEN.pack(n) + text + b" " * (n - len(text))
    return FilePlan(header, [start + r for r in rel], start + pos)


def metadata_from_attributes(attributes: dict[str, object] | None) -> dict[str, str] | None:
    """``__metadata__`` from attributes (key `ATTRIBUTE_METADATA`); other attributes are not
    representable in safetensors and are left out. Raises `InvalidArgumentError` unless the
    value maps strings to strings."""
    if not attributes or ATTRIBUTE_METADATA not in attributes:
        return None
    value = attributes[ATTRIBUTE_METADATA]
    if value is None:
        return None
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise InvalidArgumentError(f"attribute {ATTRIBUTE_METADATA!r} must map strings to strings")
    return dict(value)


def write_file(
    path: str | os.PathLike[str],
    entries: Sequence[ParameterEntry],
    *,
    metadata: dict[str, str] | None = None,
    alignment: int | None = None,
    durable: bool = True,
    progress: Callable[[int], None] | None = None,
) -> FilePlan:
    """Write one safetensors file atomically, streaming each entry's bytes (splats expanded).
    Memory use is one copy buffer whatever the size. Returns the layout used."""
    entries = list(entries)
    plan = plan_file(entries, metadata=metadata, alignment=alignment)
    with AtomicOutput(path, durable=durable) as out:
        write_planned(out, plan, entries, progress=progress)
        out.commit()
    return plan


def write_planned(
    out: AtomicOutput,
    plan: FilePlan,
    entries: Sequence[ParameterEntry],
    *,
    progress: Callable[[int], None] | None = None,
) -> None:
    """Write a planned file's bytes into `out` (not committed: the caller commits it, alone or
    as one file of a set)."""
    out.truncate(plan.total_size)  # all-zero splats are left as holes that read as zero
    out.pwrite(plan.header, 0)
    for e, off in zip(entries, plan.data_offsets, strict=True):
        if e.length:
            copy_entry(e, out, off, progress=progress)


# -- conversion: what safetensors keeps, carries and drops (see paramio.formats.conversion) ------


def prepare(
    entries: Sequence[ParameterEntry], attributes: dict[str, object] | None, options: dict[str, object] | None = None
) -> Prepared:
    """Entries and attributes as this writer will store them, and what is lost.

    safetensors holds dtype, shape and ``__metadata__`` (strings). Other attributes (GGUF
    key/values ...), metadata that is not regenerable ``TENSORv0`` and the exact type of entries
    it has no code for (stored as ``U8[length]``) are carried as JSON under
    ``__metadata__["paramio.carried"]``. Splats are written as data (reported).
    """
    from paramio.formats.conversion import (
        Carried,
        Loss,
        Prepared,
        attach_carried,
        describe,
        json_safe_attributes,
        metadata_needs_carrying,
        splat_loss,
    )

    options = options or {}
    attrs, losses = json_safe_attributes(attributes or {})
    carried = Carried()
    path = options.get("path")
    sharded = options.get("max_shard_size") is not None or (isinstance(path, str) and is_index_path(path))
    own = {ATTRIBUTE_METADATA} | ({ATTRIBUTE_INDEX_METADATA} if sharded else set())
    carried.attributes = {k: v for k, v in attrs.items() if k not in own}
    out: list[ParameterEntry] = []
    for e in entries:
        info = e.tensor
        stored = e
        try:
            _describe(e)
        except InvalidArgumentError:
            stored = e.replace(declared_tensor=TensorInfo("uint8", (e.length,)))
            carried.tensors[e.key] = info
            if info is not None:
                losses.append(
                    Loss(
                        e.key,
                        f"{describe(info)} stored as U8[{e.length}]",
                        "safetensors has no code for this type and shape; paramio reads the type back",
                        paramio_keeps=True,
                    )
                )
        else:
            if info is None:
                carried.tensors[e.key] = None  # read back untyped, not as U8
        if metadata_needs_carrying(e):
            carried.metadata[e.key] = bytes(e.metadata)
        if e.is_splat:
            losses.append(splat_loss(e, "safetensors"))
        out.append(stored)
    kept = {k: v for k, v in attrs.items() if k in own}
    attach_carried(
        kept,
        ATTRIBUTE_METADATA,
        carried,
        losses,
        where="__metadata__ key",
        had_flag="paramio.had_safetensors_metadata",
        invalid=f"attribute {ATTRIBUTE_METADATA!r} must map strings to strings",
    )
    return Prepared(out, kept, losses)


def plan_losses(entries: Sequence[ParameterEntry], attributes: dict[str, object] | None) -> list[Loss]:
    """What writing `entries` and `attributes` to safetensors loses (see `prepare`)."""
    return prepare(entries, attributes).losses
