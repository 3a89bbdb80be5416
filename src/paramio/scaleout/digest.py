"""``digest`` (and the re-reading of `verify_digests`) on the engine: tasks of whole entries, about
`task_bytes` each (an entry larger than that is a task alone: a digest is one sequential hash),
hashed on the workers straight from the source; each task returns its entries' digests (hex
strings), which the driver puts back in the source's order. Nothing is written, so commit and
abort have nothing to do."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from paramio.core.entry import ParameterEntry
from paramio.core.errors import InvalidArgumentError
from paramio.scaleout.engine import (
    DEFAULT_MEMORY_BOUND,
    JobReport,
    ProgressSnapshot,
    Task,
    TaskBody,
    TaskContext,
    TaskResult,
    check_engine,
)
from paramio.scaleout.entries import open_entries, records_of
from paramio.scaleout.job import run_job

__all__ = ["DEFAULT_TASK_BYTES", "DigestJob", "digest_job", "digest_on_engine"]

#: Bytes of entries one digest task hashes (a larger entry is a task of its own).
DEFAULT_TASK_BYTES = 1 << 30
#: What one entry being hashed holds (`paramio.formats.digests`' read chunk).
_PER_ENTRY = 8 << 20


class DigestJob:
    """The `paramio.scaleout.engine.Operation` hashing `pairs` (name, entry)."""

    name = "digest"

    def __init__(
        self,
        pairs: Sequence[tuple[str, ParameterEntry]],
        algorithm: str,
        *,
        task_bytes: int = DEFAULT_TASK_BYTES,
        source_options: Mapping[str, Any] | None = None,
    ) -> None:
        if isinstance(task_bytes, bool) or not isinstance(task_bytes, int) or task_bytes < 1:
            raise InvalidArgumentError(f"task_bytes={task_bytes!r}: expected a positive byte count")
        from paramio.formats.digests import new_hasher

        new_hasher(algorithm)  # an unknown algorithm fails on the driver, before any task
        self.pairs = list(pairs)
        self.algorithm = algorithm
        self.task_bytes = task_bytes
        self.source_options = dict(source_options or {})
        self.body: TaskBody = hash_entries

    def plan(self) -> list[Task]:
        groups: list[list[tuple[str, ParameterEntry]]] = []
        size = 0
        for name, e in self.pairs:
            if not groups or (size + e.length > self.task_bytes and groups[-1]):
                groups.append([])
                size = 0
            groups[-1].append((name, e))
            size += e.length
        return [
            Task(
                id=f"digest-{i + 1:05d}",
                args={
                    "names": [n for n, _ in g],
                    "entries": records_of(e for _, e in g),
                    "algorithm": self.algorithm,
                    "source_options": self.source_options,
                },
                input_bytes=sum(e.length for _, e in g),
            )
            for i, g in enumerate(groups)
        ]

    def commit(self, results: Sequence[TaskResult]) -> list[str]:
        return []

    def abort(self, results: Sequence[TaskResult]) -> list[str]:
        return []

    def digests(self, report: JobReport) -> dict[str, str]:
        """The digests by name, in the order of `pairs`."""
        got: dict[str, str] = {}
        for r in report.results:
            got.update(r.values["digests"])
        return {name: got[name] for name, _ in self.pairs}


def hash_entries(task: Task, context: TaskContext) -> TaskResult:
    """Hash a task's entries (on a worker), side by side within its memory bound."""
    from paramio.formats.digests import digest_items

    a = task.args
    with open_entries(a["entries"], a["source_options"]) as entries, context.measuring():
        pairs = list(zip(a["names"], entries, strict=True))
        side_by_side = max(1, min(len(pairs), context.memory_bound // (2 * _PER_ENTRY)))
        digests = digest_items(pairs, a["algorithm"], concurrency=side_by_side, progress=context.advance)
    return TaskResult(task.id, values={"digests": digests}, bytes_read=sum(e.length for e in entries))


def digest_job(
    pairs: Sequence[tuple[str, ParameterEntry]],
    algorithm: str,
    *,
    engine: str = "ray",
    address: str | None = None,
    memory_bound: int = DEFAULT_MEMORY_BOUND,
    max_retries: int = 3,
    task_bytes: int = DEFAULT_TASK_BYTES,
    progress: Callable[[ProgressSnapshot], None] | None = None,
    source_options: Mapping[str, Any] | None = None,
) -> tuple[dict[str, str], JobReport]:
    """Digests of `pairs` computed on `engine`: (digests by name in order, the job's report)."""
    from paramio.formats.inputs import current_options

    check_engine(engine, address)
    job = DigestJob(
        pairs, algorithm, task_bytes=task_bytes, source_options={**current_options(), **(source_options or {})}
    )
    report = run_job(
        job, engine=engine, address=address, memory_bound=memory_bound, max_retries=max_retries, progress=progress
    )
    return job.digests(report), report


def digest_on_engine(
    pairs: Sequence[tuple[str, ParameterEntry]],
    algorithm: str,
    *,
    engine: str,
    address: str | None,
    progress: Callable[[int], None] | None = None,
) -> dict[str, str]:
    """What ``paramio.digest(..., engine=...)`` and ``verify_digests(..., engine=...)`` call for an
    engine other than the local one (declared by the package root)."""
    seen = [0]

    def bytes_progress(snap: ProgressSnapshot) -> None:
        if progress is not None and snap.done > seen[0]:
            progress(snap.done - seen[0])
            seen[0] = snap.done

    digests, _ = digest_job(pairs, algorithm, engine=engine, address=address, progress=bytes_progress)
    return digests
