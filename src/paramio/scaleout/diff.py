"""``diff`` on the engine: the entries whose bytes must be read (present on both sides with one
type, not settled by stored digests) are compared in tasks of about `task_bytes` (both sides'
bytes read by the worker from the sources, in pieces); each task returns its entries' value
summaries (`paramio.integrity.diff.EntryDiff`, or None for the same bytes), put back in order by
`paramio.integrity.diff.diff`. Nothing is written."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from paramio.core.entry import ParameterEntry
from paramio.scaleout.engine import (
    DEFAULT_MEMORY_BOUND,
    Task,
    TaskBody,
    TaskContext,
    TaskResult,
    check_engine,
)
from paramio.scaleout.entries import open_entries, records_of
from paramio.scaleout.job import run_job

__all__ = ["DiffJob", "diff_on_engine"]

#: Bytes (of one side) one diff task compares; a larger entry is a task of its own.
DEFAULT_TASK_BYTES = 1 << 30

Compare = tuple[str, ParameterEntry, ParameterEntry, str, str]


class DiffJob:
    """The `paramio.scaleout.engine.Operation` comparing `compares` (key, a, b, type, how)."""

    name = "diff"

    def __init__(
        self,
        compares: Sequence[Compare],
        atol: float,
        rtol: float,
        *,
        task_bytes: int = DEFAULT_TASK_BYTES,
        source_options: Mapping[str, Any] | None = None,
    ) -> None:
        self.compares = list(compares)
        self.atol, self.rtol = atol, rtol
        self.task_bytes = task_bytes
        self.source_options = dict(source_options or {})
        self.body: TaskBody = compare_group

    def plan(self) -> list[Task]:
        groups: list[list[Compare]] = []
        size = 0
        for c in self.compares:
            if not groups or (size + c[1].length > self.task_bytes and groups[-1]):
                groups.append([])
                size = 0
            groups[-1].append(c)
            size += c[1].length
        return [
            Task(
                id=f"diff-{i + 1:05d}",
                args={
                    "keys": [c[0] for c in g],
                    "a": records_of(c[1] for c in g),
                    "b": records_of(c[2] for c in g),
                    "types": [c[3] for c in g],
                    "how": [c[4] for c in g],
                    "atol": self.atol,
                    "rtol": self.rtol,
                    "source_options": self.source_options,
                },
                input_bytes=sum(c[1].length + c[2].length for c in g),
            )
            for i, g in enumerate(groups)
        ]

    def commit(self, results: Sequence[TaskResult]) -> list[str]:
        return []

    def abort(self, results: Sequence[TaskResult]) -> list[str]:
        return []


def compare_group(task: Task, context: TaskContext) -> TaskResult:
    """Compare a task's entries (on a worker)."""
    from paramio.integrity.diff import compare_entries

    a = task.args
    options = a["source_options"]
    with open_entries(a["a"], options) as left, open_entries(a["b"], options) as right, context.measuring():
        found = []
        for key, ea, eb, typ, how in zip(a["keys"], left, right, a["types"], a["how"], strict=True):
            found.append(compare_entries(key, ea, eb, typ, how, a["atol"], a["rtol"]))
            context.advance(ea.length + eb.length)
    return TaskResult(task.id, values={"found": found}, bytes_read=context.done)


def diff_on_engine(
    compares: Sequence[Compare], atol: float, rtol: float, *, engine: str, address: str | None
) -> list[Any]:
    """What ``paramio.diff(..., engine=...)`` calls for an engine other than the local one
    (declared by the package root): the comparisons' results, in order."""
    from paramio.formats.inputs import current_options

    check_engine(engine, address)
    job = DiffJob(compares, atol, rtol, source_options=current_options())
    report = run_job(job, engine=engine, address=address, memory_bound=DEFAULT_MEMORY_BOUND)
    return [found for r in report.results for found in r.values["found"]]
