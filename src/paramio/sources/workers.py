"""The one pool of worker threads for paramio's blocking work: a load's reads, a write's copies.

Local I/O is blocking ``pread``/``pwrite`` that releases the GIL, so threads overlap it. Every
user takes a `Lease` for the threads it wants (a load: its ``concurrency``; a write: its copy
lanes) and submits plain callables; the pool holds as many threads as the leases now held ask
for together (at most `MAX_THREADS`), and between uses it keeps as many as the last lease
asked for, ready for the next call with the same settings. So its size follows the requested
concurrency: after any sequence of loads the process has the threads of one pool, not one pool
per setting, and a smaller request retires the threads a larger one started.

It lives in `paramio.sources`, the lowest layer both of its users (`paramio.formats.output`,
`paramio.loading.engine`) can import that is not the floor of plain types (`paramio.core`):
running blocking reads against sources is where bytes are fetched.

Why not `concurrent.futures.ThreadPoolExecutor`: it starts threads lazily inside ``submit``,
they are not daemons, and the interpreter joins them at exit; a Ctrl-C landing while one starts
leaves a thread the executor never registered, and exit then waits forever (measured: 3 hangs in
12 interrupted runs). These threads are daemons, start when a lease is taken (before any task is
queued), and an exit handler stops the idle ones in order. A thread that is mid-task at exit
(only possible if its user did not wait for it) does not hold the interpreter up.
"""

from __future__ import annotations

import atexit
import os
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from types import TracebackType
from typing import TypeVar

__all__ = ["MAX_THREADS", "THREAD_PREFIX", "Lease", "PoolExecutor", "WorkerPool", "pool"]

#: Worker threads are named ``THREAD_PREFIX-<n>`` (tests find them by it).
THREAD_PREFIX = "paramio-worker"
#: Leases asking for more than this together share this many threads (their tasks queue).
MAX_THREADS = 256

T = TypeVar("T")

_STOP = object()  # a thread that takes it from the queue ends


class Lease:
    """Threads asked of a `WorkerPool` until `release` (or the end of a ``with`` block)."""

    def __init__(self, pool: WorkerPool, n: int, generation: int) -> None:
        self.pool = pool
        self.n = n
        self._generation = generation
        self._released = False

    def release(self) -> None:
        """Give the threads back (idempotent): the pool shrinks to what is still asked for."""
        if not self._released:
            self._released = True
            self.pool._release(self.n, self._generation)

    def __enter__(self) -> Lease:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()

    def __del__(self) -> None:  # a user that forgot to release does not keep its threads forever
        try:
            self.release()
        except Exception:  # noqa: BLE001, S110 -- at interpreter exit the pool may be gone
            pass


