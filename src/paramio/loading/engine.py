"""The loading engine: one job's state, and the sync and async loops that drive it.

`LoadJob` holds everything about one load: the tensors, the tasks still to start (from the pure
planner in `plan`), the byte budget, the staging pool, and the slots being filled. Its methods
are the same for both loops: `next_task` (start one if the budget allows), `run_task` (in a
worker thread: read each piece through `spans.read_span`, straight into the destination or via a
staging buffer), `complete` (release the budget; which tensors are now whole) and `deliver`.
`run_sync` and `run_async` (asyncio) drive it over the process's one worker pool
(`paramio.sources.workers`):
local reads are blocking ``pread`` calls that release the GIL, so threads overlap them.

With a `Verifier` (``verify=True``) each tensor of a local file is one task read front to back by
one worker (`plan.plan_tasks` ``whole``), which feeds the tensor's hasher each step of bytes
right after reading it, while they are in the CPU's cache (`HASH_STEP`), and checks the digest
before the task ends: the verified load reads every byte once and hashes it once. A tensor from
a remote source keeps its pieces, read side by side (one worker per tensor would leave one or
two requests in flight where eight are needed), and is hashed where it landed as it is
delivered; so is an empty one.

Cancellation (Ctrl-C, a task cancel, a consumer leaving the stream early, an error on one
tensor) sets the job's event: workers stop before their next piece, the loop waits for the reads
already in the kernel (each at most one chunk) and frees the staging buffers and partly filled
tensors before the exception propagates. No thread is left reading; the idle workers stay for
the next load.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import threading
import time
from collections.abc import AsyncGenerator, Callable, Collection, Generator, Sequence

from paramio.core.entry import ParameterEntry
from paramio.loading.bounds import allocate
from paramio.loading.budget import ByteBudget, StagingPool
from paramio.loading.io import IoPlan
from paramio.loading.plan import Piece, Task, plan_tasks
from paramio.loading.spans import read_in_place, read_span
from paramio.loading.summary import LoadSummary
from paramio.loading.targets import Slot, Target
from paramio.loading.verified import Verifier
from paramio.sources.aio import cancelled_by
from paramio.sources.workers import THREAD_PREFIX, pool

__all__ = [
    "DIRECT_CONCURRENCY",
    "HASH_STEP",
    "REMOTE_CONCURRENCY",
    "THREAD_PREFIX",
    "LoadJob",
    "choose_chunk",
    "default_concurrency",
    "run_async",
    "run_sync",
]

_MAX_CHUNK = 16 << 20
_MIN_CHUNK = 64 << 10
#: A verified load's read-then-hash step for a local file (``pread``, a splat): small enough that
#: the bytes a read just wrote are still in the core's cache when the hasher reads them (L2 is
#: 1-4 MiB per core on current x86 and arm64), large enough that a syscall per step is noise.
#: Remote and O_DIRECT reads go a chunk at a time (one request, one aligned read each). Measured
#: (docs/integrity.md): 1 MiB steps beat 256 KiB (2x slower with blake3) and were as fast as or
#: faster than 2, 4 and 16 MiB ones.
HASH_STEP = 1 << 20
#: How often (seconds) a loop waiting on whole-tensor tasks reports their bytes to progress.
_PROGRESS_EVERY = 0.2


#: Default workers when any tensor comes from a source whose reads are worth merging (a URL:
#: `ByteSource.max_gap` > 0): such reads wait on the network, not a core, and P8 measured 2 GiB
#: from loopback S3 at 1.03x one whole GET with 8 in flight against 1.15-1.65x with 2.
REMOTE_CONCURRENCY = 8
#: Default workers when a file is read with O_DIRECT (``io="direct"``, or ``"auto"`` for a cold
#: file): a thread waiting on a direct read uses no CPU, and a fresh tensor's first write (the
#: kernel zeroing its pages, in the reading thread) leaves the device idle unless other reads
#: are queued. P11 (2 GiB cold, 2 cores): see benchmarks/results/p11-load.md.
DIRECT_CONCURRENCY = 8


def default_concurrency(entries: Sequence[ParameterEntry], io: IoPlan) -> int:
    """Workers for a load that did not say: one per core (2..16), at least `REMOTE_CONCURRENCY`
    when a URL is read and `DIRECT_CONCURRENCY` when a file is read with O_DIRECT."""
    n = min(16, max(2, os.cpu_count() or 2))
    if io.direct:
        n = max(n, DIRECT_CONCURRENCY)
    if any(e.source is not None and e.source.max_gap > 0 for e in entries):
        n = max(n, REMOTE_CONCURRENCY)
    return n


def choose_chunk(budget: int, concurrency: int) -> int:
    """Piece size: every worker can hold two pieces within the budget (one reading, one being
    copied or waiting), pieces are big enough that per-task overhead is noise (64 KiB unless
    the budget is tiny) and no bigger than 16 MiB (the first tensors land soon)."""
    workers = max(1, concurrency)
    floor = min(_MIN_CHUNK, budget // workers)
    return max(1, floor, min(_MAX_CHUNK, budget // (2 * workers)))


class LoadJob:
    """One load's state; see the module docstring."""

    def __init__(
        self,
        items: Sequence[tuple[str, ParameterEntry]],
        target: Target,
        *,
        budget: int,
        concurrency: int | None = None,
        progress: Callable[[int], None] | None = None,
        io: str = "auto",
        drop_cache: bool = False,
        verifier: Verifier | None = None,
    ) -> None:
        self.keys = [k for k, _ in items]
        self.verifier = verifier
        self.entries = [e for _, e in items]
        self.target = target
        self.io = IoPlan(self.entries, io, drop_cache=drop_cache)
        self.concurrency = concurrency if concurrency is not None else default_concurrency(self.entries, self.io)
        self.chunk = choose_chunk(budget, self.concurrency)
        self.io.set_chunk(self.chunk)
        self.budget = ByteBudget(budget)
        self.staging = StagingPool(budget, self.chunk, target.make_staging)
        self.progress = progress
        self.cancel = threading.Event()
        self._slots: list[Slot | None] = [None] * len(self.entries)
        # Tensors the target takes as views of a mapped file (io="mmap") read nothing: their
        # slots exist from the start and their pieces are empty.
        self._mapped = [False] * len(self.entries)
        lengths = []
        for i, e in enumerate(self.entries):
            sio = self.io.of(e)
            if sio is not None and sio.mapping is not None and e.length:
                slot = target.map_view(self.keys[i], e, sio.mapping)
                if slot is not None:
                    self._slots[i] = slot
                    self._mapped[i] = True
                    self.io.mapped(e)
                    # Verified: a worker hashes the mapped bytes (the only pass over them).
                    lengths.append(e.length if verifier is not None else 0)
                    continue
            lengths.append(e.length)
        # Verified: which tensors one worker reads and hashes whole (`_read_hashed`).
        self._whole = [verifier is not None and (e.source is None or e.source.max_gap == 0) for e in self.entries]
        self._tasks = plan_tasks(lengths, self.chunk, whole=self._whole)  # O(tensors), made as taken
        #: Nothing to read (every tensor mapped from its file, or empty): the loop completes the
        #: tasks itself, with no worker (`io="mmap"`'s first call in a process starts no thread).
        self.reads_nothing = not any(lengths)
        self._checked = [False] * len(self.entries)  # verified: digest checked by its worker
        # Bytes whole-tensor tasks have read so far, and how many of them progress was told of
        # (`report_streamed`: a bar moves while one worker reads a large tensor), by id(task).
        self._streamed: dict[int, int] = {}
        self._reported: dict[int, int] = {}
        self._left = self._tasks.pieces_per_slot()
        self._held: dict[int, int] = {}  # id(task) -> bytes it holds of the budget
        self._reading = 0
        self._reading_lock = threading.Lock()
        self._idle = threading.Condition(self._reading_lock)
        self.total_bytes = sum(e.length for e in self.entries)
        self.bytes_done = 0
        self.delivered = 0
        self.started = time.perf_counter()
        self.first_tensor_s: float | None = None
        self.finished_s: float | None = None

    # -- the coordinator's side (one thread, or the event loop) ---------------------------

    @property
    def pending(self) -> bool:
        return bool(self._tasks)

    @property
    def reading(self) -> int:
        """Workers inside `run_task` now (0 once a load has ended, however it ended)."""
        return self._reading

    def next_task(self) -> Task | None:
        """The next task if its bytes fit the budget now (its tensors allocated), else None."""
        if not self._tasks or self.cancel.is_set():
            return None
        task = self._tasks[0]
        for p in task.pieces:
            if self._slots[p.slot] is None:
                e = self.entries[p.slot]
                sio = self.io.of(e)
                direct = sio is not None and sio.direct is not None
                self._slots[p.slot] = allocate(self.target, self.keys[p.slot], e, direct=direct)
        # Staged pieces each take a whole staging buffer; direct reads take only their bytes. A
        # whole tensor read in chunks by one worker (verified) has one chunk in flight at a time.
        staged = any(
            self._slots[p.slot].host is None and p.length and not self._mapped[p.slot]  # type: ignore[union-attr]
            for p in task.pieces
        )
        need = self.chunk if staged else min(task.nbytes, self.chunk)
        if not self.budget.try_acquire(need):
            return None
        self._held[id(task)] = need
        for p in task.pieces:  # the kernel starts reading ahead of the worker (pread files)
            # A whole tensor (verified) is hinted a chunk at a time, one ahead of its worker
            # (`_read_hashed`): a hint of a GiB would fill the page cache long before it is read.
            self.io.will_need(self.entries[p.slot], p.offset, min(p.length, self.chunk))
        return self._tasks.popleft()

    @property
    def streams_progress(self) -> bool:
        """Whether the loop should call `report_streamed` while it waits (some tensor is read
        whole by one worker, and someone wants progress)."""
        return self.progress is not None and any(self._whole)

    def report_streamed(self) -> None:
        """Tell progress of the bytes whole-tensor tasks have read since the last report."""
        new = 0
        with self._reading_lock:
            for tid, n in self._streamed.items():
                new += n - self._reported.get(tid, 0)
                self._reported[tid] = n
        if new:
            self.bytes_done += new
            if self.progress is not None:
                self.progress(new)

    def complete(self, task: Task) -> list[int]:
        """Release `task`'s budget; the slots it made whole, in order."""
        self.budget.release(self._held.pop(id(task)))
        with self._reading_lock:
            self._streamed.pop(id(task), None)
            told = self._reported.pop(id(task), 0)
        nbytes = task.nbytes - told
        for p in task.pieces:
            if self._mapped[p.slot] and self.verifier is None:
                nbytes += self.entries[p.slot].length  # mapped, not read: counted when delivered
        self.bytes_done += nbytes
        if self.progress is not None and nbytes:
            self.progress(nbytes)
        whole = []
        for p in task.pieces:
            self._left[p.slot] -= 1
            if self._left[p.slot] == 0:
                whole.append(p.slot)
        return whole

    def deliver(self, slot: int) -> tuple[str, object]:
        s = self._slots[slot]
        assert s is not None
        self._slots[slot] = None  # the caller owns the array now
        array = self.target.finish(s)
        if self.verifier is not None and not self._checked[slot]:
            self.verifier.check(self.keys[slot], array)  # no worker hashed it (remote, or empty)
        self.delivered += 1
        if self.first_tensor_s is None:
            self.first_tensor_s = time.perf_counter() - self.started
        return self.keys[slot], array

    def end(self) -> None:
        """After the loop, however it ended: free staging buffers and unfinished tensors."""
        self.io.close(complete=not self._tasks and not self._held and self.delivered == len(self.entries))
        self.cancel.set()
        self._slots = [None] * len(self._slots)
        for n in self._held.values():
            self.budget.release(n)
        self._held.clear()
        self.staging.clear()
        self.target.close()
        self.finished_s = time.perf_counter() - self.started

    def summary(self) -> LoadSummary:
        seconds = self.finished_s if self.finished_s is not None else time.perf_counter() - self.started
        io, io_note = self.io.describe()
        return LoadSummary(
            tensors=self.delivered,
            bytes=self.bytes_done,
            seconds=seconds,
            first_tensor_seconds=self.first_tensor_s,
            into=self.target.name,
            device=self.target.device,
            budget=self.budget.limit,
            concurrency=self.concurrency,
            chunk=self.chunk,
            peak_in_flight=self.budget.high_water,
            peak_staging=self.staging.high_water,
            io=io,
            io_note=io_note,
        )

    # -- the workers' side --------------------------------------------------------------

    def run_task(self, task: Task) -> None:
        # A remote read the task waits on stops (its requests cancelled and waited for) once
        # the job is cancelled: Ctrl-C must not wait for stalled requests to use up retries.
        with cancelled_by(self.cancel):
            self._run_task(task)

    def _run_task(self, task: Task) -> None:
        with self._reading_lock:
            self._reading += 1
        try:
            for p in task.pieces:
                if self.cancel.is_set():
                    return  # the loop is ending; nothing waits for the rest of this task
                if self._whole[p.slot]:
                    if p.length:
                        self._read_hashed(p, task)
                    continue
                if not p.length:
                    continue  # an empty tensor, or one mapped from its file
                slot = self._slots[p.slot]
                assert slot is not None
                entry = self.entries[p.slot]
                sio = self.io.of(entry)
                reader = sio.direct if sio is not None else None
                if slot.padded is not None and sio is not None and sio.direct is not None:
                    read_in_place(entry, p.offset, p.length, slot.padded, sio.direct)
                    self.io.done_reading(entry, p.offset, p.length)
                    continue
                if slot.host is not None:
                    read_span(entry, p.offset, slot.host[p.offset : p.offset + p.length], reader)
                    self.io.done_reading(entry, p.offset, p.length)
                    continue
                buf = self.staging.get()
                try:
                    view = buf[1][: p.length]
                    read_span(entry, p.offset, view, reader)
                    self.io.done_reading(entry, p.offset, p.length)
                    self.target.upload(slot, p.offset, view, buf[0])
                finally:
                    self.staging.put(buf)
        finally:
            with self._idle:
                self._reading -= 1
                self._idle.notify_all()

    def _advance(self, task: Task, n: int) -> None:
        with self._reading_lock:
            self._streamed[id(task)] = self._streamed.get(id(task), 0) + n

    def _read_hashed(self, p: Piece, task: Task) -> None:
        """Read a whole tensor front to back (`p` is all of it), feeding its hasher each step
        right after it lands, then check the digest (`IntegrityError` on a mismatch)."""
        assert self.verifier is not None and p.offset == 0
        slot = self._slots[p.slot]
        assert slot is not None
        entry = self.entries[p.slot]
        sio = self.io.of(entry)
        reader = sio.direct if sio is not None else None
        hasher = self.verifier.hasher()
        n, chunk = p.length, self.chunk
        step = min(HASH_STEP, chunk) if reader is None else chunk
        if self._mapped[p.slot]:
            assert sio is not None and sio.mapping is not None
            mapped = memoryview(sio.mapping)[entry.offset : entry.offset + n]
            try:
                for start in range(0, n, HASH_STEP):
                    if self.cancel.is_set():
                        return
                    hasher.update(mapped[start : start + HASH_STEP])
                    self._advance(task, len(mapped[start : start + HASH_STEP]))
            finally:
                mapped.release()
        elif slot.padded is not None and sio is not None and sio.direct is not None:
            for start in range(0, n, chunk):  # O_DIRECT lands by DMA: no cache to catch
                if self.cancel.is_set():
                    return
                m = min(chunk, n - start)
                read_in_place(entry, start, m, slot.padded, sio.direct)
                self.io.done_reading(entry, start, m)
                hasher.update(slot.host[start : start + m])  # type: ignore[index]
                self._advance(task, m)
        elif slot.host is not None:
            for start in range(0, n, step):
                if self.cancel.is_set():
                    return
                if start % chunk == 0 and start + chunk < n:  # the next chunk: read ahead of us
                    self.io.will_need(entry, start + chunk, min(chunk, n - start - chunk))
                view = slot.host[start : start + step]
                read_span(entry, start, view, reader)
                hasher.update(view)
                self.io.done_reading(entry, start, len(view))
                self._advance(task, len(view))
        else:
            buf = self.staging.get()
            try:
                for start in range(0, n, chunk):
                    if self.cancel.is_set():
                        return
                    if start + chunk < n:
                        self.io.will_need(entry, start + chunk, min(chunk, n - start - chunk))
                    m = min(chunk, n - start)
                    staged = buf[1][:m]
                    for s in range(0, m, step):
                        view = staged[s : s + step]
                        read_span(entry, start + s, view, reader)
                        hasher.update(view)
                    self.io.done_reading(entry, start, m)
                    self._advance(task, m)
                    self.target.upload(slot, start, staged, buf[0])
            finally:
                self.staging.put(buf)
        self.verifier.compare(self.keys[p.slot], hasher.hexdigest())
        self._checked[p.slot] = True

    def wait_idle(self) -> None:
        """Return once no worker is inside a task of this job. Call after setting `cancel`:
        tasks still queued then return before their first read, so none starts reading later."""
        with self._idle:
            while self._reading:
                self._idle.wait(0.05)


