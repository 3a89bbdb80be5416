"""An opt-in local cache of remote bytes: a folder of fixed-size blocks, keyed by URL and by the
object's validator (ETag, Last-Modified and size), so a changed object never serves old bytes.

Safe for concurrent processes without a lock on the read path: a block is written to a unique
temp file in its folder and renamed into place, so a reader sees a whole block or none (two
processes fetching the same block both rename; the bytes are the same). Eviction (oldest use
first, to stay under `max_bytes`) holds an exclusive ``flock`` on the folder's lock file; a block
removed while another process reads it stays readable through that process's open descriptor.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import os
import secrets
from collections.abc import Iterator

from paramio.core.errors import InvalidArgumentError
from paramio.core.planner import Span
from paramio.sources.aio import AsyncByteSource

__all__ = ["CachedSource", "DiskCache"]


class DiskCache:
    """A cache folder. `block_size` bytes per block file; total kept under `max_bytes`."""

    def __init__(
        self, directory: str | os.PathLike[str], *, max_bytes: int = 16 << 30, block_size: int = 4 << 20
    ) -> None:
        if max_bytes < 1 or block_size < 1:
            raise InvalidArgumentError(f"bad cache limits (max_bytes {max_bytes}, block_size {block_size})")
        self.directory = os.path.abspath(os.fspath(directory))
        self.max_bytes = max_bytes
        self.block_size = block_size
        os.makedirs(self.directory, exist_ok=True)

    def folder(self, url: str, validator: str) -> str:
        key = hashlib.sha256(f"{url}\0{validator}\0{self.block_size}".encode()).hexdigest()
        return os.path.join(self.directory, key[:2], key[2:34])

    def load(self, folder: str, block: int, length: int) -> bytes | None:
        """A cached block of exactly `length` bytes, or None (absent, or not that long)."""
        path = os.path.join(folder, str(block))
        try:
            with open(path, "rb") as f:
                data = f.read(length + 1)
            os.utime(path)  # its last use, for eviction
        except OSError:
            return None
        return data if len(data) == length else None

    def store(self, folder: str, block: int, data: memoryview) -> None:
        """Write a block atomically (temp file, rename); a full disk only skips caching."""
        os.makedirs(folder, exist_ok=True)
        final = os.path.join(folder, str(block))
        tmp = os.path.join(folder, f".{block}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        try:
            with open(tmp, "wb") as f:
                f.write(data)
            os.replace(tmp, final)
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(tmp)

    def _files(self) -> Iterator[os.DirEntry[str]]:
        for top in os.scandir(self.directory):
            if not top.is_dir(follow_symlinks=False):
                continue
            for obj in os.scandir(top.path):
                if obj.is_dir(follow_symlinks=False):
                    yield from (e for e in os.scandir(obj.path) if e.is_file(follow_symlinks=False))

    def used_bytes(self) -> int:
        return sum(e.stat().st_size for e in self._files())

    def evict(self) -> int:
        """Remove the least recently used blocks until the cache fits `max_bytes`; returns bytes freed."""
        with open(os.path.join(self.directory, ".lock"), "a+b") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            files = [(e.stat().st_mtime_ns, e.stat().st_size, e.path) for e in self._files()]
            total = sum(size for _, size, _ in files)
            freed = 0
            for _, size, path in sorted(files):
                if total - freed <= self.max_bytes:
                    break
                with contextlib.suppress(OSError):
                    os.unlink(path)
                    freed += size
            return freed


class CachedSource(AsyncByteSource):
    """An async source whose reads go through a `DiskCache` first. The wrapped source must
    have `url` and `validator` (an `ObjectStoreSource` does). `hits`/`misses` count blocks."""

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

    async def fetch_into(self, offset: int, out: memoryview) -> None:
        bs, end = self.cache.block_size, offset + len(out)
        if end == offset:
            return
        numbers = range(offset // bs, (end - 1) // bs + 1)
        lengths = {n: min(bs, self.size - n * bs) for n in numbers}
        blocks = await asyncio.to_thread(lambda: {n: self.cache.load(self._folder, n, lengths[n]) for n in numbers})
        missing = [n for n in numbers if blocks[n] is None]
        self.hits += len(numbers) - len(missing)
        self.misses += len(missing)
        if missing:
            fetched = await self.inner.readv([Span(n * bs, lengths[n]) for n in missing])
            for n, got in zip(missing, fetched, strict=True):
                blocks[n] = bytes(got)
            await asyncio.to_thread(self._store_all, {n: fetched[i] for i, n in enumerate(missing)})
        for n in numbers:
            data = blocks[n]
            assert data is not None
            lo, hi = max(offset, n * bs), min(end, n * bs + lengths[n])
            out[lo - offset : hi - offset] = memoryview(data)[lo - n * bs : hi - n * bs]

    def _store_all(self, blocks: dict[int, memoryview]) -> None:
        for n, data in blocks.items():
            self.cache.store(self._folder, n, data)
        if self.cache.used_bytes() > self.cache.max_bytes:
            self.cache.evict()

    async def sibling(self, name: str) -> CachedSource:
        return CachedSource(await self.inner.sibling(name), self.cache)

    async def aclose(self) -> None:
        await self.inner.aclose()
