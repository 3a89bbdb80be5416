"""Which task errors the engine retries (issue 28): I/O errors (a connection reset, a 503, a
timeout) are; paramio's permanent errors (a `FormatError`, a bad argument, a missing extra) and
an HTTP 4xx that a retry cannot change (404, 403) are not. A retried error reaches the caller as
itself, and a failed job's leftovers are named on the error."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from paramio.core.errors import (
    FormatError,
    InvalidArgumentError,
    MissingExtraError,
    SourceError,
    TruncatedError,
    WriteError,
)
from paramio.scaleout import Task, TaskContext, TaskResult, TransientTaskError, run_job
from paramio.scaleout.engine import is_transient, run_task
from paramio.sources.retry import RemoteSourceError


@pytest.mark.parametrize(
    ("exc", "retried"),
    [
        (SourceError("connection reset"), True),
        (WriteError("disk hiccup"), True),
        (RemoteSourceError("unavailable", url="s3://b/k", status=503), True),
        (RemoteSourceError("throttled", url="s3://b/k", status=429), True),
        (RemoteSourceError("timed out", url="s3://b/k"), True),
        (TimeoutError("slow"), True),
        (RemoteSourceError("no such key", url="s3://b/k", status=404), False),
        (RemoteSourceError("forbidden", url="s3://b/k", status=403), False),
        (FormatError("bad header"), False),
        (TruncatedError("short file"), False),
        (InvalidArgumentError("bad rule"), False),
        (MissingExtraError("ray", package="ray"), False),
        (KeyError("k"), False),
    ],
)
def test_what_is_retried(exc: BaseException, retried: bool) -> None:
    assert is_transient(exc) is retried


def _io_error(task: Task, context: TaskContext) -> TaskResult:
    raise SourceError("connection reset", path="s3://b/k")


def test_a_transient_error_is_wrapped_for_ray_and_unwrapped_for_the_caller() -> None:
    with pytest.raises(TransientTaskError) as info:
        run_task(_io_error, Task("t", {}, 0), 64 << 20, None)
    assert isinstance(info.value.original, SourceError)


class _Undoes:
    name = "test"

    def __init__(self, left: list[str]) -> None:
        self.left = left
        self.aborted: list[Sequence[TaskResult]] = []
        self.body = _io_error

    def plan(self) -> list[Task]:
        return [Task("t1", {}, 1)]

    def commit(self, results: Sequence[TaskResult]) -> list[str]:
        raise AssertionError("a failed job is not committed")

    def abort(self, results: Sequence[TaskResult]) -> list[str]:
        self.aborted.append(results)
        return self.left


def test_a_failed_job_is_undone_and_its_leftovers_named() -> None:
    op = _Undoes(["/shared/.m-00001.irpa.part"])
    with pytest.raises(SourceError, match=r"connection reset; the failed test job left: /shared/\.m-00001\.irpa\.part"):
        run_job(op, engine="local")
    assert op.aborted == [[]]


def test_bytes_only_this_process_holds_are_refused_before_any_task(tmp_path: Path) -> None:
    import numpy as np

    from paramio import ParameterIndex
    from paramio.scaleout.convert import convert_job

    index = ParameterIndex()
    index.add_array("w", np.arange(16, dtype=np.float32))  # in memory: no worker could read it
    with pytest.raises(InvalidArgumentError, match="entry 'w' is held by .* which a Ray worker cannot open"):
        convert_job(index, str(tmp_path / "m.irpa"), engine="local")
    assert list(tmp_path.iterdir()) == []
