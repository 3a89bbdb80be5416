"""`run_job`: plan an operation, run its tasks on an engine, commit (`paramio.scaleout.engine`)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from paramio.core.errors import InvalidArgumentError
from paramio.scaleout.engine import (
    DEFAULT_MEMORY_BOUND,
    JobReport,
    Operation,
    ProgressSnapshot,
    Task,
    TaskResult,
    TransientTaskError,
    check_engine,
    check_memory_bound,
    run_task,
    undo,
)

__all__ = ["run_job"]


def run_job(
    operation: Operation,
    *,
    engine: str = "local",
    address: str | None = None,
    memory_bound: int = DEFAULT_MEMORY_BOUND,
    max_retries: int = 3,
    progress: Callable[[ProgressSnapshot], None] | None = None,
) -> JobReport:
    """Plan `operation`, run its tasks on `engine`, and commit, all or nothing (module docstring).
    Returns the job's summary; raises the first task error that is not retried (or whose retries
    ran out), after `Operation.abort` removed what the job wrote."""
    check_engine(engine, address)
    check_memory_bound(memory_bound)
    if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
        raise InvalidArgumentError(f"max_retries={max_retries!r}: expected a count, 0 or more")
    start = time.monotonic()
    tasks = list(operation.plan())
    ids = [t.id for t in tasks]
    if len(set(ids)) != len(ids):
        raise InvalidArgumentError(f"{operation.name}: the plan names a task twice")
    total = sum(t.input_bytes for t in tasks)
    retries = 0
    if engine == "ray":
        from paramio.scaleout.ray_engine import run_on_ray

        results, retries = run_on_ray(
            operation, tasks, address=address, memory_bound=memory_bound, max_retries=max_retries, progress=progress
        )
    else:
        results = _run_here(operation, tasks, memory_bound, progress)
    try:
        outputs = operation.commit(results)
    except BaseException as exc:
        undo(operation, results, exc)
        raise
    return JobReport(
        operation.name,
        engine,
        address,
        len(tasks),
        total,
        time.monotonic() - start,
        results,
        outputs,
        memory_bound,
        retries,
    )


def _run_here(
    operation: Operation,
    tasks: Sequence[Task],
    memory_bound: int,
    progress: Callable[[ProgressSnapshot], None] | None,
) -> list[TaskResult]:
    from paramio.scaleout.progress import ProgressBoard

    board = ProgressBoard(tasks)
    results: list[TaskResult] = []
    for task in tasks:  # one at a time: the local engine is the plan and commit without a cluster

        def report(task_id: str, worker: str, done: int, finished: bool) -> None:
            board.report(task_id, worker, done, finished)
            if progress is not None:
                progress(board.snapshot())

        try:
            results.append(run_task(operation.body, task, memory_bound, report))
        except TransientTaskError as exc:
            undo(operation, results, exc.original)
            raise exc.original from None
        except BaseException as exc:
            undo(operation, results, exc)
            raise
    return results
