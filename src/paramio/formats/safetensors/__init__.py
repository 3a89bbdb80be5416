"""safetensors: single files and Hugging Face sharded sets, validated as the reference library.

``read_path`` accepts a ``.safetensors`` file, a ``*.safetensors.index.json`` index, or any
shard of a set (``model-00002-of-00003.safetensors``), which opens the whole set. The header's
``__metadata__`` comes back as the attribute ``"safetensors.metadata"`` (``dict[str, str]``)
and a set index's ``metadata`` as ``"safetensors.index_metadata"``; ``write_path`` takes
``__metadata__`` from the same attribute. See ``docs/safetensors.md``.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable, Sequence

from paramio.core.entry import ParameterEntry
from paramio.core.source import ByteSource
from paramio.core.tensor import TensorInfo
from paramio.formats.contract import FileMetadata, Format, FormatContents, deferred, register_format
from paramio.formats.conversion import Carried, detach_carried, flat_bytes
from paramio.formats.safetensors.layout import (
    ATTRIBUTE_INDEX_METADATA,
    ATTRIBUTE_METADATA,
    HEADER_LENGTH_SIZE,
    MAX_HEADER_SIZE,
    is_index_path,
)
from paramio.formats.safetensors.reader import SafetensorsFile, read_file, read_header
from paramio.formats.safetensors.sharded import LAYOUT, file_contents
from paramio.formats.sets import STAMP_KEY, member_stem
from paramio.formats.sets import read_path as read_set_path
from paramio.sources.paths import AllowExternal

TYPE_CHECKING = False  # `typing` is not imported to read a file (mypy reads this as typing's)
if TYPE_CHECKING:
    from paramio.formats.output import AtomicOutput
    from paramio.formats.safetensors.writer import FilePlan, plan_file, write_file
    from paramio.formats.sets import MemberPlan

__all__ = [
    "ATTRIBUTE_INDEX_METADATA",
    "ATTRIBUTE_METADATA",
    "FORMAT",
    "FilePlan",
    "SafetensorsFile",
    "plan_file",
    "read_file",
    "read_header",
    "read_path",
    "read_source",
    "sniff",
    "write_file",
    "write_path",
]


#: The writer side, imported on first use: reading and listing a file import no writer.
_WRITER = "paramio.formats.safetensors.writer"


def __getattr__(name: str) -> object:
    if name in ("FilePlan", "plan_file", "write_file"):
        import importlib

        return getattr(importlib.import_module(_WRITER), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def sniff(head: bytes) -> bool:
    """A plausible header length followed by a JSON object."""
    if len(head) < HEADER_LENGTH_SIZE + 1:
        return False
    (n,) = struct.unpack_from("<Q", head)
    return 2 <= n <= MAX_HEADER_SIZE and head[HEADER_LENGTH_SIZE:].lstrip(b" \t\r\n")[:1] == b"{"


def read_path(
    path: str,
    *,
    writable: bool = False,
    use_mmap: bool = True,
    allow_external: AllowExternal = None,
    strict: bool = False,
) -> FormatContents:
    """Read a file, an index or a shard (which opens its whole set, `paramio.formats.sets`).
    Shard names from an index (and sibling shards) must resolve inside its folder or a folder in
    `allow_external`. safetensors has nothing a strict read would refuse: `strict` changes nothing.

    Raises `FormatError` (file, tensor, offset) for anything the safetensors library would
    refuse and for a weight map that disagrees with its shards; `SourceError` when a file cannot
    be opened or a shard of a set is missing. A URL reads the header only (its first 64 KiB,
    and the rest of a longer header in one more request); shards resolve against its folder.
    """
    return read_set_path(os.fspath(path), LAYOUT, writable=writable, use_mmap=use_mmap, allow_external=allow_external)


def write_path(
    path: str,
    entries: Sequence[ParameterEntry],
    *,
    attributes: dict[str, object] | None = None,
    alignment: int | None = None,
    durable: bool = True,
    progress: Callable[[int], None] | None = None,
    max_shard_size: int | None = None,
) -> None:
    """Write `entries` (in the given order) to a safetensors file, atomically and streaming.

    `alignment=N` (a power of two) starts the data buffer, and every tensor whose size is a
    multiple of N, at a multiple of N (see `writer`). `max_shard_size` (bytes) writes a
    Hugging Face sharded set plus its index. ``attributes["safetensors.metadata"]`` becomes
    ``__metadata__``. Raises `InvalidArgumentError` for entries safetensors cannot describe,
    `DuplicateKeyError` for a repeated key, `WriteError` when the output cannot be written.
    """
    from paramio.formats.safetensors.writer import metadata_from_attributes, plan_file, write_file, write_planned
    from paramio.formats.sets import write_set

    path = os.fspath(path)
    metadata = metadata_from_attributes(attributes)
    if max_shard_size is not None or is_index_path(path):
        index_meta = (attributes or {}).get(ATTRIBUTE_INDEX_METADATA)
        extra = (
            {k: v for k, v in index_meta.items() if k not in ("total_size", STAMP_KEY)}
            if isinstance(index_meta, dict)
            else {}
        )

        def plan_member(group: Sequence[ParameterEntry], member: MemberPlan) -> Callable[[AtomicOutput], None]:
            own = metadata
            if member.stamp is not None and LAYOUT.put_stamp is not None:
                own = metadata_from_attributes(LAYOUT.put_stamp({ATTRIBUTE_METADATA: metadata}, member.stamp))
            group = list(group)
            plan = plan_file(group, metadata=own, alignment=alignment)
            return lambda out: write_planned(out, plan, group, progress=progress)

        write_set(
            path,
            list(entries),
            LAYOUT,
            plan_member=plan_member,
            max_shard_size=max_shard_size if max_shard_size is not None else 5 * 10**9,
            stores_splats=False,
            manifest_metadata=extra,
            sort_weight_map=True,
            durable=durable,
        )
        return
    write_file(path, entries, metadata=metadata, alignment=alignment, durable=durable, progress=progress)


def read_source(source: ByteSource, *, bulk: bool = True) -> FormatContents:
    """One safetensors file read from `source` (a file handle's bytes); a large canonical header
    is checked at once unless `bulk` is false (`paramio.formats.bulk`)."""
    return file_contents(source, bulk=bulk)


def read_reference(source: ByteSource) -> FormatContents:
    """`read_source` through the reference parser, every header (what the bulk path must agree with)."""
    return read_source(source, bulk=False)


def take_carried(attributes: dict[str, object]) -> Carried | None:
    """The ``paramio.carried`` record the writer put in ``__metadata__`` (`writer.prepare`)."""
    return detach_carried(attributes, ATTRIBUTE_METADATA, "paramio.had_safetensors_metadata")


def stands_in(entry: ParameterEntry, claim: TensorInfo | None) -> bool:
    """The writer stores a type safetensors cannot hold as raw bytes, ``U8[length]``."""
    return flat_bytes(entry, "uint8")


def _member_stem(bare: str) -> str | None:
    return member_stem(bare, ".safetensors")


FORMAT = Format(
    name="safetensors",
    extensions=(".safetensors", ".safetensors.index.json"),
    read_path=read_path,
    write_path=write_path,
    prepare=deferred(_WRITER, "prepare"),
    sniff=sniff,
    read_source=read_source,
    read_reference=read_reference,
    take_carried=take_carried,
    stands_in=stands_in,
    index_suffix=".safetensors.index.json",
    member_stem=_member_stem,
    file_metadata=FileMetadata(ATTRIBUTE_METADATA, "safetensors __metadata__"),
    iree_handle_order=2,
    set_layout=LAYOUT,
)
register_format(FORMAT)
