"""How a reader fetches its header and tables through the source: the first bytes, then spans.

Every format reader opens the same way: one first read of the file's start (`Prefix`: the
fixed header, or for a remote source `first_read`'s read-ahead, which usually holds the tables
too), then the regions the header names that the first read did not hold, in one `readv`
(`Prefix.spans`), so a remote source sends one coalesced request for them. No reader asks for the whole file. A source whose views share its memory (a
mapped file, a caller's buffer: `shares_memory`) hands back views, so a local open copies
nothing; any other source (remote, counting, unmapped) is asked only for bytes it has not
already sent. A GGUF header, whose length is known only once it is parsed, grows the prefix
(`Prefix.grow`) by reading just the bytes past it.

Every length read here was checked against the source's size by the caller first: a header
claims at most the file it sits in.
"""

from __future__ import annotations

from collections.abc import Sequence

from paramio.core.source import ByteSource

__all__ = ["Prefix", "first_read", "shares_memory"]


def first_read(source: ByteSource, fixed: int, readahead: int) -> int:
    """How many bytes a reader asks for first. A source that merges reads closer than its
    `max_gap` (a remote object) pays per request, so one read of `readahead` bytes from the
    file's start saves the request for the tables that usually follow the header. Any other
    (a local file, a buffer, ``max_gap == 0``) is asked for the format's `fixed` header only,
    then for exactly the tables the header names."""
    return readahead if source.max_gap > 0 else fixed


def shares_memory(source: ByteSource) -> bool:
    """Whether `source`'s views are windows of one buffer (`ByteSource.whole_view`): then a
    longer view costs nothing, and re-asking for bytes already read copies none."""
    return source.whole_view() is not None


class Prefix:
    """The first bytes of `source` (``min(length, size)`` of them), read once."""

    __slots__ = ("buf", "shared", "source")

    def __init__(self, source: ByteSource, length: int) -> None:
        self.source = source
        self.shared = shares_memory(source)
        n = max(0, min(length, source.size))
        self.buf: memoryview = source.readv([(0, n)])[0] if n else memoryview(b"")

    def __len__(self) -> int:
        return len(self.buf)

    def grow(self, length: int) -> None:
        """Hold the first ``min(length, size)`` bytes, reading only those past the prefix."""
        n = min(length, self.source.size)
        have = len(self.buf)
        if n <= have:
            return
        if self.shared:
            self.buf = self.source.readv([(0, n)])[0]
            return
        out = bytearray(n)
        out[:have] = self.buf
        self.source.readinto(have, memoryview(out)[have:])
        self.buf = memoryview(out).toreadonly()

    def spans(self, spans: Sequence[tuple[int, int]]) -> list[memoryview]:
        """The bytes of each ``(offset, length)`` span (checked by the caller), in order: a
        slice of the prefix where it holds them, the rest in one `readv` of the missing parts."""
        have = len(self.buf)
        if self.shared:  # views are free: the covered ones sliced, the rest viewed in one call
            missing = [(o, n) for o, n in spans if n and o + n > have]
            got = iter(self.source.readv(missing) if missing else [])
            return [self.buf[o : o + n] if not n or o + n <= have else next(got) for o, n in spans]
        wanted = [(max(o, have), o + n - max(o, have)) for o, n in spans if n and o + n > have]
        fetched = iter(self.source.readv(wanted) if wanted else [])
        out: list[memoryview] = []
        for o, n in spans:
            if not n:
                out.append(memoryview(b""))
            elif o + n <= have:
                out.append(self.buf[o : o + n])
            elif o >= have:
                out.append(next(fetched))
            else:  # straddles the prefix's end: the start from it, the rest from the read
                joined = bytearray(n)
                joined[: have - o] = self.buf[o:have]
                joined[have - o :] = next(fetched)
                out.append(memoryview(joined).toreadonly())
        return out
