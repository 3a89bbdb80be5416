"""Set members opened lazily: a set of thousands of files within a process's descriptor limit.

A `FileSource` holds two descriptors while open (its own, and the one its memory map keeps),
so a set whose members all stayed open could not pass ~510 members under the common
``ulimit -n 1024``. A `MemberSource` is a member file that is open only while it is in use:
at most `MAX_OPEN_MEMBERS` members of all sets are open at once (least recently used closed
first), and a member is opened again on its next use. What remains open:

* a view handed out (a NumPy array over the file, a zero-copy load) keeps its member's memory
  map, and so one descriptor, alive until the view is dropped;
* a member whose descriptor was handed out (IREE's file handles, ``mode="file_async"``) stays
  open for the life of its source.

Opening again is checked: the file must still be the one read when the set was opened (device,
inode, size, modification time); a member replaced since (a new save of the set) raises
`SourceError` instead of serving another save's bytes.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections import OrderedDict
from collections.abc import Iterable, Sequence

from paramio.core.errors import SourceError
from paramio.core.planner import Span
from paramio.core.source import ByteSource
from paramio.sources.file import FileSource

__all__ = ["MAX_OPEN_MEMBERS", "MemberSource"]


def _max_open() -> int:
    """64, or fewer where the descriptor limit is small: an eighth of it (each open member holds
    up to two descriptors, and the rest of the process needs its own)."""
    try:
        import resource

        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    except (ImportError, OSError, ValueError):
        return 64
    if soft == resource.RLIM_INFINITY or soft <= 0:
        return 64
    return max(4, min(64, soft // 8))


#: Members (of every set in the process) kept open at once; each holds up to two descriptors.
MAX_OPEN_MEMBERS = _max_open()

_LOCK = threading.Lock()
_OPEN: OrderedDict[int, weakref.ref[MemberSource]] = OrderedDict()


def _identity(st: os.stat_result) -> tuple[int, int, int, int]:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


class MemberSource(ByteSource):
    """A read-only local member file, open only while in use (see the module docstring)."""

    def __init__(self, path: str, *, use_mmap: bool = True) -> None:
        self._path = path
        self.name = path
        self._use_mmap = use_mmap
        self._pinned = False
        self._closed = False
        first = FileSource(path, use_mmap=use_mmap)
        self._identity = _identity(os.fstat(first.descriptor()))
        self._size = first.size
        self._file: FileSource | None = first
        self._remember()

    # -- the open file ----------------------------------------------------------------------

    def _remember(self) -> None:
        with _LOCK:
            _OPEN[id(self)] = weakref.ref(self)
            _OPEN.move_to_end(id(self))
            while len(_OPEN) > MAX_OPEN_MEMBERS:
                _, ref = _OPEN.popitem(last=False)
                oldest = ref()
                if oldest is not None:
                    oldest._release()

    def _release(self) -> None:
        # Dropping the reference closes the file once no call in flight uses it (a call holds
        # its own reference): a descriptor is never closed under a read.
        if not self._pinned:
            self._file = None

    def _open(self) -> FileSource:
        f = self._file
        if f is not None:
            with _LOCK:
                if id(self) in _OPEN:
                    _OPEN.move_to_end(id(self))
            return f
        if self._closed:
            raise SourceError("file is closed", path=self._path)
        f = FileSource(self._path, use_mmap=self._use_mmap)
        if _identity(os.fstat(f.descriptor())) != self._identity:
            f.close()
            raise SourceError(
                "this member of the set was replaced after the set was opened (a new save?); open the set again",
                path=self._path,
            )
        self._file = f
        self._remember()
        return f

    # -- ByteSource ---------------------------------------------------------------------------

    @property
    def size(self) -> int:
        return self._size

    @property
    def path(self) -> str:
        return self._path

    def view(self, offset: int, length: int) -> memoryview:
        return self._open().view(offset, length)

    def whole_view(self) -> memoryview | None:
        # None: a whole view is kept for the source's life (`ParameterEntry.to_numpy`), which
        # would keep every member's map, and a descriptor, open; each `view` is a window instead.
        return None

    def zero_copy_view(self, offset: int, length: int) -> memoryview:
        return self._open().zero_copy_view(offset, length)

    def read(self, offset: int, length: int) -> bytes:
        return self._open().read(offset, length)

    def readinto(self, offset: int, out: memoryview | bytearray) -> int:
        return self._open().readinto(offset, out)

    def readv(self, spans: Sequence[Span] | Iterable[tuple[int, int]]) -> list[memoryview]:
        # Copies (`ByteSource.readv` through `readinto`), not views of the map: the readers keep
        # what they read of a header and tables, which would keep every member's map open.
        return super().readv(spans)

    def descriptor(self) -> int:
        """The open descriptor; from then on this member stays open (its holder may keep it)."""
        f = self._open()
        self._pinned = True
        self._file = f
        return f.descriptor()

    def fileno(self) -> int:
        return self.descriptor()

    def sibling(self, name: str) -> ByteSource:
        return self._open().sibling(name)

    def close(self) -> None:
        self._closed = True
        with _LOCK:
            _OPEN.pop(id(self), None)
        f, self._file = self._file, None
        if f is not None:
            f.close()

    def __del__(self) -> None:
        try:
            with _LOCK:
                _OPEN.pop(id(self), None)
        except Exception:
            pass
