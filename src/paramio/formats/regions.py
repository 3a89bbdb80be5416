"""How a reader fetches its header and tables through the source: the first bytes, then spans.

Every format reader opens the same way: one first read of the file's start (`Prefix`: the
fixed header, or for a remote source `first_read`'s read-ahead, which usually holds the tables
too), then the regions the header names that the first read did not hold, in one `readv`
(`Prefix.spans`), so a remote source sends one coalesced request for them. No reader asks for
the whole file. A source whose views share one buffer (a mapped file, a caller's buffer:
`ByteSource.whole_view`) has those regions sliced from it: views of just those bytes, nothing
read or copied. Any other source (remote, counting, unmapped) is asked only for bytes it has
not already sent. A GGUF header, whose length is known only once it is parsed, grows the
prefix (`Prefix.grow`) by reading just the bytes past it.

Every length read here was checked against the source's size by the caller first: a header
claims at most the file it sits in.
"""

from __future__ import annotations

from paramio.core.source import ByteSource

TYPE_CHECKING = False  # `typing.TYPE_CHECKING` without importing typing (start-up: see paramio/__init__.py)
if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["Prefix", "first_read"]


def first_read(source: ByteSource, fixed: int, readahead: int) -> int:
    """How many bytes a reader asks for first. A source that merges reads closer than its
    `max_gap` (a remote object) pays per request, so one read of `readahead` bytes from the
    file's start saves the request for the tables that usually follow the header. Any other
    (a local file, a buffer, ``max_gap == 0``) is asked for the format's `fixed` header only,
    then for exactly the tables the header names."""
    return readahead if source.max_gap > 0 else fixed


class Prefix:
    """The first bytes of `source` (``min(length, size)`` of them), read once. A source whose
    views share one buffer (`ByteSource.whole_view`) has its regions sliced from that buffer:
    views of just those bytes, nothing read or copied."""

    __slots__ = ("buf", "shared", "source")

    def __init__(self, source: ByteSource, length: int) -> None:
        self.source = source
        self.shared = source.whole_view()
        n = max(0, min(length, source.size))
        if self.shared is not None:
            self.buf: memoryview = self.shared[:n]
        else:
            self.buf = source.readv([(0, n)])[0] if n else memoryview(b"")

    def __len__(self) -> int:
        return len(self.buf)

    def grow(self, length: int) -> None:
        """Hold the first ``min(length, size)`` bytes, reading only those past the prefix."""
        n = min(length, self.source.size)
        have = len(self.buf)
        if n <= have:
            return
        if self.shared is not None:
            self.buf = self.shared[:n]
            return
        out = bytearray(n)
        out[:have] = self.buf
        self.source.readinto(have, memoryview(out)[have:])
        self.buf = memoryview(out).toreadonly()

    def spans(self, spans: Sequence[tuple[int, int]]) -> list[memoryview]:
        """The bytes of each ``(offset, length)`` span (checked by the caller), in order: a
        slice of the prefix where it holds them, the rest in one `readv` of the missing parts."""
        whole = self.shared
        if whole is not None:  # views of a shared buffer are free
            return [whole[o : o + n] for o, n in spans]
        have = len(self.buf)
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
