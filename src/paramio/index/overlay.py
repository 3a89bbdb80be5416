"""A writable overlay archive: copy-on-write per entry over read-only layers.

The overlay is an ordinary IRPA file holding only the entries written so far. A key it already
holds is updated in place (the bytes change, the tables never do). A key it lacks is added by
rewriting the whole overlay atomically (temporary file, fsync, rename, fsync of the folder) with
the new entries appended, existing bytes copied in the kernel. So the overlay file is always a
complete, parseable archive: a crash leaves either the old one or the new one, and can tear at
most the one entry being updated in place. Base files are never modified.

Add many new keys with one `add` call (`Provider.scatter` does): each call rewrites the file once.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence

from paramio.arrays.dtypes import dtype_by_name
from paramio.arrays.metadata import encode_tensor_metadata
from paramio.errors import InvalidArgumentError
from paramio.index.entry import ParameterEntry
from paramio.index.index import DuplicatePolicy, ParameterIndex
from paramio.index.writable import write_in_place
from paramio.sources.memory import MemorySource

__all__ = ["Overlay"]


class Overlay:
    """The overlay archive at `path` (opened if it exists, created on the first new key)."""

    def __init__(self, path: str | os.PathLike[str], *, durable: bool = True, alignment: int = 64) -> None:
        self.path = os.path.abspath(os.fspath(path))
        self.durable = durable
        self.alignment = alignment
        self._lock = threading.RLock()
        self._index = self._open() if os.path.exists(self.path) else ParameterIndex(duplicates=DuplicatePolicy.KEEP)

    def _open(self) -> ParameterIndex:
        return ParameterIndex.open(self.path, "irpa", writable=True, duplicates=DuplicatePolicy.KEEP)

    @property
    def index(self) -> ParameterIndex:
        """The overlay's current entries. Replaced (not mutated) when a key is added, so a
        reader holding it keeps a consistent, if older, view."""
        return self._index

    def __contains__(self, key: object) -> bool:
        return key in self._index

    def get(self, key: str) -> ParameterEntry | None:
        return self._index.get(key)

    def update(self, key: str, data: memoryview) -> None:
        """Overwrite an entry the overlay already holds, in place."""
        with self._lock:
            write_in_place(self._index[key], data)

    def add(self, items: Sequence[tuple[ParameterEntry, memoryview]]) -> None:
        """Copy-on-write: add entries shaped like each base entry, holding the new bytes.

        One atomic rewrite of the overlay for the whole batch. A key the overlay already has
        is refused (use `update`).
        """
        if not items:
            return
        with self._lock:
            new: list[ParameterEntry] = []
            seen: set[str] = set()
            for base, data in items:
                if base.key in self._index or base.key in seen:
                    raise InvalidArgumentError("the overlay already holds this key", key=base.key, path=self.path)
                if len(data) != base.length:
                    raise InvalidArgumentError(
                        f"cannot write {len(data)} bytes into a {base.length}-byte entry", key=base.key
                    )
                seen.add(base.key)
                src = MemorySource(data, name=f"<overlay:{base.key}>")
                new.append(ParameterEntry.data(base.key, src, 0, len(data), metadata=_typed_metadata(base)))
            from paramio.formats.irpa.writer import write_archive

            write_archive(self.path, [*self._index.entries, *new], alignment=self.alignment, durable=self.durable)
            # Old sources stay alive while readers hold their entries; the GC closes them.
            self._index = self._open()

    def flush(self) -> None:
        """msync and fsync every in-place update so far."""
        with self._lock:
            seen: set[int] = set()
            for e in self._index.entries:
                if e.source is not None and id(e.source) not in seen:
                    seen.add(id(e.source))
                    e.source.flush()

    def __repr__(self) -> str:
        return f"<Overlay {self.path} ({len(self._index)} entries)>"


def _typed_metadata(base: ParameterEntry) -> bytes:
    """The base entry's metadata, or ``TENSORv0`` made from a format's declared type, so the
    overlay stays typed when the base is safetensors or GGUF."""
    if base.metadata or base.declared_tensor is None:
        return base.metadata
    try:
        dtype_by_name(base.declared_tensor.dtype)
    except InvalidArgumentError:
        return b""
    return encode_tensor_metadata(base.declared_tensor)
