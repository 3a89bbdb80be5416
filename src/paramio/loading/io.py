"""How the loader reads each source: the ``io=`` choice, per source, and its page-cache hints.

``io="pread"``: ``pread`` into the destination (or a staging buffer), through the page cache; a file mostly not
cached (``mincore``) gets ``POSIX_FADV_SEQUENTIAL`` (a larger kernel read-ahead window) and
``WILLNEED`` on each task's range as it is queued (the kernel reads ahead of the workers, so a
cold file keeps the device busy while two threads copy). ``io="direct"``: ``O_DIRECT`` reads through page-aligned
bounce buffers: nothing of the file enters the page cache (a cold load from a file larger than
free memory does not evict everything else), falling back to ``pread`` where the filesystem
refuses (tmpfs, some FUSE and network mounts; the summary says why); tensors of 1 MiB or more
land in place (their memory starts at their file offset's place in a page), no CPU copy.
``io="mmap"``: tensors the
target can take as views (NumPy, torch on the CPU, element-aligned bytes) are views of a
copy-on-write mapping of the file, as `safetensors.torch.load_file` gives them: no copy, the
pages are read when first touched; the rest are read with ``pread``. ``io="auto"`` (the default):
``direct`` for a local file of 64 MiB or more with less than a tenth of it in the page cache,
``pread`` for other local files, the source's own ranged reads for URLs.

`drop_cache=True` drops each range's pages from the page cache once its bytes are copied
(``POSIX_FADV_DONTNEED``), and the whole file's at the end, so a loaded model is not held twice
(once in the arrays, once in the cache). Not with ``io="mmap"``, whose arrays are those pages.
"""

from __future__ import annotations

import dataclasses
import mmap
import os
import threading
from collections.abc import Sequence

from paramio.core.entry import ParameterEntry
from paramio.core.errors import InvalidArgumentError, SourceError
from paramio.core.source import ByteSource
from paramio.sources.file import DirectReader, FileSource, resident_bytes

__all__ = ["IO_MODES", "IoPlan", "SourceIO", "check_io", "choose_auto"]

IO_MODES = ("auto", "mmap", "pread", "direct")
#: A file at least this much in the page cache is read without read-ahead hints.
WARM_SHARE = 0.9
#: ``io="auto"`` reads a file of at least `AUTO_DIRECT_MIN` bytes with less than this share
#: cached with O_DIRECT (P11, 2 GiB cold, 2 cores: as fast as ``pread``, a third of its CPU).
COLD_SHARE = 0.1
AUTO_DIRECT_MIN = 64 << 20


def _cached_share(file: FileSource) -> float:
    try:
        return resident_bytes(file.path) / max(1, file.size)
    except SourceError:
        return 1.0  # cannot tell: read through the cache


def check_io(io: str, drop_cache: bool) -> str:
    """`io` if it names a strategy; raises `InvalidArgumentError` otherwise, and for
    ``drop_cache`` with ``"mmap"`` (the mapped arrays are the cached pages)."""
    if io not in IO_MODES:
        raise InvalidArgumentError(f"io={io!r}: expected one of {', '.join(IO_MODES)}")
    if drop_cache and io == "mmap":
        raise InvalidArgumentError("drop_cache=True with io='mmap': the mapped tensors are the page cache's pages")
    return io


def _file_of(source: ByteSource | None) -> FileSource | None:
    """The local file behind `source` (a handle wrapper's inner source too), or None."""
    seen = 0
    while source is not None and seen < 4:
        if isinstance(source, FileSource):
            return source
        source = getattr(source, "inner", None) or getattr(source, "_inner", None)
        seen += 1
    return None


def choose_auto(source: ByteSource | None) -> str:
    """The kind of `source` for ``io="auto"``: ``pread`` for a local file (``direct`` instead
    when it is 64 MiB or more and less than a tenth cached: `IoPlan`), ``remote`` for a URL,
    ``memory`` for bytes in memory."""
    if source is None:
        return "memory"
    if _file_of(source) is not None:
        return "pread"
    return "remote" if source.max_gap > 0 else "memory"


@dataclasses.dataclass
class SourceIO:
    """How one source is read: `strategy` (``pread``, ``direct``, ``mmap``, ``remote``,
    ``memory``), and `note` saying why when it is not what was asked."""

    strategy: str
    file: FileSource | None = None
    direct: DirectReader | None = None
    mapping: mmap.mmap | None = None
    note: str = ""
    mapped_bytes: int = 0
    read_bytes: int = 0
    #: pread: whether the file was mostly out of the page cache at the start (then each queued
    #: task's range gets a WILLNEED hint; a cached file gets none, they would only cost CPU).
    cold: bool = True


