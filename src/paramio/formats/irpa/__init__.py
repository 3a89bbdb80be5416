"""IRPA, the IREE Parameter Archive: layout tables, reader, writer, byte-compatible with IREE.

`read_path` opens one archive, or a whole sharded set (`paramio.formats.irpa.sharded`) from its
``*.irpa.index.json`` manifest or any of its ``-NNNNN-of-NNNNN.irpa`` shards.
"""

from __future__ import annotations

from paramio.formats.irpa import reader as _reader
from paramio.formats.irpa import sharded as _sharded
from paramio.formats.irpa.layout import MAGIC_BYTES
from paramio.formats.irpa.reader import read_archive
from paramio.formats.irpa.structure import check_structure
from paramio.formats.irpa.writer import plan_archive, write_archive, write_path
from paramio.formats.registry import FormatContents
from paramio.sources.paths import AllowExternal

__all__ = ["check_structure", "plan_archive", "read_archive", "read_path", "sniff", "write_archive", "write_path"]


def sniff(head: bytes) -> bool:
    return head[:4] == MAGIC_BYTES


def read_path(
    path: str, *, writable: bool = False, use_mmap: bool = True, allow_external: AllowExternal = None
) -> FormatContents:
    """One archive, or the sharded set `path` belongs to (a manifest or one of its shards).
    Files named inside (shards, external entries) must resolve beside the naming file or in
    `allow_external`. Raises `FormatError` for malformed archives or a manifest that disagrees
    with its shards, `SourceError` when a file (or a shard of the set) cannot (or may not) be
    opened."""
    contents = _sharded.read_path(path, writable=writable, use_mmap=use_mmap, allow_external=allow_external)
    if contents is not None:
        return contents
    return _reader.read_path(path, writable=writable, use_mmap=use_mmap, allow_external=allow_external)
