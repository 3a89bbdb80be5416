"""The async twin of `ByteSource`, and the one bridge each way between the two.

Remote I/O is async (many range requests in flight, bounded by a semaphore); local I/O and the
format readers are sync. `AsyncByteSource` has the same contract as `ByteSource` with a single
request as its primitive (`fetch_into`), from which `readinto` (split into parallel parts) and
`readv` (coalesced by the shared planner) follow. `BridgedSource` makes any async source a sync
`ByteSource` by running its coroutines on one background event loop (`run_sync`);
`ThreadedSource` makes a sync source async by moving its reads to worker threads.
"""

from __future__ import annotations

import abc
import asyncio
import collections
import threading
from collections.abc import Coroutine, Iterable, Sequence
from typing import Any, TypeVar

from paramio.core.errors import SourceError
from paramio.core.planner import (
    DEFAULT_MAX_GAP,
    DEFAULT_MAX_REQUEST,
    Request,
    Span,
    direct_target,
    outputs_for,
    plan_reads,
    scatter,
)
from paramio.core.source import ByteSource, Progress, check_span, checked_spans

__all__ = ["AsyncByteSource", "BridgedSource", "ThreadedSource", "run_sync"]

T = TypeVar("T")


class AsyncByteSource(abc.ABC):
    """A readable run of bytes whose reads are coroutines. Subclasses give `size` and `fetch_into`."""

    name: str
    #: Planner limits (see `paramio.core.planner`) and how many requests may be in flight.
    max_gap: int = DEFAULT_MAX_GAP
    max_request: int = DEFAULT_MAX_REQUEST
    max_concurrency: int = 8

    @property
    @abc.abstractmethod
    def size(self) -> int:
        """Total bytes available."""

    @abc.abstractmethod
    async def fetch_into(self, offset: int, out: memoryview) -> None:
        """One request: fill all of `out` from `offset` (already checked to lie in the source)."""

    async def readinto(self, offset: int, out: memoryview | bytearray, *, progress: Progress | None = None) -> int:
        """Fill `out` from `offset`; a long range goes out as parallel parts of `max_request`."""
        dst = memoryview(out).cast("B")
        check_span(self.name, self.size, offset, len(dst))
        plan = plan_reads([Span(offset, len(dst))], max_gap=0, max_request=self.max_request)
        parts = [(req, dst[req.start - offset : req.end - offset]) for req in plan]
        await self._gather([self._into(req, part, progress) for req, part in parts])
        return len(dst)

    async def read(self, offset: int, length: int) -> bytes:
        buf = bytearray(length)
        await self.readinto(offset, buf)
        return bytes(buf)

    async def readv(
        self, spans: Sequence[Span] | Iterable[tuple[int, int]], *, progress: Progress | None = None
    ) -> list[memoryview]:
        """One buffer per span, in the order given: coalesced, split and read concurrently.

        Memory beyond the results is bounded by ``max_concurrency * max_request`` (scratch bodies
        of requests that carry more than one piece)."""
        wanted = checked_spans(self.name, self.size, spans)
        outputs = outputs_for(wanted)
        plan = plan_reads(wanted, max_gap=self.max_gap, max_request=self.max_request)

        async def one(req: Request) -> None:
            dst = direct_target(req, outputs)
            if dst is not None:
                await self._into(req, dst, progress)
                return
            body = memoryview(bytearray(req.length))
            await self._into(req, body, progress)
            scatter(req, body, outputs)

        await self._gather([one(req) for req in plan])
        return [memoryview(o).toreadonly() for o in outputs]

    async def sibling(self, name: str) -> AsyncByteSource:
        """The source `name` beside this one, opened (see `ByteSource.sibling`)."""
        raise SourceError(f"has no siblings: cannot open {name!r} beside it", path=self.name)

    async def aclose(self) -> None:  # noqa: B027 -- a real default: nothing to release
        """Release connections."""

    async def _into(self, req: Request, dst: memoryview, progress: Progress | None) -> None:
        await self.fetch_into(req.start, dst)
        if progress is not None:
            progress(req.length)

    async def _gather(self, jobs: list[Coroutine[Any, Any, None]]) -> None:
        gate = asyncio.Semaphore(max(1, self.max_concurrency))

        async def gated(job: Coroutine[Any, Any, None]) -> None:
            async with gate:
                await job

        tasks = [asyncio.ensure_future(gated(j)) for j in jobs]
        try:
            await asyncio.gather(*tasks)
        finally:  # the first failure cancels the rest: no request outlives the read
            for t in tasks:
                t.cancel()


