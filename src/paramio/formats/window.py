"""A remote file seen by a parser that asks for the whole file: only the header is fetched.

No format reader needs this any more: they read their headers and tables through any source
(`paramio.formats.regions`). It stays for callers that still build one (``cli/verify.py``
checks for it); remove it with them.

`WindowSource` hands a parser a buffer of the file's size that holds only the regions the
opener fetched (`fill`) and zeros elsewhere: an anonymous mapping with no swap reserved, so
pages never written cost no memory. After the open, `seal` turns the whole-file view back into
a real read; every other read (entry data) goes to the remote source.
"""

from __future__ import annotations

import mmap
import sys
import threading
from collections.abc import Iterable, Sequence
from typing import Any

from paramio.core.planner import Span
from paramio.core.source import ByteSource

__all__ = ["WindowSource"]

# Linux's MAP_NORESERVE (not exported by Python's mmap before 3.13): a 100 GiB window must not
# be refused by the kernel's overcommit check, since its pages are never all touched.
_NORESERVE = 0x4000 if sys.platform.startswith("linux") else 0


def _map(size: int) -> mmap.mmap | bytearray:
    if size == 0:
        return bytearray()
    flags = getattr(mmap, "MAP_PRIVATE", 0) | getattr(mmap, "MAP_ANONYMOUS", 0) | _NORESERVE
    if not flags:  # Windows: no flags argument; an anonymous map is still lazily committed
        return mmap.mmap(-1, size)
    return mmap.mmap(-1, size, flags=flags)


class WindowSource(ByteSource):
    """`inner` with a sparse whole-file window for parsing (see the module docstring)."""

    def __init__(self, inner: ByteSource) -> None:
        self.inner = inner
        self.name = inner.name
        self.max_gap, self.max_request = inner.max_gap, inner.max_request
        self._window = _map(inner.size)
        self._filled: list[tuple[int, int]] = []  # disjoint [start, end), sorted
        self._sealed = False
        self._lock = threading.Lock()
        #: bytes and requests `fill` fetched (what an open cost, for tests and reports)
        self.fetched = 0
        self.requests = 0

    @property
    def size(self) -> int:
        return self.inner.size

    def missing(self, start: int, end: int) -> list[tuple[int, int]]:
        """The parts of ``[start, end)`` (clipped to the file) not fetched yet."""
        start, end = max(0, start), min(end, self.size)
        gaps: list[tuple[int, int]] = []
        pos = start
        for a, b in self._filled:
            if b <= pos or a >= end:
                continue
            if a > pos:
                gaps.append((pos, a))
            pos = max(pos, b)
        if pos < end:
            gaps.append((pos, end))
        return gaps

    def fill(self, ranges: Iterable[tuple[int, int]]) -> None:
        """Fetch the ``[start, end)`` ranges not fetched yet, in one `readv` (coalesced by the
        remote source's planner), into the window."""
        gaps = sorted({g for start, end in ranges for g in self.missing(start, end)})
        if not gaps:
            return
        bufs = self.inner.readv([(a, b - a) for a, b in gaps])
        with self._lock:
            for (a, b), data in zip(gaps, bufs, strict=True):
                self._window[a:b] = data
            merged: list[tuple[int, int]] = []
            for a, b in sorted(self._filled + gaps):
                if merged and a <= merged[-1][1]:
                    merged[-1] = (merged[-1][0], max(merged[-1][1], b))
                else:
                    merged.append((a, b))
            self._filled = merged
        self.fetched += sum(b - a for a, b in gaps)
        self.requests += 1

    def filled_prefix(self) -> int:
        """How many bytes from the start are fetched."""
        return self._filled[0][1] if self._filled and self._filled[0][0] == 0 else 0

    def seal(self) -> None:
        """End the parse: from now on a whole-file view is a real read, never the window."""
        self._sealed = True

    def view(self, offset: int, length: int) -> memoryview:
        self.check_span(offset, length)
        if not self._sealed and offset == 0 and length == self.size:
            return memoryview(self._window).toreadonly()
        if not self.missing(offset, offset + length):
            return memoryview(self._window)[offset : offset + length].toreadonly()
        return self.inner.view(offset, length)

    def window(self) -> memoryview:
        """The whole-file window (fetched regions and zeros), for the opener's own header reads."""
        return memoryview(self._window).toreadonly()

    # Data reads go to the remote source, with its options (``progress=``) passed through.
    def readinto(self, offset: int, out: memoryview | bytearray, **kw: Any) -> int:
        inner: Any = self.inner
        return int(inner.readinto(offset, out, **kw))

    def readv(self, spans: Sequence[Span] | Iterable[tuple[int, int]], **kw: Any) -> list[memoryview]:
        inner: Any = self.inner
        return list(inner.readv(spans, **kw))

    def read(self, offset: int, length: int) -> bytes:
        return self.inner.read(offset, length)

    def sibling(self, name: str) -> ByteSource:
        return self.inner.sibling(name)

    def close(self) -> None:
        self.inner.close()
