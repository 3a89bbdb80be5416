"""Local files, mapped once and shared by every entry that points into them.

Only regular files are opened: a FIFO would block a reader forever, a device or a directory
has no stable size to map. The type is checked before opening and again (`os.fstat`) on the
descriptor, which is opened ``O_NONBLOCK`` so that even a FIFO swapped in between never blocks.
Writable opens refuse a file with no write bit set, even for root (whom the kernel lets write
anything): the user marked it read-only and paramio honours that.
"""

from __future__ import annotations

import _thread
import functools
import mmap
import os
import stat

from paramio.core.errors import SourceError
from paramio.core.planner import Span
from paramio.core.source import ByteSource
from paramio.sources.names import relative_parts
from paramio.sources.paths import Confinement

TYPE_CHECKING = False  # `typing.TYPE_CHECKING` without importing typing (start-up: see paramio/__init__.py)
if TYPE_CHECKING:
    import ctypes
    from collections.abc import Iterable, Sequence

__all__ = ["DIRECT_ALIGN", "DirectReader", "FileSource", "file_kind", "open_regular", "resident_bytes"]

_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def file_kind(mode: int) -> str:
    """What a non-regular file is, in words ("a FIFO"); "a regular file" for regular ones."""
    for test, words in _KINDS:
        if test(mode):
            return words
    return "a regular file" if stat.S_ISREG(mode) else f"a special file (mode {stat.S_IFMT(mode):#o})"


def open_regular(path: str, *, writable: bool = False) -> int:
    """A descriptor on the regular file `path` (blocking mode), or `SourceError` naming what
    the path is instead. A writable open also refuses a file with no write bit (``chmod 444``)."""
    flags = (os.O_RDWR if writable else os.O_RDONLY) | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    try:
        if "\0" in path:
            raise SourceError("file name holds a NUL byte", path=path.replace("\0", "\\0"))
        pre = os.stat(path)
        if not stat.S_ISREG(pre.st_mode):
            raise SourceError(f"not a regular file ({file_kind(pre.st_mode)}); refusing to open it", path=path)
        _check_write_bits(path, pre.st_mode, writable)
        fd = os.open(path, flags)
    except OSError as exc:
        if isinstance(exc, SourceError):
            raise
        raise SourceError(f"cannot open: {exc.strerror or exc}", path=path) from exc
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):  # swapped after the check above
            raise SourceError(f"not a regular file ({file_kind(st.st_mode)}); refusing to open it", path=path)
        _check_write_bits(path, st.st_mode, writable)
        os.set_blocking(fd, True)  # `fcntl` F_SETFL without O_NONBLOCK
    except BaseException:
        os.close(fd)
        raise
    return fd


def _check_write_bits(path: str, mode: int, writable: bool) -> None:
    # Root passes the kernel's permission check whatever the mode; like the kernel's rule for
    # root and execute bits, we let a write through only when some write bit is set.
    if writable and not mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH):
        raise SourceError(
            f"file is marked read-only (mode {stat.S_IMODE(mode):04o}); refusing to open it for writing", path=path
        )


