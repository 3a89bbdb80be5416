"""An opt-in local cache of remote bytes: a folder of fixed-size blocks, keyed by URL and by the
object's validator (ETag, Last-Modified and size), so a changed object never serves old bytes.

Safe for concurrent processes without a lock on the read path: a block is written to a unique
temp file in its folder and renamed into place, so a reader sees a whole block or none (two
processes fetching the same block both rename; the bytes are the same). Eviction (oldest use
first, to stay under `max_bytes`) holds an exclusive ``flock`` on the folder's lock file; a block
removed while another process reads it stays readable through that process's open descriptor.

What sits in the folder is not trusted: the folder must belong to the user and be writable by
no one else (it is created ``0700``; another's, or a group- or world-writable one, is refused),
a block is opened only as a regular file (no symlink followed, ``O_NONBLOCK`` so a FIFO planted
there cannot hang the open), and each block ends with a SHA-256 of the object's key, the block's
number and its bytes, checked on every load: a block that fails any of these is fetched again.

Small reads (a header, a format's tables) are cached by page (`page_size`, 64 KiB) rather than
by block, so a first listing with a cache downloads what it would without one.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import hashlib
import os
import secrets
import stat
from collections.abc import Iterator

from paramio.core.errors import InvalidArgumentError
from paramio.core.planner import Span
from paramio.sources.aio import AsyncByteSource

__all__ = ["CachedSource", "DiskCache"]

_DIGEST = 32  # SHA-256, after each block's bytes
_OPEN_BLOCK = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
_CREATE_TEMP = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)


def _private_folder(path: str) -> None:
    """Create `path` (mode 0700) and check that it is a folder of this user that no one else can
    write. Raises `InvalidArgumentError` saying what is wrong and how to fix it."""
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
        info = os.stat(path)
    except OSError as exc:
        raise InvalidArgumentError(f"cannot create the cache folder: {exc.strerror}", path=path) from exc
    if not stat.S_ISDIR(info.st_mode):
        raise InvalidArgumentError("the cache folder is not a folder", path=path)
    if hasattr(os, "geteuid") and info.st_uid != os.geteuid():
        raise InvalidArgumentError(
            f"the cache folder belongs to another user (uid {info.st_uid}): blocks planted there would be "
            "read as the model's bytes; use a folder of your own",
            path=path,
        )
    if info.st_mode & 0o022:
        raise InvalidArgumentError(
            f"the cache folder is writable by other users (mode {stat.S_IMODE(info.st_mode):04o}): blocks "
            f"planted there would be read as the model's bytes; chmod go-w {path}, or use a folder of your own",
            path=path,
        )


class DiskCache:
    """A cache folder. `block_size` bytes per block file; total kept under `max_bytes`; reads
    smaller than half a block are cached by `page_size` (64 KiB by default).

    Raises `InvalidArgumentError` for bad limits, or a folder that is not this user's alone."""

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        max_bytes: int = 16 << 30,
        block_size: int = 4 << 20,
        page_size: int | None = None,
    ) -> None:
        if page_size is None:  # 64 KiB, or whole blocks when they are not a multiple of it
            page_size = 64 << 10 if block_size > 0 and block_size % (64 << 10) == 0 else max(1, block_size)
        if max_bytes < 1 or block_size < 1 or page_size < 1 or block_size % page_size:
            raise InvalidArgumentError(
                f"bad cache limits (max_bytes {max_bytes}, block_size {block_size}, page_size {page_size}: "
                "a block must be a whole number of pages)"
            )
        self.directory = os.path.abspath(os.fspath(directory))
        self.max_bytes = max_bytes
        self.block_size = block_size
        self.page_size = page_size
        _private_folder(self.directory)
        #: Blocks found in the folder and refused (not a regular file, or a wrong digest).
        self.rejected = 0

    def folder(self, url: str, validator: str) -> str:
        return os.path.join(self.directory, *self._key(url, validator))

    def _key(self, url: str, validator: str) -> tuple[str, str]:
        key = hashlib.sha256(f"{url}\0{validator}\0{self.block_size}".encode()).hexdigest()
        return key[:2], key[2:34]

    @staticmethod
    def _digest(folder: str, name: str, data: memoryview | bytes) -> bytes:
        h = hashlib.sha256(f"{os.path.basename(folder)}\0{name}\0".encode())
        h.update(data)
        return h.digest()

    def load(self, folder: str, block: int | str, length: int) -> bytes | None:
        """A cached block of exactly `length` bytes whose digest holds, or None (absent, not a
        regular file, another length, or bytes that are not the ones stored)."""
        name = str(block)
        path = os.path.join(folder, name)
        try:
            fd = os.open(path, _OPEN_BLOCK)
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENXIO):  # a symlink, a FIFO without a writer
                self.rejected += 1
            return None
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode) or info.st_size != length + _DIGEST:
                self.rejected += stat.S_ISREG(info.st_mode) is False
                return None
            raw = bytearray()
            while len(raw) < length + _DIGEST:
                chunk = os.read(fd, length + _DIGEST - len(raw))
                if not chunk:
                    return None
                raw += chunk
            with contextlib.suppress(OSError):
                os.utime(fd)  # its last use, for eviction
        except OSError:
            return None
        finally:
            os.close(fd)
        data, digest = memoryview(raw)[:length], bytes(raw[length:])
        if digest != self._digest(folder, name, data):
            self.rejected += 1
            return None
        return bytes(data)

    def store(self, folder: str, block: int | str, data: memoryview | bytes) -> None:
        """Write a block atomically (temp file, rename); a full disk only skips caching."""
        name = str(block)
        try:
            _private_folder(os.path.dirname(folder))
            _private_folder(folder)
        except InvalidArgumentError:
            return  # a subfolder someone else made: cache nothing there
        final = os.path.join(folder, name)
        tmp = os.path.join(folder, f".{name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        try:
            fd = os.open(tmp, _CREATE_TEMP, 0o600)
        except OSError:
            return
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.write(self._digest(folder, name, data))
            os.replace(tmp, final)
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(tmp)

    def _files(self) -> Iterator[tuple[int, int, str]]:
        """(mtime in ns, size, path) of every block file. Other processes share the folder: a
        file or folder listed may be gone (renamed into place, evicted) by the time it is
        looked at, and is then skipped."""
        for top in _entries(self.directory):
            if not top.is_dir(follow_symlinks=False):
                continue
            for obj in _entries(top.path):
                if not obj.is_dir(follow_symlinks=False):
                    continue
                for e in _entries(obj.path):
                    try:
                        if not e.is_file(follow_symlinks=False):
                            continue
                        info = e.stat(follow_symlinks=False)
                    except FileNotFoundError:
                        continue
                    yield info.st_mtime_ns, info.st_size, e.path

    def used_bytes(self) -> int:
        return sum(size for _, size, _ in self._files())

    def evict(self) -> int:
        """Remove the least recently used blocks until the cache fits `max_bytes`; returns bytes freed."""
        fd = os.open(os.path.join(self.directory, ".lock"), os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        with open(fd, "a+b") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            files = list(self._files())
            total = sum(size for _, size, _ in files)
            freed = 0
            for _, size, path in sorted(files):
                if total - freed <= self.max_bytes:
                    break
                with contextlib.suppress(OSError):
                    os.unlink(path)
                    freed += size
            return freed


def _entries(folder: str) -> list[os.DirEntry[str]]:
    """A folder's entries, none if another process removed it meanwhile."""
    try:
        with os.scandir(folder) as it:
            return list(it)
    except FileNotFoundError:
        return []


class CachedSource(AsyncByteSource):
    """An async source whose reads go through a `DiskCache` first. The wrapped source must
    have `url` and `validator` (an `ObjectStoreSource` does). `hits`/`misses` count blocks
    (or pages, for reads smaller than half a block)."""

    def __init__(self, inner: AsyncByteSource, cache: DiskCache) -> None:
        self.inner, self.cache = inner, cache
        self.name = inner.name
        self.max_gap, self.max_request, self.max_concurrency = inner.max_gap, inner.max_request, inner.max_concurrency
        self._folder = cache.folder(getattr(inner, "url", inner.name), getattr(inner, "validator", str(inner.size)))
        self.hits = 0
        self.misses = 0

    @property
    def size(self) -> int:
        return self.inner.size

    def _load(self, unit: int, n: int, length: int) -> bytes | None:
        """Unit `n` (a block, or a page when `unit` is the page size): from its own file, or for
        a page from the whole block holding it."""
        bs = self.cache.block_size
        if unit == bs:
            return self.cache.load(self._folder, n, length)
        page = self.cache.load(self._folder, f"p{n}", length)
        if page is not None:
            return page
        block = (n * unit) // bs
        whole = self.cache.load(self._folder, block, min(bs, self.size - block * bs))
        if whole is None:
            return None
        lo = n * unit - block * bs
        return whole[lo : lo + length]

    async def fetch_into(self, offset: int, out: memoryview) -> None:
        end = offset + len(out)
        if end == offset:
            return
        # Small reads (headers, tables) by page: a first listing fetches what it would uncached.
        unit = self.cache.block_size if len(out) * 2 >= self.cache.block_size else self.cache.page_size
        numbers = range(offset // unit, (end - 1) // unit + 1)
        lengths = {n: min(unit, self.size - n * unit) for n in numbers}
        blocks = await asyncio.to_thread(lambda: {n: self._load(unit, n, lengths[n]) for n in numbers})
        missing = [n for n in numbers if blocks[n] is None]
        self.hits += len(numbers) - len(missing)
        self.misses += len(missing)
        if missing:
            fetched = await self.inner.readv([Span(n * unit, lengths[n]) for n in missing])
            for n, got in zip(missing, fetched, strict=True):
                blocks[n] = bytes(got)
            names = {(n if unit == self.cache.block_size else f"p{n}"): fetched[i] for i, n in enumerate(missing)}
            await asyncio.to_thread(self._store_all, names)
        for n in numbers:
            data = blocks[n]
            assert data is not None
            lo, hi = max(offset, n * unit), min(end, n * unit + lengths[n])
            out[lo - offset : hi - offset] = memoryview(data)[lo - n * unit : hi - n * unit]

    def _store_all(self, blocks: dict[int | str, memoryview]) -> None:
        for n, data in blocks.items():
            self.cache.store(self._folder, n, data)
        if self.cache.used_bytes() > self.cache.max_bytes:
            self.cache.evict()

    async def sibling(self, name: str) -> CachedSource:
        return CachedSource(await self.inner.sibling(name), self.cache)

    async def aclose(self) -> None:
        await self.inner.aclose()
