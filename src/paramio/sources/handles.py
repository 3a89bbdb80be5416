"""`FileHandle`: ``iree.runtime.FileHandle`` over paramio's byte sources, without IREE.

A handle is host memory (``wrap_memory``, a mapped or preloaded file) or an OS file descriptor
(``wrap_fd``, which duplicates the descriptor as IREE does). `ParameterEntry.file_storage`
returns one for the entry's source, with IREE's ``repr``; `ParameterIndex.add_from_file_handle`
and `load_from_file_handle` take one (or any `ByteSource`).

A handle is also a `ByteSource` (reading through to the memory or file behind it), so code that
takes ``source, offset = entry.file_storage`` and reads from ``source`` keeps working.

Beyond IREE: ``fd`` of a memory handle is -1 (IREE returns an arbitrary number). Unlike IREE's
class, a paramio handle does not expose the buffer protocol itself (Python 3.11 classes cannot):
use `host_allocation`, as IREE's own tests do.
"""

from __future__ import annotations

import mmap
import os
import sys
import weakref

from paramio.core.buffers import Buffer
from paramio.core.errors import InvalidArgumentError, SourceError
from paramio.core.source import ByteSource
from paramio.sources.file import FileSource
from paramio.sources.memory import MemorySource
from paramio.sources.protocols import SupportsFileDescriptor

__all__ = ["FileHandle", "handle_source", "mark_fd_source"]

#: Sources read through a file descriptor (``load(mode="file_async")``, ``wrap_fd`` handles):
#: their handles show as ``FileHandle<fd(N)>``, as IREE's do; every other source is host memory.
_FD_SOURCES: weakref.WeakSet[ByteSource] = weakref.WeakSet()
_HANDLES: weakref.WeakKeyDictionary[ByteSource, FileHandle] = weakref.WeakKeyDictionary()
_FD_DIR = "/proc/self/fd" if sys.platform.startswith("linux") else "/dev/fd"


def mark_fd_source(source: ByteSource) -> None:
    """Show `source`'s handles as file descriptors (it was opened as one)."""
    _FD_SOURCES.add(source)


