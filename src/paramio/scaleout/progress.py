"""Progress of a job on its driver: bytes done of the total across workers, and each worker's
throughput. Tasks report ``(task, worker, bytes done, finished)``; a retried task starts from 0
again, so a task's latest report replaces its earlier ones. `ProgressBoard` runs in the driver
(local engine) or, on Ray, in a small actor the tasks report to (`BoardHost`, one per driver,
holding the board of each of its jobs, so that a job costs an actor call, not a new worker
process: `paramio.scaleout.ray_engine`).
`show_progress` draws it with `paramio.formats.progress.ByteProgress` (a bar on a terminal)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TextIO

from paramio.scaleout.engine import ProgressSnapshot, Task

__all__ = ["BoardHost", "ProgressBoard", "show_progress"]


class ProgressBoard:
    def __init__(self, tasks: Sequence[Task]) -> None:
        self.sizes = {t.id: t.input_bytes for t in tasks}
        self.total = sum(self.sizes.values())
        self.state: dict[str, tuple[str, int, bool]] = {}
        #: worker -> (first report time, bytes finished by its done tasks)
        self.first: dict[str, float] = {}
        self.finished_bytes: dict[str, int] = {}
        self.starts: dict[str, int] = {}

    def report(self, task_id: str, worker: str, done: int, finished: bool) -> None:
        now = time.monotonic()
        self.first.setdefault(worker, now)
        old = self.state.get(task_id)
        if old is not None and old[2]:
            return  # a late report of an attempt that was superseded
        if done == 0 and not finished:  # `TaskContext.started`: an attempt begins
            self.starts[task_id] = self.starts.get(task_id, 0) + 1
        self.state[task_id] = (worker, done, finished)
        if finished:
            self.finished_bytes[worker] = self.finished_bytes.get(worker, 0) + done

    def snapshot(self) -> ProgressSnapshot:
        now = time.monotonic()
        by_worker: dict[str, int] = dict(self.finished_bytes)
        for worker, done, finished in self.state.values():
            if not finished:
                by_worker[worker] = by_worker.get(worker, 0) + done
        throughput = {w: b / max(now - self.first[w], 1e-3) for w, b in by_worker.items()}
        return ProgressSnapshot(
            done=min(self.total, sum(d for _, d, _ in self.state.values())),
            total=self.total,
            tasks_done=sum(1 for s in self.state.values() if s[2]),
            tasks=len(self.sizes),
            running=dict(self.state),
            throughput=throughput,
            retries=sum(n - 1 for n in self.starts.values() if n > 1),
        )


class BoardHost:
    """The progress boards of one driver's jobs, by job id (a Ray actor started once per driver:
    starting an actor costs a worker process, ~0.6 s on a busy machine, which a short job felt
    whole). A report for a job that is not open (a cancelled task's late report) is dropped."""

    def __init__(self) -> None:
        self.boards: dict[str, ProgressBoard] = {}

    def open(self, job: str, tasks: Sequence[Task]) -> None:
        self.boards[job] = ProgressBoard(tasks)

    def report(self, job: str, task_id: str, worker: str, done: int, finished: bool) -> None:
        board = self.boards.get(job)
        if board is not None:
            board.report(task_id, worker, done, finished)

    def snapshot(self, job: str) -> ProgressSnapshot:
        return self.boards[job].snapshot()

    def close(self, job: str) -> None:
        self.boards.pop(job, None)


@contextmanager
def show_progress(
    total: int, description: str, *, quiet: bool, stream: TextIO | None = None
) -> Iterator[Callable[[ProgressSnapshot], None]]:
    """A progress callback for `paramio.scaleout.run_job` drawing a byte bar (on a terminal
    only, as every paramio bar), its text naming the workers and their throughput."""
    from paramio.formats.progress import ByteProgress

    with ByteProgress(total, description, quiet=quiet, stream=stream) as bar:

        def update(snap: ProgressSnapshot) -> None:
            if snap.done > bar.done:
                bar.advance(snap.done - bar.done)
            rates = ", ".join(f"{w} {r / 2**20:.0f} MiB/s" for w, r in sorted(snap.throughput.items()))
            bar.describe(f"{description} [{snap.tasks_done}/{snap.tasks} tasks; {rates}]")

        yield update
