"""Local files, mapped once and shared by every entry that points into them."""

from __future__ import annotations

import mmap
import os

from paramio.errors import SourceError
from paramio.sources.base import ByteSource


class FileSource(ByteSource):
    """A local file: zero-copy views through one shared mmap, `pread` for copies.

    The file is opened once; `writable=True` opens it read-write and maps it shared, so writes
    through `write` (or a writable view) land in the file and `flush` fsyncs them.
    """

    def __init__(self, path: str | os.PathLike[str], *, writable: bool = False, use_mmap: bool = True) -> None:
        self._path = os.fspath(path)
        self.name = self._path
        self._writable = writable
        try:
            self._fd = os.open(self._path, (os.O_RDWR if writable else os.O_RDONLY) | getattr(os, "O_CLOEXEC", 0))
        except OSError as exc:
            raise SourceError(f"cannot open: {exc.strerror or exc}", path=self._path) from exc
        try:
            self._size = os.fstat(self._fd).st_size
            self._map: mmap.mmap | None = None
            if use_mmap and self._size > 0:
                access = mmap.ACCESS_WRITE if writable else mmap.ACCESS_READ
                self._map = mmap.mmap(self._fd, self._size, access=access)
        except OSError as exc:
            os.close(self._fd)
            raise SourceError(f"cannot map: {exc.strerror or exc}", path=self._path) from exc
        self._mv = memoryview(self._map) if self._map is not None else memoryview(b"")

    @property
    def size(self) -> int:
        return self._size

    @property
    def path(self) -> str:
        return self._path

    @property
    def writable(self) -> bool:
        return self._writable

    def fileno(self) -> int:
        return self._fd

    def view(self, offset: int, length: int) -> memoryview:
        self.check_span(offset, length)
        if self._map is None:
            return memoryview(self.read(offset, length))
        v = self._mv[offset : offset + length]
        return v if self._writable else v.toreadonly()

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

    def write(self, offset: int, data: memoryview | bytes) -> None:
        if not self._writable:
            super().write(offset, data)
        src = memoryview(data).cast("B")
        self.check_span(offset, len(src))
        if self._map is not None:
            self._mv[offset : offset + len(src)] = src
        else:
            os.pwrite(self._fd, src, offset)

    def flush(self) -> None:
        try:
            if self._map is not None and self._writable:
                self._map.flush()
            if self._writable:
                os.fsync(self._fd)
        except OSError as exc:
            raise SourceError(f"flush failed: {exc.strerror or exc}", path=self._path) from exc

    def close(self) -> None:
        # The mapping stays alive while views exported from it exist; we only drop our fd.
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass
