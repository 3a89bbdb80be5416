"""IRPA, the IREE Parameter Archive: layout tables, reader, writer, byte-compatible with IREE.

`read_path` opens one archive, or a whole sharded set (`paramio.formats.sets`, with IRPA's
layout in `paramio.formats.irpa.sharded`) from its ``*.irpa.index.json`` manifest or any of its
``-NNNNN-of-NNNNN.irpa`` members.
"""

from __future__ import annotations

import os

from paramio.core.entry import ParameterEntry
from paramio.core.source import ByteSource
from paramio.core.tensor import TensorInfo
from paramio.formats.contract import Format, FormatContents, deferred, register_format
from paramio.formats.conversion import CARRIED_KEY, Carried, flat_bytes
from paramio.formats.irpa import reader as _reader
from paramio.formats.irpa import sharded as _sharded
from paramio.formats.irpa.layout import MAGIC_BYTES
from paramio.formats.irpa.reader import read_archive
from paramio.formats.sets import member_stem
from paramio.formats.sets import read_path as read_set_path
from paramio.sources.paths import AllowExternal

TYPE_CHECKING = False  # `typing` is not imported to read a file (mypy reads this as typing's)
if TYPE_CHECKING:
    from paramio.formats.irpa.structure import check_structure
    from paramio.formats.irpa.writer import plan_archive, write_archive, write_path

__all__ = [
    "FORMAT",
    "check_structure",
    "plan_archive",
    "read_archive",
    "read_path",
    "read_source",
    "sniff",
    "write_archive",
    "write_path",
]


#: The writer side and `verify`'s structure check, imported on first use: reading and listing an
#: archive import neither.
_WRITER = "paramio.formats.irpa.writer"
_STRUCTURE = "paramio.formats.irpa.structure"


def __getattr__(name: str) -> object:
    if name in ("plan_archive", "write_archive", "write_path", "check_structure"):
        import importlib

        return getattr(importlib.import_module(_STRUCTURE if name == "check_structure" else _WRITER), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def sniff(head: bytes) -> bool:
    return head[:4] == MAGIC_BYTES


def read_path(
    path: str,
    *,
    writable: bool = False,
    use_mmap: bool = True,
    allow_external: AllowExternal = None,
    strict: bool = False,
) -> FormatContents:
    """One archive, or the sharded set `path` belongs to (a manifest or one of its shards).
    Files named inside (shards, external entries) must resolve beside the naming file or in
    `allow_external`. Raises `FormatError` for malformed archives or a manifest that disagrees
    with its shards, `SourceError` when a file (or a shard of the set) cannot (or may not) be
    opened. IRPA has nothing a strict read would refuse: `strict` changes nothing."""
    return read_set_path(path, _sharded.LAYOUT, writable=writable, use_mmap=use_mmap, allow_external=allow_external)


def read_source(source: ByteSource, *, bulk: bool = True) -> FormatContents:
    """One archive read from `source` (a file handle's bytes), with its attributes record;
    external entries resolve inside the folder of its path (else the working directory). A
    large table is checked at once unless `bulk` is false (`paramio.formats.bulk`)."""
    path = source.path or os.path.join(os.getcwd(), source.name or "archive")
    contents = _reader.read_source(source, path, bulk=bulk)
    contents.paths = [source.name]
    return contents


def read_reference(source: ByteSource) -> FormatContents:
    """`read_source` entry by entry, every table (the reference the bulk path must agree with)."""
    return read_source(source, bulk=False)


def take_carried(attributes: dict[str, object]) -> Carried | None:
    """The ``paramio.carried`` record the writer put among the attributes (`writer.prepare`)."""
    carried = Carried.decode(attributes.get(CARRIED_KEY))
    if carried is not None:
        del attributes[CARRIED_KEY]
    return carried


def stands_in(entry: ParameterEntry, claim: TensorInfo | None) -> bool:
    """IRPA types an entry only by its metadata: an untyped entry, or raw bytes, stand in."""
    return entry.tensor is None or flat_bytes(entry, "uint8", "int8")


def _member_stem(bare: str) -> str | None:
    return member_stem(bare, ".irpa")


FORMAT = Format(
    name="irpa",
    extensions=(".irpa", ".irpa.index.json"),
    read_path=read_path,
    write_path=deferred(_WRITER, "write_path"),
    prepare=deferred(_WRITER, "prepare"),
    sniff=sniff,
    read_source=read_source,
    read_reference=read_reference,
    take_carried=take_carried,
    stands_in=stands_in,
    check_structure=deferred(_STRUCTURE, "check_structure"),
    index_suffix=".irpa.index.json",
    splats=True,
    types_in_metadata=True,
    member_stem=_member_stem,
    iree_handle_order=0,
    set_layout=_sharded.LAYOUT,
)
register_format(FORMAT)
