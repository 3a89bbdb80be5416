"""Copy-on-open: entries moved from mapped files onto one in-memory copy of each file.

A view into a memory-mapped file is only as good as the file: when another program truncates
or rewrites it, touching a page that no longer exists raises SIGBUS and the process dies
(exit status 135, or -7 from `subprocess`); Python cannot catch it. ``copy=True`` at open time
(`ParameterIndex.open`, `Provider.add_file`, ``--parameter_mode=preload``) reads each file into
memory once, without mapping it, and points every entry at that copy: views then stay valid
whatever happens to the file, at the cost of the file's size in memory.
"""

from __future__ import annotations

from collections.abc import Iterable

from paramio.core.entry import ParameterEntry
from paramio.core.source import ByteSource
from paramio.sources.memory import MemorySource

__all__ = ["CopiedSource", "copy_entries"]


class CopiedSource(MemorySource):
    """A file's bytes read into memory at open time; keeps the file's path for messages."""

    def __init__(self, data: bytes, *, name: str, path: str | None) -> None:
        super().__init__(data, name=name)
        self._path = path

    @property
    def path(self) -> str | None:
        return self._path


def copy_entries(entries: Iterable[ParameterEntry]) -> list[ParameterEntry]:
    """`entries` with every file-backed source replaced by one in-memory copy per source
    (read with ``pread``, so a file that shrinks meanwhile ends in `SourceError`)."""
    copies: dict[int, tuple[ByteSource, ByteSource]] = {}  # the original kept: ids stay unique
    out: list[ParameterEntry] = []
    for e in entries:
        src = e.source
        if src is None or isinstance(src, MemorySource):
            out.append(e)
            continue
        pair = copies.get(id(src))
        if pair is None:
            pair = copies[id(src)] = (src, CopiedSource(src.read(0, src.size), name=src.name, path=src.path))
        out.append(e.replace(source=pair[1]))
    for src, _ in copies.values():
        src.close()
    return out
