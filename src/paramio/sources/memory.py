"""Bytes already in memory: any object with the buffer protocol."""

from __future__ import annotations

from paramio.core.buffers import Buffer
from paramio.core.errors import SourceError
from paramio.core.planner import Span
from paramio.core.source import ByteSource

TYPE_CHECKING = False  # `typing.TYPE_CHECKING` without importing typing (start-up: see paramio/__init__.py)
if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence


class MemorySource(ByteSource):
    """A source over a caller's buffer. Views share its memory; it is kept alive by the source."""

    def __init__(self, buffer: Buffer, *, name: str = "<memory>", writable: bool = False) -> None:
        self._obj = buffer
        view = memoryview(buffer)  # type: ignore[arg-type]
        if not view.c_contiguous:
            raise ValueError("MemorySource needs a C-contiguous buffer")
        self._view = view.cast("B") if view.format != "B" or view.ndim != 1 else view
        self._writable = writable and not self._view.readonly
        self.name = name

    @property
    def size(self) -> int:
        return len(self._view)

    @property
    def writable(self) -> bool:
        return self._writable

    @property
    def buffer(self) -> Buffer:
        return self._obj

    def view(self, offset: int, length: int) -> memoryview:
        self.check_span(offset, length)
        v = self._view[offset : offset + length]
        return v if self._writable else v.toreadonly()

    def whole_view(self) -> memoryview | None:
        return self.view(0, self.size) if type(self) is MemorySource else None

    def zero_copy_view(self, offset: int, length: int) -> memoryview:
        """A view sharing the caller's buffer (what `view` already returns)."""
        return self.view(offset, length)

    def writable_view(self, offset: int, length: int) -> memoryview:
        """A view whose writes land in the caller's buffer; raises `SourceError` unless writable."""
        if not self._writable:
            raise SourceError("source is read-only", path=self.name, offset=offset)
        return self.view(offset, length)

    def readv(self, spans: Sequence[Span] | Iterable[tuple[int, int]]) -> list[memoryview]:
        wanted = self.checked_spans(spans)
        return [self.view(s.offset, s.length) for s in wanted]

    def write(self, offset: int, data: memoryview | bytes) -> None:
        if not self._writable:
            super().write(offset, data)
        src = memoryview(data).cast("B")
        self.check_span(offset, len(src))
        self._view[offset : offset + len(src)] = src