class FileSource(ByteSource):
    """A local file: zero-copy views through one shared mmap, `pread` for copies.

    The file is opened once; `writable=True` opens it read-write and maps it shared, so writes
    through `write` (or a writable view) land in the file and `flush` fsyncs them.
    `writable_views=False` maps the file read-only even then, writes going through `write`
    (``pwrite``) only: an overlay, whose file may be replaced, hands out no view (NumPy's or
    torch's) that a write could go stale through.

    A writable open with writable views takes the writer's advisory lock (``flock``, as
    `paramio.WritableArchive` and overlays do) until `close`: a second writer, in this process
    or another, is refused. Before a writable view or a write lands in the mapping, its bytes'
    blocks are reserved (``posix_fallocate``): a hole that a full disk cannot fill is then a
    `SourceError` (ENOSPC) instead of SIGBUS on the first store.
    Raises `SourceError` for a path that is missing, not a regular file, (writable) read-only,
    or (writable) locked by another writer.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        writable: bool = False,
        use_mmap: bool = True,
        writable_views: bool = True,
    ) -> None:
        self._path = os.fspath(path)
        self.name = self._path
        self._writable = writable
        self._writable_views = writable and writable_views
        self._fd = -1
        self._fd = open_regular(self._path, writable=writable)
        self._locked = False
        self._reserved_all = False
        if self._writable_views:
            self._lock_writer()
        try:
            self._size = os.fstat(self._fd).st_size
            self._map: mmap.mmap | None = None
            if use_mmap and self._size > 0:
                # Without writable views the map is read-only (writes go through pwrite, which a
                # shared map sees at once): no view, NumPy's or torch's, can write the file.
                access = mmap.ACCESS_WRITE if self._writable_views else mmap.ACCESS_READ
                self._map = mmap.mmap(self._fd, self._size, access=access)
        except OSError as exc:
            self.close()
            raise SourceError(f"cannot map: {exc.strerror or exc}", path=self._path) from exc
        self._mv = memoryview(self._map) if self._map is not None else memoryview(b"")

    def _lock_writer(self) -> None:
        import fcntl  # here: only a writable open locks (a listing imports no fcntl)

        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(self._fd)
            self._fd = -1
            raise SourceError(
                "file is open for writing by another writer (it holds the advisory lock); close that writer first",
                path=self._path,
            ) from exc
        self._locked = True

    @property
    def size(self) -> int:
        return self._size

    @property
    def path(self) -> str:
        return self._path

    @property
    def writable(self) -> bool:
        return self._writable

    def whole_view(self) -> memoryview | None:
        if type(self) is not FileSource or self._map is None:
            return None  # a subclass may count or redirect its views; unmapped views are copies
        return self.view(0, self._size)

    def view(self, offset: int, length: int) -> memoryview:
        self.check_span(offset, length)
        if self._map is None:
            return memoryview(self.read(offset, length))
        v = self._mv[offset : offset + length]
        if not self._writable_views:
            return v.toreadonly()
        self.reserve(offset, length)  # a store into a hole that cannot be filled would be SIGBUS
        return v

    def read(self, offset: int, length: int) -> bytes:
        self.check_span(offset, length)
        try:
            data = os.pread(self._fd, length, offset)
            while len(data) < length:  # pread may return short on some filesystems
                more = os.pread(self._fd, length - len(data), offset + len(data))
                if not more:
                    raise SourceError("file shrank while reading", path=self._path, offset=offset + len(data))
                data += more
        except OSError as exc:
            raise SourceError(f"read failed: {exc.strerror or exc}", path=self._path, offset=offset) from exc
        return data

    def readinto(self, offset: int, out: memoryview | bytearray) -> int:
        dst = memoryview(out).cast("B")
        self.check_span(offset, len(dst))
        done = 0
        try:
            while done < len(dst):
                n = os.preadv(self._fd, [dst[done:]], offset + done)
                if n <= 0:
                    raise SourceError("file shrank while reading", path=self._path, offset=offset + done)
                done += n
        except OSError as exc:
            raise SourceError(f"read failed: {exc.strerror or exc}", path=self._path, offset=offset) from exc
        return done

    def zero_copy_view(self, offset: int, length: int) -> memoryview:
        """A view of the shared mapping; raises `SourceError` when the file is not mapped."""
        self.check_span(offset, length)
        if self._map is None and length:
            raise SourceError("not memory-mapped: no zero-copy view", path=self._path, offset=offset)
        return self.view(offset, length)

    def descriptor(self) -> int:
        """The open descriptor; raises `SourceError` once closed."""
        if self._fd < 0:
            raise SourceError("file is closed", path=self._path)
        return self._fd

    def writable_view(self, offset: int, length: int) -> memoryview:
        """A view whose writes land in the file; raises `SourceError` unless opened writable and mapped."""
        if not self._writable:
            raise SourceError("source is read-only", path=self._path, offset=offset)
        return self.zero_copy_view(offset, length)

    def readv(self, spans: Sequence[Span] | Iterable[tuple[int, int]]) -> list[memoryview]:
        if self._map is None:
            return super().readv(spans)
        wanted = self.checked_spans(spans)
        return [self.view(s.offset, s.length) for s in wanted]

    def advise(self, offset: int, length: int, advice: int) -> bool:
        """``posix_fadvise`` on the file (``os.POSIX_FADV_*``; length 0: to the end). A hint:
        False where the system has no such call or refuses it, never an error."""
        if self._fd < 0 or not hasattr(os, "posix_fadvise"):
            return False
        try:
            os.posix_fadvise(self._fd, offset, length, advice)
        except OSError:
            return False
        return True

    def private_map(self) -> mmap.mmap | None:
        """A copy-on-write mapping of the whole file (``MAP_PRIVATE``, readable and writable),
        made once per source: arrays over it share the page cache's pages until written, and a
        write changes only the process's copy, never the file. None for an empty file.

        Like every mapping, it shows changes others make to the file, and a file truncated
        underneath makes reading the lost pages kill the process with SIGBUS."""
        with _MAP_LOCK:
            m = getattr(self, "_private", None)
            if m is None and self._size > 0:
                try:
                    m = self._private = mmap.mmap(self.descriptor(), self._size, access=mmap.ACCESS_COPY)
                except OSError as exc:
                    raise SourceError(f"cannot map: {exc.strerror or exc}", path=self._path) from exc
            return m

    def direct_reader(self) -> DirectReader:
        """A reader of this file that bypasses the page cache (``O_DIRECT``). Raises
        `SourceError` where the system or the filesystem refuses it (tmpfs, some FUSE and
        network filesystems): the caller falls back to `readinto`."""
        return DirectReader(self._path, self._size)

    def sibling(self, name: str) -> FileSource:
        """The file `name` beside (or below) this one, read-only, mapped like this one.

        Raises `SourceError` for a name that leaves this file's folder (also through a symlink)
        or a file that cannot be opened."""
        # The lexical rule URLs share, then the external-file rule (symlinks followed, the
        # folder as given and as it really is) that the format readers use for named files.
        full = Confinement.beside(self._path).resolve("/".join(relative_parts(name, base=self._path)), what="sibling")
        return FileSource(full, use_mmap=self._map is not None or self._size == 0)

    def write(self, offset: int, data: memoryview | bytes) -> None:
        if not self._writable:
            super().write(offset, data)
        src = memoryview(data).cast("B")
        self.check_span(offset, len(src))
        if self._map is not None and self._writable_views:
            self.reserve(offset, len(src))
            self._mv[offset : offset + len(src)] = src
            return
        done = 0
        try:
            while done < len(src):
                done += os.pwrite(self._fd, src[done:], offset + done)
        except OSError as exc:
            raise SourceError(f"write failed: {exc.strerror or exc}", path=self._path, offset=offset + done) from exc

    def reserve(self, offset: int, length: int) -> None:
        """Allocate the blocks of ``[offset, offset + length)`` without changing a byte, so a
        later write there cannot fail for want of space (a hole in a sparse file would).
        Raises `SourceError` (ENOSPC, say) before anything is written."""
        self.check_span(offset, length)
        if not self._writable or length == 0 or self._reserved_all:
            return
        try:
            os.posix_fallocate(self._fd, offset, length)
            self._reserved_all = offset == 0 and length == self._size
        except OSError as exc:
            import errno

            if exc.errno in (errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
                return  # the filesystem cannot say in advance; the write itself will tell
            raise SourceError(f"cannot reserve space: {exc.strerror or exc}", path=self._path, offset=offset) from exc

    def flush(self) -> None:
        try:
            if self._map is not None and self._writable_views:
                self._map.flush()
            if self._writable:
                os.fsync(self._fd)
        except OSError as exc:
            raise SourceError(f"flush failed: {exc.strerror or exc}", path=self._path) from exc

    def close(self) -> None:
        # The mapping stays alive while views exported from it exist; we only drop our fd. The
        # map holds the open file too, so the writer's lock is released explicitly.
        if self._fd >= 0:
            if self._locked:
                self._locked = False
                try:
                    import fcntl  # imported by `_lock_writer` already (this may run at shutdown)

                    fcntl.flock(self._fd, fcntl.LOCK_UN)
                except (OSError, ImportError):
                    pass
            os.close(self._fd)
            self._fd = -1

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass


#: O_DIRECT transfers start, end and land at multiples of this (the largest logical block size
#: of common devices; a multiple of 512 too).
DIRECT_ALIGN = 4096
_MAP_LOCK = _thread.allocate_lock()  # `threading.Lock` itself, without importing `threading`
_LOW_BIT = bytes(i & 1 for i in range(256))  # mincore: bit 0 of each byte is the page's residency


class DirectReader:
    """``O_DIRECT`` reads of one file, through page-aligned bounce buffers (one per thread).

    The kernel moves a direct read straight from the device into the buffer, so nothing of the
    file stays in the page cache, and it demands aligned offsets, lengths and addresses; a read
    of any span is widened to aligned bounds, read into the bounce buffer and copied out.
    Raises `SourceError` at construction where ``O_DIRECT`` is refused (EINVAL: tmpfs ...)."""

    def __init__(self, path: str, size: int, *, buffer_bytes: int = 16 << 20) -> None:
        self.path = path
        self.size = size
        self._buffer_bytes = max(DIRECT_ALIGN, buffer_bytes - buffer_bytes % DIRECT_ALIGN)
        self._local = _thread._local()  # `threading.local` itself, without importing `threading`
        flag = getattr(os, "O_DIRECT", 0)
        if not flag:
            raise SourceError("O_DIRECT is not available on this system", path=path)
        try:
            self._fd = os.open(path, os.O_RDONLY | flag | getattr(os, "O_CLOEXEC", 0))
        except OSError as exc:
            raise SourceError(f"O_DIRECT refused: {exc.strerror or exc}", path=path) from exc
        try:  # some filesystems accept the flag at open and refuse the reads: try one
            if size:
                with mmap.mmap(-1, DIRECT_ALIGN) as probe:  # anonymous: page aligned
                    os.preadv(self._fd, [probe], 0)
        except OSError as exc:
            os.close(self._fd)
            self._fd = -1
            raise SourceError(f"O_DIRECT reads refused: {exc.strerror or exc}", path=path) from exc

    @property
    def buffer_bytes(self) -> int:
        """The bounce buffer's size (each thread's, made on its first unaligned read)."""
        return self._buffer_bytes

    @buffer_bytes.setter
    def buffer_bytes(self, n: int) -> None:
        self._buffer_bytes = max(DIRECT_ALIGN, n - n % DIRECT_ALIGN)

    def _buffer(self) -> memoryview:
        buf = getattr(self._local, "buf", None)
        if buf is None or len(buf) != self._buffer_bytes:
            m = mmap.mmap(-1, self._buffer_bytes)  # anonymous: page aligned
            buf = self._local.buf = memoryview(m)
        return buf

    def readinto(self, offset: int, out: memoryview | bytearray) -> int:
        """Fill `out` with the file's bytes from `offset`; `SourceError` if the file is shorter."""
        dst = memoryview(out).cast("B")
        buf = self._buffer()
        done, total = 0, len(dst)
        try:
            while done < total:
                pos = offset + done
                start = pos - pos % DIRECT_ALIGN
                want = min(len(buf), -(-(pos + total - done - start) // DIRECT_ALIGN) * DIRECT_ALIGN)
                n = os.preadv(self._fd, [buf[:want]], start)
                usable = min(n - (pos - start), total - done)
                if usable <= 0:
                    raise SourceError("file shrank while reading", path=self.path, offset=pos)
                dst[done : done + usable] = buf[pos - start : pos - start + usable]
                done += usable
        except OSError as exc:
            raise SourceError(f"read failed: {exc.strerror or exc}", path=self.path, offset=offset + done) from exc
        return done

    def read_in_place(self, offset: int, padded: memoryview, index: int, length: int) -> None:
        """Read the file's `length` bytes at `offset` straight into ``padded[index:]``, no
        bounce buffer: `padded` starts on a page, ``index`` and `offset` are equal modulo
        `DIRECT_ALIGN`, and `padded` holds the whole pages around the span (the read writes the
        file's own bytes on both sides of it). `SourceError` if the file is shorter."""
        head = offset % DIRECT_ALIGN
        at = index - head
        if at < 0 or at % DIRECT_ALIGN:
            raise ValueError(f"index {index} is not at offset {offset}'s place in a page")
        end = at + -(-(head + length) // DIRECT_ALIGN) * DIRECT_ALIGN
        if end > len(padded):
            raise ValueError("the padded block does not hold the span's whole pages")
        need, done = head + length, 0
        try:
            while done < need:
                n = os.preadv(self._fd, [padded[at + done : end]], offset - head + done)
                if n <= 0:
                    raise SourceError("file shrank while reading", path=self.path, offset=offset - head + done)
                done += n
        except OSError as exc:
            raise SourceError(f"read failed: {exc.strerror or exc}", path=self.path, offset=offset) from exc

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass


@functools.cache
def _libc() -> ctypes.CDLL:
    import ctypes  # here, not at the top: only `resident_bytes` needs it (a listing imports no ctypes)
    import ctypes.util

    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def resident_bytes(path: str | os.PathLike[str], offset: int = 0, length: int | None = None) -> int:
    """How many bytes of the file's range are in the page cache now (``mincore`` over a
    mapping; whole pages, so a range's partial end pages count whole). Raises `SourceError`
    for a file that cannot be opened or mapped, or a system without ``mincore``."""
    import ctypes

    source = FileSource(path)
    try:
        size = source.size
        end = size if length is None else min(size, offset + length)
        if end <= offset:
            return 0
        page = mmap.PAGESIZE
        start = offset - offset % page
        m = mmap.mmap(source.descriptor(), end - start, access=mmap.ACCESS_COPY, offset=start)
        try:
            pages = -(-(end - start) // page)
            vec = (ctypes.c_ubyte * pages)()
            addr = ctypes.addressof(ctypes.c_char.from_buffer(m))
            libc = _libc()
            if libc.mincore(ctypes.c_void_p(addr), ctypes.c_size_t(end - start), vec) != 0:
                err = ctypes.get_errno()
                raise SourceError(f"mincore failed: {os.strerror(err)}", path=os.fspath(path))
            count = bytes(vec).translate(_LOW_BIT).count(1)
            del addr
        finally:
            try:
                m.close()
            except BufferError:  # an export still alive (never here): the mapping goes with it
                pass
        return min(count * page, end - start)
    except AttributeError as exc:
        raise SourceError(f"no mincore on this system: {exc}", path=os.fspath(path)) from exc
    finally:
        source.close()
