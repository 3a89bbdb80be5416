"""Running a job's tasks on a Ray cluster (``engine="ray"``): the one module that imports Ray.

Each task is a Ray task of one CPU running `paramio.scaleout.engine.run_task` on a worker, with
Ray's ``max_retries`` (a worker that died is retried by Ray itself) and ``retry_exceptions``
limited to `TransientTaskError` (an I/O error), so paramio's permanent errors fail the job at
once. Arguments and results are small plain data: no tensor byte goes through the driver or
Ray's object store. Tasks report progress to a small actor (`ProgressBoard`) the driver reads.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from paramio.core.errors import InvalidArgumentError, import_extra
from paramio.scaleout.engine import (
    Operation,
    ProgressSnapshot,
    Task,
    TaskBody,
    TaskResult,
    TransientTaskError,
    run_task,
    undo,
)
from paramio.scaleout.progress import BoardHost

__all__ = ["connect", "run_on_ray"]

_POLL_S = 0.25


def _ray() -> Any:
    return import_extra("ray", "ray", what="engine='ray' needs Ray")


def connect(address: str | None) -> Any:
    """Ray, connected to the cluster at `address` (``auto``: the one this machine belongs to;
    ``ray://HOST:PORT``: a Ray client; ``HOST:PORT``: the cluster's GCS; None: ``RAY_ADDRESS``
    or a new local one) unless this process is connected already."""
    ray = _ray()
    if ray.is_initialized():
        _same_cluster(ray, address)
        return ray
    if address is not None and not address:
        raise InvalidArgumentError("address='': expected auto, ray://HOST:PORT or HOST:PORT")
    ray.init(address=address, logging_level="ERROR", log_to_driver=False)
    return ray


#: This driver's `BoardHost` actor, and the connection it belongs to (node id, job id).
_HOST: list[tuple[tuple[str, str], Any]] = []
#: Handles of hosts from earlier connections, never dropped: Ray numbers a driver's actors the
#: same way in every session (the first driver's job is always 01000000), so dropping an old
#: session's handle in a new one takes a reference away from the new actor with its id, which
#: Ray then ends ("all references to the actor were removed").
_STALE: list[Any] = []


def _open_board(ray: Any, job: str, tasks: Sequence[Task]) -> Any:
    """This driver's board host (started on its first job, reused after), with `job`'s board
    open: waited for, so that no task's report can reach the host before its board exists."""
    context = ray.get_runtime_context()
    session = (context.get_node_id(), context.get_job_id())
    for attempt in range(2):
        if _HOST and _HOST[0][0] != session:
            _STALE.append(_HOST.pop()[1])
        if not _HOST:
            _HOST.append((session, ray.remote(num_cpus=0)(BoardHost).remote()))
        host = _HOST[0][1]
        try:
            ray.get(host.open.remote(job, tasks))
            return host
        except ray.exceptions.RayActorError:  # the host died (its node went away): start another
            _HOST.clear()
            if attempt:
                raise
    raise AssertionError("unreachable")


def _same_cluster(ray: Any, address: str | None) -> None:
    """Refuse an `address` naming another cluster than the one this process is connected to
    (Ray connects a process to one cluster; the job would run on the wrong one)."""
    if address is None or address == "auto" or address.startswith("ray://"):
        return
    current = str(ray.get_runtime_context().gcs_address or "")
    if current and address.rpartition(":")[2] != current.rpartition(":")[2]:
        raise InvalidArgumentError(
            f"address={address!r}: this process is connected to the Ray cluster at {current}; "
            "call ray.shutdown() first to use another"
        )


def _remote_task(
    body: TaskBody, task: Task, memory_bound: int, board: Any, job: str
) -> TaskResult:  # pragma: no cover - runs on a Ray worker
    def report(task_id: str, worker: str, done: int, finished: bool) -> None:
        board.report.remote(job, task_id, worker, done, finished)

    import os

    ray = _ray()
    return run_task(body, task, memory_bound, report, f"{ray.util.get_node_ip_address()}:{os.getpid()}")


def run_on_ray(
    operation: Operation,
    tasks: Sequence[Task],
    *,
    address: str | None,
    memory_bound: int,
    max_retries: int,
    progress: Callable[[ProgressSnapshot], None] | None,
) -> tuple[list[TaskResult], int]:
    """Run `tasks` on the cluster; returns the results in task order and the number of retried
    attempts. On a task's final failure: the other tasks are cancelled, `Operation.abort` undoes
    what finished ones wrote, and the task's own error is raised."""
    ray = connect(address)
    job = uuid.uuid4().hex
    board = _open_board(ray, job, tasks)
    remote = ray.remote(_remote_task).options(
        num_cpus=1, max_retries=max_retries, retry_exceptions=[TransientTaskError], name=f"paramio.{operation.name}"
    )
    refs = {remote.remote(operation.body, t, memory_bound, board, job): t for t in tasks}
    pending = list(refs)
    results: dict[str, TaskResult] = {}
    try:
        while pending:
            ready, pending = ray.wait(pending, num_returns=len(pending), timeout=_POLL_S)
            failure: BaseException | None = None
            for ref in ready:  # every one of them: a result beside a failure is still undone by abort
                try:
                    result = results[refs[ref].id] = ray.get(ref)
                except Exception as exc:
                    failure = failure or _cause(ray, exc)
                    continue
                # The task's own last report may still be on its way: the board hears it from here too,
                # before the snapshot below (one caller's actor calls run in order).
                board.report.remote(job, result.task_id, result.worker, result.bytes_read, True)
            if failure is not None:
                raise failure
            if progress is not None:
                progress(ray.get(board.snapshot.remote(job)))
        snapshot: ProgressSnapshot = ray.get(board.snapshot.remote(job))
        if progress is not None:
            progress(snapshot)
        retries = snapshot.retries
    except BaseException as exc:
        # Interrupt the other tasks (their uploads abort, their temporaries go), then kill what is
        # still running: `abort` must not race a task still writing.
        for ref in pending:
            ray.cancel(ref, force=False)
        ended = _wait_cancelled(ray, pending, 10.0)
        rest = [ref for ref in pending if ref not in ended]
        for ref in rest:
            ray.cancel(ref, force=True)
        ended += _wait_cancelled(ray, rest, 10.0)
        for ref in ended:  # finished before the cancel reached it: its output counts
            try:
                done = ray.get(ref, timeout=0)
            except Exception:  # cancelled, or failed: nothing of it to collect
                continue
            results[refs[ref].id] = done
        undo(operation, [results[t.id] for t in tasks if t.id in results], exc)
        raise
    finally:
        board.close.remote(job)
    return [results[t.id] for t in tasks], retries


def _wait_cancelled(ray: Any, pending: Sequence[Any], seconds: float) -> list[Any]:
    """Wait up to `seconds` for cancelled tasks to end; returns those that ended."""
    ended: list[Any] = []
    deadline = time.monotonic() + seconds
    while pending and time.monotonic() < deadline:
        ready, pending = ray.wait(list(pending), num_returns=len(pending), timeout=0.5)
        ended.extend(ready)
    return ended


def _cause(ray: Any, exc: BaseException) -> BaseException:
    """The task's own error out of Ray's wrapper (`RayTaskError.cause`), a transient one unwrapped."""
    cause = getattr(exc, "cause", None)
    if isinstance(exc, ray.exceptions.RayTaskError) and isinstance(cause, BaseException):
        exc = cause
    if isinstance(exc, TransientTaskError):
        return exc.original
    return exc
