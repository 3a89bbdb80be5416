"""Writing GGUF version 3 files, and split sets, atomically and without copying tensors through Python.

Layout (as gguf-py's writer, so the same input gives the same bytes): header, key/values, tensor
infos, zeros to the alignment, then each tensor at the next multiple of the alignment, the last
one padded too. Each file is sized first and written in place; tensor bytes are moved by
`copy_entry` (file to file: threaded buffered copies, or the kernel's where it can reflink).

Tensor types come from `ParameterEntry.tensor`: NumPy names with a ggml type map to it
(``float32`` -> F32, ``bfloat16`` -> BF16 ...), ``gguf.<type>`` names to their ggml id. Entries
whose dtype GGUF has no code for (``uint8``, ``float8_*``, ``bool`` ...) are written as the signed
integer type of the same width with the same shape, so their bytes and shape survive but the
element type becomes that integer type; untyped entries and other widths become I8 ``[length]``.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

from paramio.core.dtypes import dtype_by_name
from paramio.core.entry import ParameterEntry
from paramio.core.errors import InvalidArgumentError
from paramio.formats.conversion import check_file_size
from paramio.formats.gguf.constants import (
    ALIGNMENT_KEY,
    ATTRIBUTES_KEY,
    DEFAULT_ALIGNMENT,
    GGML_BY_NAME,
    GGML_MAX_DIMS,
    GGML_TYPES,
    MAGIC,
    SAME_WIDTH_INT,
    SPLIT_COUNT,
    SPLIT_KEYS,
    SPLIT_NO,
    SPLIT_TENSORS_COUNT,
    WRITE_VERSION,
    GGMLType,
    elements_fault,
    tensor_nbytes,
)
from paramio.formats.gguf.kv import OCCURRENCES, encode_kv, kv_pairs
from paramio.formats.gguf.split import LAYOUT
from paramio.formats.output import AtomicOutput, copy_entry
from paramio.formats.sets import STAMP_KEY, MemberPlan, write_set

if TYPE_CHECKING:
    from paramio.formats.conversion import Loss, Prepared

__all__ = ["ggml_type_of", "plan_losses", "prepare", "write_gguf", "write_path"]

_HEADER = struct.Struct("<4sIQQ")
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")


def _align(n: int, a: int) -> int:
    return (n + a - 1) // a * a


def ggml_type_of(entry: ParameterEntry) -> tuple[GGMLType, tuple[int, ...]]:
    """The ggml type and row-major shape `entry` is written with (see the module docstring).

    Raises `InvalidArgumentError` when the entry's declared type and shape disagree with its length,
    or a quantised shape's innermost dimension is not a multiple of the block size.
    """
    info = entry.tensor
    if info is None:
        return GGML_TYPES[24], (entry.length,)
    gtype = GGML_BY_NAME.get(info.dtype)
    if gtype is None and info.dtype.startswith("gguf."):
        raise InvalidArgumentError(f"unknown GGUF tensor type {info.dtype!r}", key=entry.key)
    if gtype is not None and gtype.quantized:
        declared = info.extra.get("ggml_type")
        if declared is not None and declared != gtype.id:
            raise InvalidArgumentError(f"type {info.dtype} has ggml id {gtype.id}, not {declared}", key=entry.key)
    if gtype is None:
        try:
            width = dtype_by_name(info.dtype).itemsize
        except InvalidArgumentError:
            width = 0
        if width not in SAME_WIDTH_INT:
            return GGML_TYPES[24], (entry.length,)
        gtype = SAME_WIDTH_INT[width]
    shape = tuple(int(d) for d in info.shape)
    if len(shape) > GGML_MAX_DIMS:  # what every reader refuses (gguf.cpp, and paramio's)
        raise InvalidArgumentError(
            f"{info.dtype}{list(shape)} has {len(shape)} dimensions; GGUF allows at most {GGML_MAX_DIMS}",
            key=entry.key,
        )
    fault = elements_fault(shape[::-1])
    if fault:
        raise InvalidArgumentError(f"GGUF cannot hold this tensor: {fault}", key=entry.key)
    inner = shape[-1] if shape else 1
    if inner % gtype.block_size:
        raise InvalidArgumentError(
            f"innermost dimension {inner} is not a multiple of the {gtype.name} block size {gtype.block_size}",
            key=entry.key,
        )
    if tensor_nbytes(gtype, shape) != entry.length:
        raise InvalidArgumentError(
            f"{info.dtype}{list(shape)} takes {tensor_nbytes(gtype, shape)} bytes but the entry has {entry.length}",
            key=entry.key,
        )
    return gtype, shape


def _tensor_info(key: str, gtype: GGMLType, shape: tuple[int, ...], offset: int) -> bytes:
    name = key.encode("utf-8", "surrogateescape")
    dims = b"".join(_U64.pack(d) for d in reversed(shape))
    return _U64.pack(len(name)) + name + _U32.pack(len(shape)) + dims + _U32.pack(gtype.id) + _U64.pack(offset)


def _kv_records(attributes: Mapping[str, object] | None) -> dict[str, object]:
    raw = (attributes or {}).get(ATTRIBUTES_KEY, {})
    if not isinstance(raw, Mapping):
        raise InvalidArgumentError(f"attributes[{ATTRIBUTES_KEY!r}] must be a mapping of key -> value")
    return {str(k): v for k, v in raw.items() if k not in SPLIT_KEYS and k != STAMP_KEY}


def write_gguf(
    path: str | os.PathLike[str],
    entries: Sequence[ParameterEntry],
    *,
    attributes: Mapping[str, object] | None = None,
    alignment: int | None = None,
    durable: bool = True,
    progress: Callable[[int], None] | None = None,
    split_max_tensors: int | None = None,
    split_max_size: int | None = None,
) -> list[str]:
    """Write `entries` as GGUF at `path` (or as a split set next to it); returns the files written.

    `attributes["gguf.kv"]` gives the key/values (typed records as the reader produces them, or
    plain values); ``split.*`` keys are replaced by the writer's own. `alignment` defaults to the
    ``general.alignment`` key if present, else 32; a value other than 32 is recorded in that key.
    One file is written atomically (or streamed, see `paramio.formats.targets`); a split set is
    written by `paramio.formats.sets.write_set`: committed as a whole, every member stamped with
    the save, and members of an earlier, larger split under the same name removed.
    Raises `InvalidArgumentError` for values or tensors GGUF cannot hold, `WriteError` on I/O failure.
    """
    path = os.fspath(path)
    kv = _kv_records(attributes)
    if alignment is None:
        rec = kv.get(ALIGNMENT_KEY)
        value = rec.get("value") if isinstance(rec, Mapping) else rec
        alignment = value if isinstance(value, int) and not isinstance(value, bool) else DEFAULT_ALIGNMENT
    if alignment < 1 or alignment & (alignment - 1) or alignment > 0xFFFF_FFFF:
        raise InvalidArgumentError(f"alignment {alignment} is not a power of two")
    if alignment != DEFAULT_ALIGNMENT or ALIGNMENT_KEY in kv:
        old = kv.get(ALIGNMENT_KEY)
        if not (isinstance(old, Mapping) and OCCURRENCES in old and old.get("value") == alignment):
            kv[ALIGNMENT_KEY] = {"type": "u32", "value": alignment}  # (a repeated key kept as read)
    pairs = kv_pairs(kv)  # file order, a repeated key's pairs included
    kv_bytes = b"".join(encode_kv(k, v) for k, v in pairs)

    seen: set[str] = set()
    typed: dict[str, tuple[GGMLType, tuple[int, ...]]] = {}
    for e in entries:
        if e.key in seen:
            raise InvalidArgumentError("duplicate tensor name; GGUF names must be unique", key=e.key)
        seen.add(e.key)
        typed[e.key] = ggml_type_of(e)

    def plan_member(group: Sequence[ParameterEntry], member: MemberPlan) -> Callable[[AtomicOutput], None]:
        shard_kv = kv_bytes if member.first else b""
        n_kv = len(pairs) if member.first else 0
        if member.count > 1:
            shard_kv += (
                encode_kv(SPLIT_NO, {"type": "u16", "value": member.index})
                + encode_kv(SPLIT_COUNT, {"type": "u16", "value": member.count})
                + encode_kv(SPLIT_TENSORS_COUNT, {"type": "i32", "value": member.total_entries})
            )
            n_kv += 3
        infos: list[bytes] = []
        rel = 0
        offsets: list[int] = []
        for e in group:
            gtype, shape = typed[e.key]
            check_file_size(rel, "GGUF")  # before a u64 offset field overflows
            infos.append(_tensor_info(e.key, gtype, shape, rel))
            offsets.append(rel)
            rel += _align(e.length, alignment)
        check_file_size(rel, "GGUF")
        head = _HEADER.pack(MAGIC, WRITE_VERSION, len(group), n_kv) + shard_kv + b"".join(infos)
        data_offset = _align(len(head), alignment)

        def write(out: AtomicOutput) -> None:
            out.truncate(data_offset + rel)
            out.pwrite(head, 0)
            for e, off in zip(group, offsets, strict=True):
                copy_entry(e, out, data_offset + off, progress=progress)

        return write

    return write_set(
        path,
        entries,
        LAYOUT,
        plan_member=plan_member,
        max_shard_size=split_max_size or None,
        max_entries=split_max_tensors or None,
        stores_splats=False,
        durable=durable,
    )


def write_path(
    path: str,
    entries: Sequence[ParameterEntry],
    *,
    attributes: dict[str, object] | None = None,
    alignment: int | None = None,
    durable: bool = True,
    progress: Callable[[int], None] | None = None,
    split_max_tensors: int | None = None,
    split_max_size: int | None = None,
    max_shard_size: int | None = None,
) -> None:
    """The registry's entry point; see `write_gguf`. `max_shard_size` is the option every
    writer takes for a sharded set: here it is gguf-py's `split_max_size` (give one of them)."""
    if max_shard_size is not None:
        if split_max_size is not None and split_max_size != max_shard_size:
            raise InvalidArgumentError(
                f"max_shard_size={max_shard_size} and split_max_size={split_max_size} disagree; give one"
            )
        if isinstance(max_shard_size, bool) or not isinstance(max_shard_size, int) or max_shard_size < 1:
            raise InvalidArgumentError(f"max_shard_size must be a positive integer, not {max_shard_size!r}")
        split_max_size = max_shard_size
    write_gguf(
        path,
        list(entries),
        attributes=attributes,
        alignment=alignment,
        durable=durable,
        progress=progress,
        split_max_tensors=split_max_tensors,
        split_max_size=split_max_size,
    )


