"""A bulk job: plan (tasks) -> run the tasks (here, or on Ray workers) -> commit, all or nothing.

An `Operation` plans on the driver from headers only and returns `Task` s: small, plain data
(what to read, byte counts, which output member to write). Each task runs the operation's
module-level task body, ``body(task, context) -> TaskResult``, wherever the engine places it:
in this process (``engine="local"``) or on a Ray worker (``engine="ray"``,
`paramio.scaleout.ray_engine`). A task reads its input ranges from the source itself and writes
its output itself; what it returns is small (sizes, digests, timings), never tensor data.

When every task has succeeded, the driver calls ``operation.commit(results)`` (the manifest or
index is written there, last). When any task fails for good, the driver calls
``operation.abort(results)`` with what the finished tasks reported, which removes what they
wrote, and raises the task's error.

Errors: a task error that is one of paramio's permanent errors (`FormatError`,
`InvalidArgumentError`, `MissingExtraError`, ...) is not retried; an I/O error (`OSError`,
which `SourceError` and `WriteError` are) is raised again as `TransientTaskError` so that Ray
retries it, as it retries a task whose worker died.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import socket
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Protocol

from paramio.core.errors import InvalidArgumentError, ParamioError

__all__ = [
    "DEFAULT_MEMORY_BOUND",
    "ENGINES",
    "JobReport",
    "Operation",
    "ProgressSnapshot",
    "Task",
    "TaskBody",
    "TaskContext",
    "TaskResult",
    "TransientTaskError",
    "WorkerStats",
    "check_engine",
    "undo",
]

ENGINES = ("local", "ray")
#: Bytes of buffers one task holds at once (read chunks and upload parts), by default.
DEFAULT_MEMORY_BOUND = 256 << 20
#: The smallest bound a task can keep: an upload part is at least 5 MiB (S3's rule).
MIN_MEMORY_BOUND = 24 << 20
#: How often a task reports its bytes to the driver, at most.
REPORT_EVERY_S = 0.2


@dataclasses.dataclass(frozen=True, slots=True)
class Task:
    """One unit of a job: `args` are plain data the task body reads (URLs, offsets, names),
    `input_bytes` what it will read (for progress), `output` the member it writes, if any."""

    id: str
    args: Mapping[str, Any]
    input_bytes: int
    output: str | None = None


@dataclasses.dataclass(slots=True)
class TaskResult:
    """What a task reports back: small facts only."""

    task_id: str
    #: The member written (a path or URL), if any, and its size in bytes.
    output: str | None = None
    size: int = 0
    #: Operation-specific small results (a member's digest, entries' digests).
    values: dict[str, Any] = dataclasses.field(default_factory=dict)
    bytes_read: int = 0
    seconds: float = 0.0
    #: ``node-address:pid`` of the process that ran it.
    worker: str = ""
    #: The task's peak memory above what its process held when its data began to move (RSS:
    #: `TaskContext.measuring`; else from the task's start), or None where
    #: the platform does not say.
    peak_bytes: int | None = None
    memory_bound: int = 0


class TransientTaskError(Exception):
    """A task failed in a way that a retry may fix (an I/O error). ``args[0]`` is the original
    exception (pickled with this one, as a retried task's last error is shown)."""

    @property
    def original(self) -> BaseException:
        first = self.args[0] if self.args else None
        return first if isinstance(first, BaseException) else self


#: Errors that a retry cannot fix: bad input, a bad argument, a missing extra, a bug.
_PERMANENT: tuple[type[BaseException], ...] = (ValueError, TypeError, KeyError, ImportError, NotImplementedError)


def is_transient(exc: BaseException) -> bool:
    """Whether a retry may fix `exc`: an I/O error that is not one of paramio's permanent ones
    (`FormatError` is a `ParamioError` but no `OSError`; `SourceError`/`WriteError` are)."""
    from paramio.core.errors import FormatError

    if isinstance(exc, (FormatError, *_PERMANENT)):
        return False
    status = getattr(exc, "status", None)  # a remote error's HTTP status: a 404 or 403 stays so
    if isinstance(status, int) and 400 <= status < 500 and status not in (408, 429):
        return False
    return isinstance(exc, (OSError, ConnectionError, TimeoutError))


def worker_name() -> str:
    """``host:pid`` of this process (a Ray worker names its node by address)."""
    try:
        host = socket.gethostbyname(socket.gethostname())
    except OSError:
        host = socket.gethostname()
    return f"{host}:{os.getpid()}"


class TaskContext:
    """What a task body is given besides its task: its memory bound, and `advance` to report
    bytes as they are read (sent to the driver at most every `REPORT_EVERY_S`)."""

    def __init__(
        self,
        task: Task,
        memory_bound: int,
        report: Callable[[str, str, int, bool], None] | None,
        worker: str | None = None,
    ) -> None:
        self.task = task
        self.memory_bound = memory_bound
        self.worker = worker or worker_name()
        self.done = 0
        self._report = report
        self._last = 0.0
        #: Set by `measuring`: the peak of the task's data phase.
        self.peak: int | None = None
        self.measured = False

    @contextlib.contextmanager
    def measuring(self) -> Iterator[None]:
        """Measure the task's peak memory over this block only: where its data moves, after the
        modules and clients it needs are loaded (a worker's first task imports them; that is
        the process's size, not the task's buffers)."""
        from paramio.scaleout.memory import PeakMemory

        with PeakMemory() as peak:
            yield
        self.peak = peak.peak
        self.measured = True

    def advance(self, n: int) -> None:
        self.done += n
        now = time.monotonic()
        if self._report is not None and now - self._last >= REPORT_EVERY_S:
            self._last = now
            self._report(self.task.id, self.worker, self.done, False)

    def started(self) -> None:
        """Report the task as started (its worker known to the driver) before any byte."""
        if self._report is not None:
            self._last = time.monotonic()
            self._report(self.task.id, self.worker, 0, False)

    def finished(self) -> None:
        if self._report is not None:
            self._report(self.task.id, self.worker, self.done, True)


#: ``body(task, context) -> TaskResult``: a module-level function (Ray imports it by name on a worker).
TaskBody = Callable[[Task, TaskContext], TaskResult]


class Operation(Protocol):
    """A bulk operation the engine runs (see the package docstring for how to add one)."""

    #: Short name for reports (``"convert"``, ``"digest"``).
    name: str
    #: The task body every task of this operation runs.
    body: TaskBody

    def plan(self) -> Sequence[Task]:
        """The tasks, planned on the driver from headers only; raises before anything runs."""
        ...

    def commit(self, results: Sequence[TaskResult]) -> list[str]:
        """Called once every task succeeded: check, publish, write the manifest last; returns
        the paths or URLs written. On an exception, the engine calls `abort` next."""
        ...

    def abort(self, results: Sequence[TaskResult]) -> list[str]:
        """Called when the job fails: remove what the finished tasks (`results`) and any failed
        attempt wrote; returns what could not be removed (named in the error)."""
        ...


@dataclasses.dataclass(slots=True)
class WorkerStats:
    tasks: int = 0
    bytes: int = 0
    seconds: float = 0.0

    @property
    def bytes_per_second(self) -> float:
        return self.bytes / self.seconds if self.seconds > 0 else 0.0


@dataclasses.dataclass(slots=True)
class ProgressSnapshot:
    """The driver's view while a job runs: bytes read of all tasks, and by task which worker runs
    it and how far it is (a retried task starts again from 0)."""

    done: int
    total: int
    tasks_done: int
    tasks: int
    #: task id -> (worker, bytes done, finished)
    running: dict[str, tuple[str, int, bool]]
    #: worker -> bytes per second since its first report
    throughput: dict[str, float]
    #: Attempts started beyond each task's first (a worker lost, an I/O error retried).
    retries: int = 0


@dataclasses.dataclass(slots=True)
class JobReport:
    """The summary of a finished job (``--json`` prints `to_dict`)."""

    operation: str
    engine: str
    address: str | None
    tasks: int
    bytes_total: int
    seconds: float
    results: list[TaskResult]
    outputs: list[str]
    memory_bound: int
    #: Task attempts beyond the first (Ray's retries: a worker lost, an I/O error).
    retries: int = 0

    @property
    def workers(self) -> dict[str, WorkerStats]:
        stats: dict[str, WorkerStats] = {}
        for r in self.results:
            w = stats.setdefault(r.worker, WorkerStats())
            w.tasks += 1
            w.bytes += r.bytes_read
            w.seconds += r.seconds
        return stats

    def to_dict(self) -> dict[str, object]:
        peaks = [r.peak_bytes for r in self.results if r.peak_bytes is not None]
        return {
            "operation": self.operation,
            "engine": self.engine,
            "address": self.address,
            "tasks": self.tasks,
            "retries": self.retries,
            "bytes": self.bytes_total,
            "seconds": round(self.seconds, 3),
            "bytes_per_second": round(self.bytes_total / self.seconds) if self.seconds > 0 else None,
            "memory_bound": self.memory_bound,
            "peak_task_bytes": max(peaks) if peaks else None,
            "outputs": list(self.outputs),
            "workers": [
                {"worker": k, "tasks": v.tasks, "bytes": v.bytes, "bytes_per_second": round(v.bytes_per_second)}
                for k, v in sorted(self.workers.items())
            ],
        }


def check_engine(engine: str, address: str | None) -> None:
    """Raise `InvalidArgumentError` for an engine paramio does not have, or an `address` given
    to the local one."""
    if engine not in ENGINES:
        raise InvalidArgumentError(f"engine={engine!r}: expected one of {', '.join(ENGINES)}")
    if engine == "local" and address is not None:
        raise InvalidArgumentError(f"address={address!r} is for engine='ray'; the local engine runs here")


def check_memory_bound(bound: int) -> int:
    if isinstance(bound, bool) or not isinstance(bound, int) or bound < MIN_MEMORY_BOUND:
        raise InvalidArgumentError(
            f"memory_bound={bound!r}: a task needs at least {MIN_MEMORY_BOUND} bytes (upload parts are 5 MiB or more)"
        )
    return bound


def run_task(
    body: TaskBody,
    task: Task,
    memory_bound: int,
    report: Callable[[str, str, int, bool], None] | None,
    worker: str | None = None,
) -> TaskResult:
    """Run one task here: its body within the memory bound, timed, its peak memory measured;
    an I/O error comes out as `TransientTaskError` (retried), any other error as it is."""
    from paramio.formats.output import bounded_copies
    from paramio.scaleout.memory import PeakMemory

    context = TaskContext(task, memory_bound, report, worker)
    context.started()
    start = time.monotonic()
    try:
        with PeakMemory() as peak, bounded_copies(copy_chunk(memory_bound)):
            result = body(task, context)
    except Exception as exc:
        if is_transient(exc):
            raise TransientTaskError(exc) from exc
        raise
    result.seconds = time.monotonic() - start
    result.worker = context.worker
    result.peak_bytes = context.peak if context.measured else peak.peak
    result.memory_bound = memory_bound
    if not result.bytes_read:
        result.bytes_read = context.done
    context.finished()
    return result


def copy_chunk(memory_bound: int) -> int:
    """Bytes of a source one copy holds at once within `memory_bound` (an eighth: the rest is the
    upload's parts and the copies of them the upload makes)."""
    return max(1 << 20, memory_bound // 8)


def upload_part(memory_bound: int) -> int:
    """An upload's part size within `memory_bound`: a quarter, at least S3's 5 MiB."""
    return max(5 << 20, memory_bound // 4)


def undo(operation: Operation, results: Sequence[TaskResult], exc: BaseException) -> None:
    """Undo the job; what could not be removed is named on `exc` (a note) and, for a paramio
    error, in its message."""
    try:
        left = operation.abort(results)
    except Exception as problem:  # the job's own error matters more; say what cleaning up hit
        left = [f"(cleaning up failed: {problem})"]
    if left:
        note = f"the failed {operation.name} job left: {', '.join(left)}"
        exc.add_note(note)
        if isinstance(exc, ParamioError) and exc.args:
            exc.reason = f"{exc.reason}; {note}"
            exc.args = (f"{exc.args[0]}; {note}", *exc.args[1:])
