"""The one seam between the loader and byte sources: read a span of an entry into a buffer.

Everything the loader reads goes through `read_span`, so a source that can do better (a remote
store's ranged GET, a `readv` that coalesces neighbours, GPU-direct reads into device memory)
slots in here without touching the planner or the targets. Today: `ByteSource.readinto` (``pread``
for local files, which releases the GIL) for data entries, a pattern fill for splats.
"""

from __future__ import annotations

from typing import Protocol

from paramio.core.entry import ParameterEntry, fill_pattern
from paramio.core.errors import ParamioError
from paramio.sources.file import DIRECT_ALIGN, DirectReader

__all__ = ["Reader", "read_in_place", "read_span", "span_error"]


class Reader(Protocol):
    """Another way to read an entry's source (``O_DIRECT``, say): `readinto` at file offsets."""

    def readinto(self, offset: int, out: memoryview) -> int: ...


def read_span(entry: ParameterEntry, offset: int, out: memoryview, reader: Reader | None = None) -> None:
    """Fill `out` with the entry's bytes from `offset` (within the entry), through `reader`
    when given (it reads the entry's source at file offsets), else the source's `readinto`.

    Raises a `paramio.core.errors.ParamioError` (the source's kind: `SourceError`, `TruncatedError`)
    naming the file, the key and the byte range of the entry that failed.
    """
    n = len(out)
    if n == 0:
        return
    source = entry.source
    if source is None:
        fill_pattern(out, entry.pattern, offset)
        return
    try:
        (reader or source).readinto(entry.offset + offset, out)
    except ParamioError as exc:
        raise span_error(exc, entry, offset, n) from exc
    except OSError as exc:
        from paramio.core.errors import SourceError

        raise span_error(SourceError(exc.strerror or str(exc)), entry, offset, n) from exc


def read_in_place(entry: ParameterEntry, offset: int, length: int, padded: memoryview, direct: DirectReader) -> None:
    """Read the entry's bytes ``[offset, offset + length)`` with O_DIRECT straight into the slot
    memory `padded` (whole pages around the tensor, see `hostmem.direct_bytes`): no bounce
    buffer, no copy. Errors as `read_span`'s."""
    start = entry.offset + offset
    try:
        direct.read_in_place(start, padded, entry.offset % DIRECT_ALIGN + offset, length)
    except ParamioError as exc:
        raise span_error(exc, entry, offset, length) from exc


def span_error(exc: ParamioError, entry: ParameterEntry, offset: int, n: int) -> ParamioError:
    """`exc` again (same class), now naming the file, the key and the entry's byte range."""
    inner = exc
    while isinstance(inner.__cause__, ParamioError):  # a source's own wrapping: say the first reason once
        inner = inner.__cause__
    path = exc.path or (entry.source.name if entry.source is not None else None)
    start = entry.offset + offset
    message = f"loading bytes {offset:#x}..{offset + n:#x} of the entry (file range {start:#x}..{start + n:#x}): {inner.reason}"
    try:
        return type(exc)(message, path=path, key=entry.key, offset=inner.offset if inner.offset is not None else start)
    except TypeError:  # a subclass with its own constructor: keep its class's family
        return ParamioError(message, path=path, key=entry.key, offset=start)
