"""Writing IRPA archives byte for byte as IREE's builder (``irpa_builder.c``) lays them out.

Layout, for entries in order: the 88-byte header at 0; the entry table at 96, each entry
16-aligned, the last one unpadded; the metadata segment right after (each entry's name, then its
metadata); the storage segment aligned to the first data entry's alignment, each data entry at
the next multiple of the alignment; the file rounded up to 4096 with zeros. Data entries record
minimum_alignment 64 whatever the placement, as IREE does. File-level attributes go last, as
the metadata of a SKIP entry that IREE's parser checks and drops (`paramio.formats.irpa.attributes`).

The archive is written to a temporary file, its bytes copied in the kernel where the source is a
file, then fsynced and renamed: a failure never leaves a partial archive under the final name.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from paramio.core.entry import ParameterEntry
from paramio.core.errors import InvalidArgumentError
from paramio.core.splats import check_splat
from paramio.formats.irpa.layout import (
    DATA_TAIL,
    DEFAULT_DATA_ALIGNMENT,
    DEFAULT_FILE_ALIGNMENT,
    ENTRY_ALIGNMENT,
    ENTRY_HEADER,
    ENTRY_SIZES,
    HEADER_ALIGNMENT,
    HEADER_PREFIX,
    HEADER_SIZE,
    HEADER_V0_TAIL,
    MAGIC,
    RECORDED_DATA_ALIGNMENT,
    SPLAT_TAIL,
    EntryType,
    align,
)
from paramio.formats.output import AtomicOutput, copy_entry

if TYPE_CHECKING:
    from paramio.formats.conversion import Loss, Prepared

#: A set written to a manifest path without `max_shard_size` uses Hugging Face's default, 5 GB.
DEFAULT_MAX_SHARD_SIZE = 5 * 10**9

__all__ = ["ArchivePlan", "plan_archive", "plan_losses", "prepare", "write_archive", "write_path", "write_planned"]


class ArchivePlan:
    """Where every byte of an archive goes, computed before anything is written."""

    def __init__(self, header_and_tables: bytes, data_offsets: list[int | None], total_size: int) -> None:
        self.header_and_tables = header_and_tables
        #: Absolute file offset of each entry's data (None for splats).
        self.data_offsets = data_offsets
        self.total_size = total_size


def _check_alignment(alignment: int) -> None:
    if alignment < 1 or alignment & (alignment - 1):
        raise InvalidArgumentError(f"alignment {alignment} is not a power of two")


def plan_archive(
    entries: Sequence[ParameterEntry],
    *,
    alignment: int = DEFAULT_DATA_ALIGNMENT,
    skip: Sequence[tuple[str, bytes]] = (),
) -> ArchivePlan:
    """Lay out `entries` exactly as IREE's builder would, then one SKIP entry per
    ``(name, metadata)`` in `skip` (IREE's parser checks and drops them). Raises
    `InvalidArgumentError` for a splat whose pattern IREE's builder refuses (length not 1, 2,
    4, 8 or 16)."""
    _check_alignment(alignment)
    table_size = 0
    meta_size = 0
    storage_size = 0
    storage_alignment = 0
    names: list[bytes] = []
    entry_offsets: list[int] = []
    storage_rel: list[int | None] = []
    for e in entries:
        name = e.key.encode("utf-8", "surrogateescape")
        names.append(name)
        if e.is_splat:
            check_splat(len(e.pattern), key=e.key)
            table_size = align(table_size, ENTRY_ALIGNMENT)
            entry_offsets.append(table_size)
            table_size += ENTRY_SIZES[EntryType.SPLAT]
            storage_rel.append(None)
        else:
            o = align(storage_size, alignment)
            table_size = align(table_size, ENTRY_ALIGNMENT)
            entry_offsets.append(table_size)
            table_size += ENTRY_SIZES[EntryType.DATA]
            storage_size = o + e.length
            storage_rel.append(o)
            if storage_alignment == 0:
                storage_alignment = alignment
        meta_size += len(name) + len(e.metadata)
    skipped = [(k.encode("utf-8", "surrogateescape"), bytes(md)) for k, md in skip]
    for name, md in skipped:
        table_size = align(table_size, ENTRY_ALIGNMENT)
        entry_offsets.append(table_size)
        table_size += ENTRY_SIZES[EntryType.SKIP]
        meta_size += len(name) + len(md)
    entry_seg = align(HEADER_SIZE, HEADER_ALIGNMENT)
    meta_seg = entry_seg + table_size
    storage_seg = align(meta_seg + meta_size, storage_alignment or 1)
    total = align(storage_seg + storage_size, DEFAULT_FILE_ALIGNMENT)

    buf = bytearray(meta_seg + meta_size)
    HEADER_PREFIX.pack_into(buf, 0, MAGIC, 0, 0, HEADER_SIZE, 0, 0)
    HEADER_V0_TAIL.pack_into(
        buf, 32, len(entries) + len(skipped), entry_seg, table_size, meta_seg, meta_size, storage_seg, storage_size
    )
    m = 0
    data_offsets: list[int | None] = []
    for e, name, eoff, rel in zip(entries, names, entry_offsets[: len(entries)], storage_rel, strict=True):
        name_ref = (m, len(name))
        buf[meta_seg + m : meta_seg + m + len(name)] = name
        m += len(name)
        md_ref = (m if e.metadata else 0, len(e.metadata))
        buf[meta_seg + m : meta_seg + m + len(e.metadata)] = e.metadata
        m += len(e.metadata)
        at = entry_seg + eoff
        if rel is None:
            ENTRY_HEADER.pack_into(buf, at, ENTRY_SIZES[EntryType.SPLAT], EntryType.SPLAT, 0, *name_ref, *md_ref, 0)
            SPLAT_TAIL.pack_into(buf, at + ENTRY_HEADER.size, e.length, e.pattern, len(e.pattern))
            data_offsets.append(None)
        else:
            ENTRY_HEADER.pack_into(
                buf, at, ENTRY_SIZES[EntryType.DATA], EntryType.DATA, 0, *name_ref, *md_ref, RECORDED_DATA_ALIGNMENT
            )
            DATA_TAIL.pack_into(buf, at + ENTRY_HEADER.size, rel, e.length)
            data_offsets.append(storage_seg + rel)
    for (name, md), eoff in zip(skipped, entry_offsets[len(entries) :], strict=True):
        name_ref = (m, len(name))
        buf[meta_seg + m : meta_seg + m + len(name)] = name
        m += len(name)
        md_ref = (m if md else 0, len(md))
        buf[meta_seg + m : meta_seg + m + len(md)] = md
        m += len(md)
        ENTRY_HEADER.pack_into(
            buf, entry_seg + eoff, ENTRY_SIZES[EntryType.SKIP], EntryType.SKIP, 0, *name_ref, *md_ref, 0
        )
    return ArchivePlan(bytes(buf), data_offsets, total)


def write_archive(
    path: str | os.PathLike[str],
    entries: Sequence[ParameterEntry],
    *,
    alignment: int = DEFAULT_DATA_ALIGNMENT,
    durable: bool = True,
    progress: Callable[[int], None] | None = None,
    attributes: dict[str, object] | None = None,
) -> ArchivePlan:
    """Write `entries` to an IRPA archive at `path`, atomically. Returns the layout used.

    Data is streamed from each entry's source; memory use stays at one copy buffer whatever the
    archive's size. `durable=False` skips the fsyncs (for scratch files only). `attributes`, if
    any, are stored in a SKIP entry IREE ignores (`paramio.formats.irpa.attributes`).
    """
    entries = list(entries)
    plan = plan_archive(entries, alignment=alignment, skip=_attributes_skip(entries, attributes))
    with AtomicOutput(path, durable=durable) as out:
        write_planned(out, plan, entries, progress=progress)
        out.commit()
    return plan


def write_planned(
    out: AtomicOutput,
    plan: ArchivePlan,
    entries: Sequence[ParameterEntry],
    *,
    progress: Callable[[int], None] | None = None,
) -> None:
    """Write a planned archive's bytes into `out` (not committed: the caller commits it, alone
    or as one file of a set)."""
    out.truncate(plan.total_size)
    out.pwrite(plan.header_and_tables, 0)
    for e, off in zip(entries, plan.data_offsets, strict=True):
        if off is not None:
            copy_entry(e, out, off, progress=progress)


def _attributes_skip(
    entries: Sequence[ParameterEntry], attributes: dict[str, object] | None
) -> list[tuple[str, bytes]]:
    from paramio.formats.irpa.attributes import ATTRIBUTES_KEY, encode_record

    # An entry under the reserved name is a user's tensor: an (empty) record then says so.
    if attributes or any(e.key == ATTRIBUTES_KEY for e in entries):
        return [(ATTRIBUTES_KEY, encode_record(dict(attributes or {})))]
    return []


def write_path(
    path: str,
    entries: Sequence[ParameterEntry],
    *,
    attributes: dict[str, object] | None = None,
    alignment: int = DEFAULT_DATA_ALIGNMENT,
    durable: bool = True,
    progress: Callable[[int], None] | None = None,
    max_shard_size: int | None = None,
) -> None:
    """The registry's entry point. Entries typed by their format but without metadata get
    ``TENSORv0`` metadata; `attributes` (GGUF key/values, safetensors metadata) are stored by
    `paramio.formats.irpa.attributes` when present. `max_shard_size` (bytes), or a path ending
    ``.irpa.index.json``, writes a sharded set and its manifest (`paramio.formats.irpa.sharded`)."""
    from paramio.core.tensor import encode_tensor_metadata
    from paramio.formats.irpa.sharded import LAYOUT, is_manifest_path
    from paramio.formats.sets import MemberPlan, write_set

    # IRPA has no dtype/shape fields: keep what safetensors/GGUF declared as TENSORv0 metadata.
    typed = [
        e.replace(metadata=encode_tensor_metadata(e.declared_tensor))
        if not e.metadata and e.declared_tensor is not None
        else e
        for e in entries
    ]

    if max_shard_size is not None or is_manifest_path(os.fspath(path)):
        size = max_shard_size if max_shard_size is not None else DEFAULT_MAX_SHARD_SIZE

        def plan_member(group: Sequence[ParameterEntry], member: MemberPlan) -> Callable[[AtomicOutput], None]:
            attrs = attributes if member.first else None  # the set's attributes ride in its first member
            if member.stamp is not None and LAYOUT.put_stamp is not None:
                attrs = LAYOUT.put_stamp(attrs, member.stamp)
            group = list(group)
            plan = plan_archive(group, alignment=alignment, skip=_attributes_skip(group, attrs))
            return lambda out: write_planned(out, plan, group, progress=progress)

        write_set(
            os.fspath(path),
            typed,
            LAYOUT,
            plan_member=plan_member,
            max_shard_size=size,
            stores_splats=True,
            durable=durable,
        )
        return
    write_archive(path, typed, alignment=alignment, durable=durable, progress=progress, attributes=attributes)


# -- conversion: what IRPA keeps, carries and drops (see paramio.formats.conversion) -------------


def prepare(
    entries: Sequence[ParameterEntry], attributes: dict[str, object] | None, options: dict[str, object] | None = None
) -> Prepared:
    """Entries and attributes as this writer will store them, and what is lost.

    IRPA keeps bytes, splats and each entry's metadata; dtype/shape become ``TENSORv0`` metadata
    and attributes one JSON record in a SKIP entry. An entry with both its own metadata and a different declared
    type keeps the metadata (IREE reads it); its declared type is carried in the attributes entry.
    Attributes JSON cannot hold are dropped (reported).
    """
    from paramio.core.tensor import decode_tensor_metadata
    from paramio.formats.conversion import CARRIED_KEY, Carried, Loss, Prepared, describe, json_safe_attributes

    attrs, losses = json_safe_attributes(attributes or {})
    carried = Carried()
    for e in entries:
        info = e.declared_tensor
        if info is not None and e.metadata and decode_tensor_metadata(e.metadata) != info:
            carried.tensors[e.key] = info
            losses.append(
                Loss(
                    e.key,
                    f"declared type {describe(info)} kept only for paramio",
                    "IRPA has one metadata field and the entry's own metadata is kept there",
                    paramio_keeps=True,
                )
            )
    if carried:
        if CARRIED_KEY in attrs:
            losses.append(Loss(None, f"attribute {CARRIED_KEY!r} replaced", "the key is reserved by paramio"))
        attrs[CARRIED_KEY] = carried.encode()
    return Prepared(list(entries), attrs, losses)


def plan_losses(entries: Sequence[ParameterEntry], attributes: dict[str, object] | None) -> list[Loss]:
    """What writing `entries` and `attributes` to IRPA loses (see `prepare`)."""
    return prepare(entries, attributes).losses