def _retrieve(fut: asyncio.Future[None]) -> None:
    if not fut.cancelled():
        fut.exception()


def _check(fut: asyncio.Future[None]) -> None:
    exc = fut.exception()
    if exc is not None:
        raise exc


def run_sync(job: LoadJob) -> Generator[tuple[str, object], None, None]:
    """Yield ``(key, array)`` as each tensor becomes whole. Leaving early cancels the rest.

    Completions come back through a `queue.SimpleQueue` rather than `concurrent.futures.wait`:
    ``wait`` takes every future's lock in a Python loop, so a Ctrl-C landing there could leave
    one held and the worker completing that future blocked; ``SimpleQueue.get`` is one C call
    that holds no lock a worker needs.
    """
    done: queue.SimpleQueue[tuple[Task, BaseException | None]] = queue.SimpleQueue()

    def work_on(task: Task) -> Callable[[], None]:
        def work() -> None:
            try:
                job.run_task(task)
            except BaseException as exc:  # noqa: BLE001 -- handed to the loop, which raises it
                done.put((task, exc))
            else:
                done.put((task, None))

        return work

    if job.reads_nothing:
        yield from _run_inline(job)
        return
    workers = pool()
    outstanding = 0
    lease = workers.lease(job.concurrency)
    try:
        while True:
            while outstanding < 2 * job.concurrency:  # one queued per worker: no idle gap
                task = job.next_task()
                if task is None:
                    break
                workers.submit(work_on(task))
                outstanding += 1
            if not outstanding:
                break
            try:
                task, exc = done.get(timeout=_PROGRESS_EVERY if job.streams_progress else None)
            except queue.Empty:
                job.report_streamed()  # one worker is still reading a large tensor
                continue
            outstanding -= 1
            if exc is not None:
                raise exc
            for slot in job.complete(task):
                yield job.deliver(slot)
    finally:
        job.cancel.set()
        job.wait_idle()
        lease.release()
        job.end()