class _LoopThread:
    """One daemon thread running one event loop, started on first use, shared by every bridge."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None or self._thread is None or not self._thread.is_alive():
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=loop.run_forever, name="paramio-io", daemon=True)
                thread.start()
                self._loop, self._thread = loop, thread
            return self._loop

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        loop = self.loop()
        if threading.current_thread() is self._thread:
            coro.close()
            raise RuntimeError("run_sync called from paramio's own I/O loop: await the coroutine instead")
        return asyncio.run_coroutine_threadsafe(coro, loop).result()


_BRIDGE = _LoopThread()


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run `coro` on paramio's I/O loop and wait for its result: the one async-to-sync bridge.

    Safe to call from any thread, including one running its own event loop (that loop blocks
    meanwhile); exceptions propagate unchanged."""
    return _BRIDGE.run(coro)


class BridgedSource(ByteSource):
    """A sync `ByteSource` over an `AsyncByteSource` (a remote object, say).

    `readinto` and `readv` go straight to the async source. `view` serves the format readers that
    still ask for small buffers one at a time: it reads whole aligned pages (`page_size`) and
    keeps the last few (`cache_pages`) so a header parsed in small steps costs one request; a
    view longer than a page is fetched whole and not kept."""

    def __init__(self, inner: AsyncByteSource, *, page_size: int = 64 * 1024, cache_pages: int = 64) -> None:
        self.inner = inner
        self.name = inner.name
        # Its reads are the async source's, planned with its limits: say them (a reader sizes its
        # first read by whether requests are worth merging, `paramio.formats.regions`).
        self.max_gap, self.max_request = inner.max_gap, inner.max_request
        self._page = page_size
        self._pages: collections.OrderedDict[int, bytes] = collections.OrderedDict()
        self._keep = cache_pages
        self._lock = threading.Lock()

    @property
    def size(self) -> int:
        return self.inner.size

    def readinto(self, offset: int, out: memoryview | bytearray, *, progress: Progress | None = None) -> int:
        return run_sync(self.inner.readinto(offset, out, progress=progress))

    def readv(
        self, spans: Sequence[Span] | Iterable[tuple[int, int]], *, progress: Progress | None = None
    ) -> list[memoryview]:
        """As `ByteSource.readv`; `progress` is called (on the I/O thread) with each request's
        byte count as it completes."""
        return run_sync(self.inner.readv(spans, progress=progress))

    def read(self, offset: int, length: int) -> bytes:
        """Exactly the range asked for (no page rounding): a copy the caller keeps."""
        buf = bytearray(length)
        self.readinto(offset, buf)
        return bytes(buf)

    def view(self, offset: int, length: int) -> memoryview:
        self.check_span(offset, length)
        if length == 0:
            return memoryview(b"")
        first, last = offset // self._page, (offset + length - 1) // self._page
        if last - first >= 2:  # big: one direct read, not cached
            buf = bytearray(length)
            self.readinto(offset, buf)
            return memoryview(buf).toreadonly()
        pages = self._get_pages(range(first, last + 1))
        start = offset - first * self._page
        if len(pages) == 1:
            return memoryview(pages[0])[start : start + length]
        return memoryview(b"".join(pages))[start : start + length]

    def _get_pages(self, numbers: range) -> list[bytes]:
        with self._lock:
            have = {n: self._pages[n] for n in numbers if n in self._pages}
            for n in have:
                self._pages.move_to_end(n)
        missing = [n for n in numbers if n not in have]
        if missing:
            spans = [(n * self._page, min(self._page, self.size - n * self._page)) for n in missing]
            for n, data in zip(missing, self.readv(spans), strict=True):
                have[n] = bytes(data)
            with self._lock:
                for n in missing:
                    self._pages[n] = have[n]
                while len(self._pages) > self._keep:
                    self._pages.popitem(last=False)
        return [have[n] for n in numbers]

    def sibling(self, name: str) -> BridgedSource:
        return BridgedSource(run_sync(self.inner.sibling(name)), page_size=self._page, cache_pages=self._keep)

    def close(self) -> None:
        run_sync(self.inner.aclose())


class ThreadedSource(AsyncByteSource):
    """An `AsyncByteSource` over a sync `ByteSource`: each request runs in a worker thread."""

    max_gap = 0

    def __init__(self, inner: ByteSource) -> None:
        self.inner = inner
        self.name = inner.name
        self.max_request = inner.max_request

    @property
    def size(self) -> int:
        return self.inner.size

    async def fetch_into(self, offset: int, out: memoryview) -> None:
        await asyncio.to_thread(self.inner.readinto, offset, out)

    async def sibling(self, name: str) -> ThreadedSource:
        return ThreadedSource(await asyncio.to_thread(self.inner.sibling, name))

    async def aclose(self) -> None:
        self.inner.close()