class FileHandle(ByteSource):
    """IREE's ``FileHandle``: host memory or a file descriptor, as `ParameterIndex` reads it,
    and a `ByteSource` over those bytes.

    Made only by `wrap_memory`, `wrap_fd` or `for_source` (IREE's class has no constructor).
    """

    _source: ByteSource | None
    _host: memoryview | None
    _fd: int
    _readable: bool
    _writable: bool

    def __init__(self) -> None:
        raise TypeError("paramio.FileHandle: no constructor defined!")

    @classmethod
    def _make(
        cls, source: ByteSource | None, host: memoryview | None, fd: int, readable: bool, writable: bool
    ) -> FileHandle:
        h = object.__new__(cls)
        h.name = source.name if source is not None else f"{_FD_DIR}/{fd}"
        h._source = source
        h._host = host
        h._fd = fd
        h._readable = readable
        h._writable = writable
        return h

    @staticmethod
    def wrap_memory(host_buffer: Buffer, readable: bool = True, writable: bool = False) -> FileHandle:
        """A handle over a buffer (kept alive by the handle). Raises `TypeError` for objects
        without the buffer protocol, as IREE does."""
        try:
            view = memoryview(host_buffer)  # type: ignore[arg-type]
        except TypeError:
            raise TypeError(f"a bytes-like object is required, not '{type(host_buffer).__name__}'") from None
        if writable and view.readonly:
            raise InvalidArgumentError("cannot wrap a read-only buffer as writable")
        source = MemorySource(host_buffer, name=f"<memory at {id(host_buffer):#x}>", writable=writable)
        return FileHandle._make(source, source.view(0, source.size), -1, readable, writable)

    @staticmethod
    def wrap_fd(fd: int, readable: bool = True, writable: bool = False) -> FileHandle:
        """A handle over a duplicate of `fd` (the caller may close its own). Raises `ValueError`
        with IREE's message for a descriptor that is not open."""
        try:
            own = os.dup(fd)
        except (OSError, OverflowError, TypeError) as exc:
            raise InvalidArgumentError(
                f"Could not wrap host fd into a file handle: invalid file_descriptor ({exc})"
            ) from exc
        h = FileHandle._make(None, None, own, readable, writable)
        weakref.finalize(h, _close, own)
        return h

    @staticmethod
    def for_source(source: ByteSource) -> FileHandle:
        """The handle of an entry's `source` (one per source): a file descriptor for sources
        opened as one, else host memory (a mapped file, a buffer, a preloaded file)."""
        if isinstance(source, FileHandle):
            return source
        if isinstance(source, _SourceOfHandle):
            return source.handle
        try:
            h = _HANDLES.get(source)
        except TypeError:  # a source class without weak references: a handle per call
            h = None
        if h is None:
            fd = -1
            if source in _FD_SOURCES and isinstance(source, SupportsFileDescriptor):
                try:
                    fd = source.descriptor()
                except SourceError:  # closed: its mapping (if any) is what is left to show
                    fd = -1
            h = FileHandle._make(source, None, fd, True, source.writable)
            try:
                _HANDLES[source] = h
            except TypeError:
                pass
        return h

    # -- IREE's properties -----------------------------------------------------------------

    @property
    def is_fd(self) -> bool:
        return self._fd >= 0

    @property
    def is_host_allocation(self) -> bool:
        return self._fd < 0

    @property
    def is_async(self) -> bool:
        return False

    @property
    def fd(self) -> int:
        return self._fd

    @property
    def host_allocation(self) -> memoryview:
        """The bytes as a memoryview (a file that is not mapped is read once). Raises
        `ValueError` with IREE's message for a file-descriptor handle."""
        if self._fd >= 0:
            raise InvalidArgumentError("FileHandle is not based on a host allocation and cannot be mapped")
        if self._host is None:
            src = self._source
            assert src is not None
            self._host = src.view(0, src.size)  # the mapping, or one read of an unmapped file
        return self._host

    def __repr__(self) -> str:
        if self._fd >= 0:
            return f"FileHandle<fd({self._fd})>"
        if self._host is None and not _maps(self._source):
            # An unmapped file would be read whole to show its memoryview: name it instead.
            return f"FileHandle<host_allocation(<memory at {id(self._source):#x}>)>"
        return f"FileHandle<host_allocation({self.host_allocation!r})>"

    # -- paramio ---------------------------------------------------------------------------

    @property
    def source(self) -> ByteSource:
        """The handle's bytes as a paramio `ByteSource` (a file descriptor is reopened through
        ``/proc/self/fd``, so the source has its own offset and mapping)."""
        if self._source is None:
            path = f"{_FD_DIR}/{self._fd}"
            try:
                source = _SourceOfHandle(path, self, writable=self._writable)
            except SourceError as exc:
                raise SourceError(f"cannot reopen file descriptor {self._fd}: {exc.reason}", path=path) from exc
            mark_fd_source(source)
            self._source = source
        return self._source

    # -- ByteSource: read through to the bytes behind the handle ----------------------------

    @property
    def size(self) -> int:
        return self.source.size

    def view(self, offset: int, length: int) -> memoryview:
        return self.source.view(offset, length)

    def read(self, offset: int, length: int) -> bytes:
        return self.source.read(offset, length)

    def readinto(self, offset: int, out: memoryview | bytearray) -> int:
        return self.source.readinto(offset, out)

    @property
    def path(self) -> str | None:
        return self.source.path

    @property
    def writable(self) -> bool:
        return self._writable and self.source.writable

    def write(self, offset: int, data: memoryview | bytes) -> None:
        self.source.write(offset, data)

    def flush(self) -> None:
        self.source.flush()


class _SourceOfHandle(FileSource):
    """The file behind an fd handle; entries on it report that same handle."""

    def __init__(self, path: str, handle: FileHandle, *, writable: bool) -> None:
        super().__init__(path, writable=writable)
        self.handle = handle  # the handle keeps the source; the source keeps the handle's fd open


def _maps(source: ByteSource | None) -> bool:
    """Whether `source`'s views are windows of memory it already holds (no read to make one)."""
    if source is None or isinstance(source, MemorySource):
        return True
    return isinstance(source.view(0, 0).obj, mmap.mmap)


def handle_source(handle: FileHandle | ByteSource) -> ByteSource:
    """The byte source of a handle (a `ByteSource` is its own)."""
    if isinstance(handle, FileHandle):
        return handle.source
    if isinstance(handle, ByteSource):
        return handle
    raise TypeError(f"expected a FileHandle or ByteSource, not {type(handle).__name__}")


def _close(fd: int) -> None:
    try:
        os.close(fd)
    except OSError:
        pass
