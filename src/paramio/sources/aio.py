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
import atexit
import collections
import concurrent.futures
import contextlib
import threading
from collections.abc import Coroutine, Iterable, Iterator, Sequence
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
from paramio.sources.workers import PoolExecutor

__all__ = [
    "AsyncByteSource",
    "BridgedSource",
    "ReadCancelledError",
    "ThreadedSource",
    "cancelled_by",
    "run_sync",
    "shutdown",
]

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
        finally:  # the first failure (or a cancel) cancels the rest: no request outlives the read
            for t in tasks:
                t.cancel()
            await _finished(tasks)


async def _finished(tasks: Sequence[asyncio.Future[Any]]) -> None:
    """Wait until every one of `tasks` is done, also through cancellations of the caller
    (re-raised once they are): a part still running could write into the caller's buffer."""
    pending = [t for t in tasks if not t.done()]
    cancelled: BaseException | None = None
    while pending:
        try:
            await asyncio.wait(pending)
        except asyncio.CancelledError as exc:
            cancelled = exc
        pending = [t for t in pending if not t.done()]
    for t in tasks:  # mark their errors retrieved: the first one was raised already
        if not t.cancelled():
            t.exception()
    if cancelled is not None:
        raise cancelled


class ReadCancelledError(SourceError):
    """A bridged read stopped because the work it served was cancelled (`cancelled_by`)."""


_SCOPE = threading.local()
#: How often a bridged read waiting in a `cancelled_by` scope looks at its event.
_POLL = 0.05
#: How long cancelling a read may take before the caller is let go regardless.
_CANCEL_WAIT = 30.0


@contextlib.contextmanager
def cancelled_by(event: threading.Event) -> Iterator[None]:
    """Within the block, this thread's bridged reads (`run_sync`) stop within ~50 ms once
    `event` is set: their requests are cancelled and waited for, then `ReadCancelledError` is
    raised. The loader runs each task in one, so Ctrl-C does not wait for stalled requests."""
    previous = getattr(_SCOPE, "event", None)
    _SCOPE.event = event
    try:
        yield
    finally:
        _SCOPE.event = previous


class _LoopThread:
    """One daemon thread running one event loop, started on first use, shared by every bridge."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._closed = False

    def loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._closed:
                raise SourceError("paramio's I/O loop is shut down (the interpreter is exiting)")
            if self._loop is None or self._thread is None or not self._thread.is_alive():
                loop = asyncio.new_event_loop()
                loop.set_default_executor(PoolExecutor())  # to_thread runs on paramio's one pool
                thread = threading.Thread(target=loop.run_forever, name="paramio-io", daemon=True)
                thread.start()
                self._loop, self._thread = loop, thread
            return self._loop

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        loop = self.loop()
        if threading.current_thread() is self._thread:
            coro.close()
            raise RuntimeError("run_sync called from paramio's own I/O loop: await the coroutine instead")
        finished = threading.Event()

        async def tracked() -> T:
            try:
                return await coro
            finally:
                finished.set()

        fut = asyncio.run_coroutine_threadsafe(tracked(), loop)
        event: threading.Event | None = getattr(_SCOPE, "event", None)
        try:
            if event is None:
                return fut.result()
            while True:
                try:
                    return fut.result(timeout=_POLL)
                except concurrent.futures.TimeoutError:
                    if event.is_set():
                        raise ReadCancelledError("read cancelled", path=None) from None
        except BaseException:
            # Ctrl-C (or a cancelled scope) in the waiting thread: stop the coroutine and wait
            # until it has stopped, so no request it started writes into the caller's buffer
            # after the exception has left paramio.
            if not fut.done():
                fut.cancel()
                finished.wait(_CANCEL_WAIT)
            raise

    def shutdown(self) -> None:
        """Cancel what runs on the loop, stop it and join its thread (at interpreter exit)."""
        with self._lock:
            self._closed = True
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is None or thread is None or not thread.is_alive():
            return

        async def cancel_all() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in tasks:
                t.cancel()
            await asyncio.wait(tasks, timeout=5.0) if tasks else None

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(cancel_all(), loop).result(timeout=10.0)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10.0)
        if not thread.is_alive():
            loop.close()


_BRIDGE = _LoopThread()


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run `coro` on paramio's I/O loop and wait for its result: the one async-to-sync bridge.

    Safe to call from any thread, including one running its own event loop (that loop blocks
    meanwhile); exceptions propagate unchanged. An exception in the waiting thread (Ctrl-C's
    `KeyboardInterrupt`) cancels the coroutine and waits for it to stop before propagating;
    inside `cancelled_by`, setting its event does the same and raises `ReadCancelledError`."""
    return _BRIDGE.run(coro)


def shutdown() -> None:
    """Stop paramio's I/O loop: cancel its requests and join its thread. Registered with
    `atexit`, so no request is in flight while the interpreter finalises."""
    _BRIDGE.shutdown()


atexit.register(shutdown)


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
        # A thread cannot be stopped: when this read is cancelled, wait for the thread's read to
        # end before letting the cancellation go on, or it would write into `out` afterwards.
        work = asyncio.ensure_future(asyncio.to_thread(self.inner.readinto, offset, out))
        try:
            await asyncio.shield(work)
        except asyncio.CancelledError:
            await _finished([work])
            raise

    async def sibling(self, name: str) -> ThreadedSource:
        return ThreadedSource(await asyncio.to_thread(self.inner.sibling, name))

    async def aclose(self) -> None:
        self.inner.close()