# -- conversion: what GGUF keeps, carries and drops (see paramio.formats.conversion) -------------


def prepare(
    entries: Sequence[ParameterEntry],
    attributes: Mapping[str, object] | None,
    options: Mapping[str, object] | None = None,
) -> Prepared:
    """Entries and attributes as this writer will store them, and what is lost.

    GGUF holds ggml types, shapes and typed key/values (``attributes["gguf.kv"]``). Other
    attributes (safetensors ``__metadata__`` ...), metadata that is not regenerable ``TENSORv0``
    and the exact type of entries stored under a stand-in ggml type (``uint8`` as I8, ``float8``
    as I8, untyped or mis-sized entries as I8 ``[length]``) are carried as JSON in the string key
    ``paramio.carried``. Splats are written as data (reported).
    """
    from paramio.core.tensor import TensorInfo
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

    attrs, losses = json_safe_attributes(attributes or {})
    carried = Carried()
    carried.attributes = {k: v for k, v in attrs.items() if k != ATTRIBUTES_KEY}
    out: list[ParameterEntry] = []
    for e in entries:
        info = e.tensor
        stored = e
        try:
            gtype, shape = ggml_type_of(e)
        except InvalidArgumentError:
            stored = e.replace(declared_tensor=TensorInfo("int8", (e.length,)))
            gtype, shape = GGML_TYPES[24], (e.length,)
        if info is None:
            carried.tensors[e.key] = None  # read back untyped, not as I8
        elif info.dtype != gtype.paramio_dtype or tuple(info.shape) != shape:
            carried.tensors[e.key] = info
            losses.append(
                Loss(
                    e.key,
                    f"{describe(info)} stored as {gtype.name}{list(shape)}",
                    "GGUF has no type code for it; paramio reads the type back",
                    paramio_keeps=True,
                )
            )
        if metadata_needs_carrying(e):
            carried.metadata[e.key] = bytes(e.metadata)
        if e.is_splat:
            losses.append(splat_loss(e, "GGUF"))
        out.append(stored)
    kept = {k: v for k, v in attrs.items() if k == ATTRIBUTES_KEY}
    attach_carried(
        kept,
        ATTRIBUTES_KEY,
        carried,
        losses,
        where="key/value",
        had_flag="paramio.had_gguf_kv",
        invalid=f"attributes[{ATTRIBUTES_KEY!r}] must be a mapping of key -> value",
        wrap=lambda text: {"type": "string", "value": text},
    )
    return Prepared(out, kept, losses)


def plan_losses(entries: Sequence[ParameterEntry], attributes: Mapping[str, object] | None) -> list[Loss]:
    """What writing `entries` and `attributes` to GGUF loses (see `prepare`)."""
    return prepare(entries, attributes).losses
