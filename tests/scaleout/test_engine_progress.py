"""The driver's progress (issue 28): bytes done of the total across workers, per-worker
throughput, attempts counted as retries, a superseded attempt's late report ignored; drawn as a
bar on a terminal naming each worker's throughput."""

from __future__ import annotations

import io
import time

from paramio.scaleout import Task
from paramio.scaleout.progress import ProgressBoard, show_progress


def _tasks() -> list[Task]:
    return [Task("a", {}, 100), Task("b", {}, 300)]


def test_bytes_by_task_and_throughput_by_worker() -> None:
    board = ProgressBoard(_tasks())
    board.report("a", "h1:1", 0, False)
    board.report("b", "h2:2", 0, False)
    time.sleep(0.05)
    board.report("a", "h1:1", 60, False)
    board.report("b", "h2:2", 150, False)
    snap = board.snapshot()
    assert (snap.done, snap.total, snap.tasks_done, snap.tasks) == (210, 400, 0, 2)
    assert snap.running == {"a": ("h1:1", 60, False), "b": ("h2:2", 150, False)}
    assert set(snap.throughput) == {"h1:1", "h2:2"}
    assert snap.throughput["h2:2"] > snap.throughput["h1:1"] > 0  # 150 vs 60 bytes in the same time
    board.report("a", "h1:1", 100, True)
    snap = board.snapshot()
    assert (snap.done, snap.tasks_done, snap.retries) == (250, 1, 0)


def test_a_retried_attempt_starts_again_and_a_late_report_is_ignored() -> None:
    board = ProgressBoard(_tasks())
    board.report("b", "h2:2", 0, False)
    board.report("b", "h2:2", 200, False)  # then the worker dies
    board.report("b", "h1:7", 0, False)  # Ray runs it again elsewhere
    snap = board.snapshot()
    assert snap.retries == 1 and snap.running["b"] == ("h1:7", 0, False) and snap.done == 0
    board.report("b", "h1:7", 300, True)
    board.report("b", "h2:2", 250, False)  # the dead attempt's report, arriving late
    snap = board.snapshot()
    assert snap.running["b"] == ("h1:7", 300, True) and snap.done == 300


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_bar_names_the_workers_throughput() -> None:
    board = ProgressBoard([Task("a", {}, 256 << 20)])
    stream = _Terminal()
    with show_progress(256 << 20, "writing m.irpa on ray", quiet=False, stream=stream) as update:
        board.report("a", "10.0.0.2:41", 0, False)
        board.report("a", "10.0.0.2:41", 128 << 20, False)
        update(board.snapshot())
    text = stream.getvalue()
    assert "0/1 tasks" in text and "10.0.0.2:41" in text and "MiB/s" in text
    quiet = _Terminal()
    with show_progress(256 << 20, "x", quiet=True, stream=quiet) as update:
        update(board.snapshot())
    assert quiet.getvalue() == ""