class WorkerPool:
    """Daemon threads taking callables from one queue; sized by the `Lease` objects held."""

    def __init__(self, *, limit: int = MAX_THREADS, prefix: str = THREAD_PREFIX) -> None:
        if limit < 1:
            raise ValueError(f"a pool needs at least one thread, not {limit}")
        self.limit = limit
        self.prefix = prefix
        self._lock = threading.RLock()  # re-entrant: a Lease's __del__ may run inside a locked block
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._threads = 0  # started and not told to stop
        self._demand = 0  # threads asked for by the leases held now
        self._keep = 0  # threads kept while no lease is held (the last lease's size)
        self._made = 0  # for thread names
        self._generation = 0  # bumped in a forked child: leases of the parent mean nothing there

    @property
    def threads(self) -> int:
        """Threads the pool holds now (started, not yet told to stop)."""
        return self._threads

    def lease(self, n: int) -> Lease:
        """Ask for `n` threads (at least 1) until the lease is released; they are running when
        this returns, so a task submitted next starts at once."""
        n = max(1, int(n))
        with self._lock:
            self._demand += n
            lease = Lease(self, n, self._generation)
            self._resize()
        return lease

    def submit(self, fn: Callable[[], object]) -> None:
        """Run `fn()` on a worker. Its exceptions are the caller's to catch inside `fn` (an
        escaped one is dropped: the worker lives on). Hold a lease while tasks are queued,
        or they wait for some other user's threads."""
        self._queue.put(fn)

    def call(self, fn: Callable[[], T]) -> Future[T]:
        """Run `fn()` on a worker; its result or exception comes back through the future."""
        fut: Future[T] = Future()
        fut.set_running_or_notify_cancel()

        def task() -> None:
            try:
                result = fn()
            except BaseException as exc:  # noqa: BLE001 -- handed to whoever waits on the future
                fut.set_exception(exc)
            else:
                fut.set_result(result)

        self._queue.put(task)
        return fut

    def shutdown(self, timeout: float = 1.0) -> None:
        """Stop every thread once it is idle and wait up to `timeout` seconds for them to end.
        Later leases start threads again (a library used from an exit handler still works)."""
        with self._lock:
            for _ in range(self._threads):
                self._queue.put(_STOP)
            self._threads = 0
            self._keep = 0
            threads = [t for t in threading.enumerate() if t.name.startswith(self.prefix + "-")]
        deadline = time.monotonic() + timeout
        for t in threads:
            if t is not threading.current_thread():
                t.join(max(0.0, deadline - time.monotonic()))

    # -- internals -------------------------------------------------------------------------

    def _release(self, n: int, generation: int) -> None:
        with self._lock:
            if generation != self._generation:
                return  # a lease taken before a fork, released in the child
            self._demand = max(0, self._demand - n)
            if self._demand == 0:
                # Keep idle what is there, never start threads on a release: one released as
                # the interpreter exits (a stream left open, closed by the garbage collector
                # after the pool's shutdown at exit) would wait forever for a thread to start.
                self._keep = min(n, self._threads)
            self._resize()

    def _resize(self) -> None:
        """Start or stop threads so the pool holds what the leases ask for (lock held)."""
        want = min(self.limit, self._demand if self._demand else self._keep)
        while self._threads > want:
            self._queue.put(_STOP)  # an idle thread takes it before any task queued later
            self._threads -= 1
        while self._threads < want:
            self._made += 1
            t = threading.Thread(target=self._run, name=f"{self.prefix}-{self._made}", daemon=True)
            self._threads += 1
            try:
                t.start()
            except BaseException:
                if t.ident is None:  # never started (out of threads, or interrupted first)
                    self._threads -= 1
                raise

    def _run(self) -> None:
        get = self._queue.get
        while True:
            fn = get()
            if fn is _STOP:
                return
            try:
                fn()  # type: ignore[operator]
            except BaseException:  # noqa: BLE001, S110 -- a task's errors are its own to report
                pass
            del fn  # an idle worker holds nothing of its last task

    def _after_fork(self) -> None:
        """In a forked child the parent's threads do not exist: start from nothing."""
        self._lock = threading.RLock()
        self._queue = queue.SimpleQueue()
        self._threads = self._demand = self._keep = 0
        self._generation += 1


class PoolExecutor(ThreadPoolExecutor):
    """A `concurrent.futures` executor over a `WorkerPool`: each call holds a one-thread lease
    while it runs. paramio's I/O event loop takes it as its default executor, so its
    ``asyncio.to_thread`` calls (cache files, directory listings) run on the one pool too, not
    on asyncio's default executor (a second pool of non-daemon threads the interpreter joins at
    exit). A subclass only because asyncio accepts nothing else as a default executor; it
    starts no thread of its own, and `shutdown` leaves the shared pool running."""

    def __init__(self, workers: WorkerPool | None = None) -> None:
        super().__init__(max_workers=1)
        self._workers = workers

    def submit(self, fn: Callable[..., T], /, *args: object, **kwargs: object) -> Future[T]:
        workers = self._workers or pool()
        lease = workers.lease(1)

        def call() -> T:
            try:
                return fn(*args, **kwargs)
            finally:
                lease.release()

        return workers.call(call)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        return None  # the pool is shared and stops at exit


_POOL = WorkerPool()


def pool() -> WorkerPool:
    """The process's pool, shared by every load and write."""
    return _POOL


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_POOL._after_fork)
atexit.register(_POOL.shutdown)