def _run_inline(job: LoadJob) -> Generator[tuple[str, object], None, None]:
    """`run_sync` for a job that reads no byte: its tasks complete in this thread."""
    try:
        while (task := job.next_task()) is not None:
            job.run_task(task)
            for slot in job.complete(task):
                yield job.deliver(slot)
    finally:
        job.cancel.set()
        job.end()


async def run_async(job: LoadJob) -> AsyncGenerator[tuple[str, object], None]:
    """The asyncio twin of `run_sync`, over the same workers and job methods. It never blocks
    the event loop: even when it ends early, it waits for its running tasks by awaiting them."""
    if job.reads_nothing:
        with contextlib.closing(_run_inline(job)) as inline:  # closed (job ended) if we are
            for key, array in inline:
                yield key, array
        return
    loop = asyncio.get_running_loop()
    workers = pool()
    inflight: dict[asyncio.Future[None], Task] = {}

    def work_for(fut: asyncio.Future[None], task: Task) -> Callable[[], None]:
        def work() -> None:
            exc: BaseException | None = None
            try:
                job.run_task(task)
            except BaseException as e:  # noqa: BLE001 -- handed to the loop, which raises it
                exc = e
            try:
                loop.call_soon_threadsafe(_settle, fut, exc)
            except RuntimeError:
                pass  # the loop is closed: nobody waits for this task any more

        return work

    lease = workers.lease(job.concurrency)
    try:
        while True:
            while len(inflight) < 2 * job.concurrency:  # one queued per worker: no idle gap
                task = job.next_task()
                if task is None:
                    break
                fut: asyncio.Future[None] = loop.create_future()
                inflight[fut] = task
                workers.submit(work_for(fut, task))
            if not inflight:
                break
            done, _ = await asyncio.wait(
                inflight,
                timeout=_PROGRESS_EVERY if job.streams_progress else None,
                return_when=asyncio.FIRST_COMPLETED,
            )
            if not done:
                job.report_streamed()
                continue
            for f in done:
                task = inflight.pop(f)
                _check(f)
                for slot in job.complete(task):
                    yield job.deliver(slot)
    finally:
        job.cancel.set()
        for f in inflight:  # results of tasks nobody waits for any more: mark them retrieved
            f.add_done_callback(_retrieve)
        # Wait for the reads already in the kernel (at most one chunk each) before freeing
        # anything, so a cancelled task leaves no worker writing into freed memory. Every
        # submitted task settles its future once it has left `run_task` (queued ones at once,
        # the job being cancelled), so awaiting them is waiting for the workers.
        await _settled(inflight)
        job.wait_idle()  # returns at once: every task has left `run_task`
        lease.release()
        job.end()


async def _settled(futures: Collection[asyncio.Future[None]]) -> None:
    """Wait until every one of `futures` is done, even through cancellations of this task
    (re-raised once they are: cleanup that stopped halfway would free memory being written)."""
    pending = [f for f in futures if not f.done()]
    cancelled: BaseException | None = None
    while pending:
        try:
            await asyncio.wait(pending)
        except asyncio.CancelledError as exc:
            cancelled = exc
        pending = [f for f in pending if not f.done()]
    if cancelled is not None:
        raise cancelled


def _settle(fut: asyncio.Future[None], exc: BaseException | None) -> None:
    if fut.done():
        return
    if exc is None:
        fut.set_result(None)
    else:
        fut.set_exception(exc)
