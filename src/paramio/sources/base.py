"""The byte source abstraction: where a parameter's bytes live.

A format reader builds entries that point into a source (a span: offset and length). Local
sources are synchronous and can hand out zero-copy views; remote sources add their own
abilities later without changing the readers.
"""

from __future__ import annotations

import abc

from paramio.errors import InvalidArgumentError, SourceError, TruncatedError


class ByteSource(abc.ABC):
    """A readable run of bytes with a size and a name used in error messages."""

    #: Shown in errors and dumps: a file path, or a description such as ``<memory>``.
    name: str

    @property
    @abc.abstractmethod
    def size(self) -> int:
        """Total bytes available."""

    @abc.abstractmethod
    def view(self, offset: int, length: int) -> memoryview:
        """Bytes ``[offset, offset + length)`` without copying where the source allows it."""

    @property
    def writable(self) -> bool:
        return False

    @property
    def path(self) -> str | None:
        """The local file behind the source, if there is one."""
        return None

    def fileno(self) -> int | None:
        """An OS file descriptor for kernel-side copies, or None."""
        return None

    def read(self, offset: int, length: int) -> bytes:
        """A copy of ``[offset, offset + length)``."""
        return bytes(self.view(offset, length))

    def readinto(self, offset: int, out: memoryview | bytearray) -> int:
        """Fill `out` from `offset`; returns the byte count."""
        dst = memoryview(out).cast("B")
        dst[:] = self.view(offset, len(dst))
        return len(dst)

    def write(self, offset: int, data: memoryview | bytes) -> None:
        raise SourceError("source is read-only", path=self.name, offset=offset)

    def flush(self) -> None:  # noqa: B027 -- a real default: nothing to make durable
        """Make written bytes durable. Read-only sources have nothing to do."""

    def close(self) -> None:  # noqa: B027 -- a real default: nothing to release
        """Release OS resources. Views already handed out stay valid where the source allows."""

    def check_span(self, offset: int, length: int, key: str | None = None) -> None:
        if offset < 0 or length < 0:
            raise InvalidArgumentError(
                f"negative span (offset {offset}, length {length})", path=self.name, key=key
            )
        if offset + length > self.size:
            raise TruncatedError(
                f"span {offset:#x}..{offset + length:#x} ends past the end of the source "
                f"({self.size:#x})",
                path=self.name,
                key=key,
                offset=offset,
            )

    def __enter__(self) -> ByteSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
