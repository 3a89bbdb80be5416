"""Optional abilities of a byte source, as small runtime-checkable Protocols.

Every source has the `ByteSource` contract (`readinto`, `readv`, `view`, `sibling`). Some can do
more, and a caller that wants more asks with ``isinstance`` instead of probing for None:

- `SupportsZeroCopy`: views that share the source's memory (a mapped file, a caller's buffer),
  never a copy. A remote source's `view` is a fetched copy, so it is not one.
- `SupportsFileDescriptor`: an OS descriptor and a local path, for kernel-side copies
  (``os.copy_file_range``) and for handing the file to IREE. The contract has no ``fileno``: a
  source without this Protocol (memory, a remote object, a window or other wrapper over a file)
  is read through `readinto`/`view`, never asked for a descriptor it may not have.
- `SupportsWrite`: bytes written in place (through `write` or a writable view) and made durable;
  whether *this* instance was opened for writing is its `writable` flag.
- `SupportsUpload`: an output that streams parts and then appears whole or not at all (an
  object store's multipart upload).

The checks are by class, as Protocols are: a `FileSource` opened with ``use_mmap=False`` still
has `zero_copy_view`, which then raises `SourceError`.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from paramio.core.buffers import Buffer

__all__ = ["SupportsFileDescriptor", "SupportsUpload", "SupportsWrite", "SupportsZeroCopy"]


@runtime_checkable
class SupportsZeroCopy(Protocol):
    def zero_copy_view(self, offset: int, length: int) -> memoryview:
        """Bytes ``[offset, offset + length)`` sharing the source's memory."""
        ...


@runtime_checkable
class SupportsFileDescriptor(Protocol):
    @property
    def path(self) -> str: ...

    def descriptor(self) -> int:
        """The open OS descriptor (`SourceError` once the source is closed)."""
        ...


@runtime_checkable
class SupportsWrite(Protocol):
    @property
    def writable(self) -> bool: ...

    def write(self, offset: int, data: memoryview | bytes) -> None: ...

    def flush(self) -> None: ...

    def writable_view(self, offset: int, length: int) -> memoryview:
        """A view whose writes land in the source."""
        ...


@runtime_checkable
class SupportsUpload(Protocol):
    def write(self, data: Buffer) -> int:
        """Append `data`; full parts are sent as they fill."""
        ...

    def commit(self) -> None:
        """Complete the upload: only now does the object exist under its name."""
        ...

    def abort(self) -> None:
        """Drop every part sent; nothing appears under the name."""
        ...