class IoPlan:
    """The strategy of every source of one load, and the hints that go with it."""

    def __init__(self, entries: Sequence[ParameterEntry], io: str, *, drop_cache: bool) -> None:
        self.io = check_io(io, drop_cache)
        self.drop_cache = drop_cache
        self._by_source: dict[int, SourceIO] = {}
        self._lock = threading.Lock()
        for e in entries:
            if e.source is not None and id(e.source) not in self._by_source:
                self._by_source[id(e.source)] = self._plan(e.source)

    @property
    def direct(self) -> bool:
        """Whether some source is read with O_DIRECT (its reads wait on the device, not a core)."""
        return any(io.direct is not None for io in self._by_source.values())

    @property
    def reads(self) -> bool:
        """Whether some source is read at all (False when every one is mapped: ``io="mmap"``)."""
        return any(io.strategy != "mmap" for io in self._by_source.values())

    def set_chunk(self, chunk: int) -> None:
        """The load's piece size: the bounce buffer of an O_DIRECT read that cannot land in place."""
        for io in self._by_source.values():
            if io.direct is not None:
                io.direct.buffer_bytes = chunk

    def _plan(self, source: ByteSource) -> SourceIO:
        file = _file_of(source)
        if file is None:
            kind = choose_auto(source)
            note = f"io={self.io!r} applies to local files; {kind} reads" if self.io not in ("auto", "pread") else ""
            return SourceIO(kind, note=note)
        want = "pread" if self.io == "auto" else self.io
        if self.io == "auto" and file.size >= AUTO_DIRECT_MIN and _cached_share(file) < COLD_SHARE:
            want = "direct"  # a cold file: the device's DMA lands in place, no CPU copy
        if want == "direct":
            try:
                return SourceIO("direct", file, direct=DirectReader(file.path, file.size))
            except SourceError as exc:
                io = SourceIO("pread", file, note=f"{exc.reason}; read with pread instead")
                self._hint(io)
                return io
        if want == "mmap":
            try:
                mapping = file.private_map()
            except SourceError as exc:
                return SourceIO("pread", file, note=f"{exc.reason}; read with pread instead")
            if mapping is not None:
                return SourceIO("mmap", file, mapping=mapping)
        io = SourceIO("pread", file)
        self._hint(io)
        return io

    @staticmethod
    def _hint(io: SourceIO) -> None:
        if io.file is None:
            return
        try:  # one mincore call over a mapping of the file: about a millisecond per GiB
            io.cold = resident_bytes(io.file.path) < io.file.size * WARM_SHARE
        except SourceError:
            io.cold = True
        if io.cold and hasattr(os, "POSIX_FADV_SEQUENTIAL"):
            io.file.advise(0, 0, os.POSIX_FADV_SEQUENTIAL)

    def of(self, entry: ParameterEntry) -> SourceIO | None:
        return self._by_source.get(id(entry.source)) if entry.source is not None else None

    def will_need(self, entry: ParameterEntry, offset: int, length: int) -> None:
        """Ask the kernel to start reading a queued task's range now (``pread`` files only)."""
        io = self.of(entry)
        if io is not None and io.cold and io.strategy == "pread" and io.file is not None and length:
            io.file.advise(entry.offset + offset, length, os.POSIX_FADV_WILLNEED)

    def done_reading(self, entry: ParameterEntry, offset: int, length: int) -> None:
        """After a range's bytes are copied out: count them, drop them from the cache if asked."""
        io = self.of(entry)
        if io is None:
            return
        with self._lock:
            io.read_bytes += length
        if self.drop_cache and io.strategy == "pread" and io.file is not None and length:
            io.file.advise(entry.offset + offset, length, os.POSIX_FADV_DONTNEED)

    def mapped(self, entry: ParameterEntry) -> None:
        io = self.of(entry)
        if io is not None:
            io.mapped_bytes += entry.length

    def describe(self) -> tuple[str, str]:
        """(what was used, e.g. ``pread`` or ``mmap+pread``; the notes on fallbacks)."""
        used: list[str] = []
        notes: list[str] = []
        for io in self._by_source.values():
            kinds = []
            if io.strategy == "mmap":
                if io.mapped_bytes:
                    kinds.append("mmap")
                if io.read_bytes:
                    kinds.append("pread")
                    notes.append(f"{io.read_bytes} bytes copied: the target cannot view them in place")
            else:
                kinds.append(io.strategy)
            for k in kinds:
                if k not in used:
                    used.append(k)
            if io.note and io.note not in notes:
                notes.append(io.note)
        return "+".join(used) or "none", "; ".join(notes)

    def close(self, *, complete: bool) -> None:
        """Close the direct readers; with `drop_cache`, drop every file's pages after a load
        that finished (the per-range drops leave the pages two ranges share)."""
        for io in self._by_source.values():
            if io.direct is not None:
                io.direct.close()
                io.direct = None
            if complete and self.drop_cache and io.strategy == "pread" and io.file is not None:
                io.file.advise(0, 0, os.POSIX_FADV_DONTNEED)
