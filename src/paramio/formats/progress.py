"""A byte-count progress bar for long writes: shown only on a terminal, never with --quiet.

Scripts and pipes see nothing (stderr not a TTY); rich is imported only when a bar is shown,
and a missing rich simply means no bar.
"""

from __future__ import annotations

import sys
from types import TracebackType
from typing import TYPE_CHECKING, TextIO

from paramio.core.source import Progress

if TYPE_CHECKING:
    from rich.progress import Progress as RichProgress
    from rich.progress import TaskID

__all__ = ["ByteProgress"]

#: Below this many bytes a conversion is quick enough that a bar would only flicker.
MIN_BYTES_FOR_BAR = 64 << 20


class ByteProgress:
    """Context manager; `advance(n)` is the callback writers take as ``progress=``."""

    def __init__(
        self, total: int, description: str, *, quiet: bool, stream: TextIO | None = None, force: bool = False
    ) -> None:
        self.total = total
        self.done = 0
        self._bar: RichProgress | None = None
        self._task: TaskID | None = None
        stream = stream if stream is not None else sys.stderr
        show = force or (not quiet and total >= MIN_BYTES_FOR_BAR and _isatty(stream))
        if quiet and not force:
            show = False
        if show:
            try:
                from rich.console import Console
                from rich.progress import (
                    BarColumn,
                    DownloadColumn,
                    TimeRemainingColumn,
                    TransferSpeedColumn,
                )
                from rich.progress import Progress as RichProgress
            except ImportError:
                return
            self._bar = RichProgress(
                "[progress.description]{task.description}",
                BarColumn(),
                DownloadColumn(),
                TransferSpeedColumn(),
                TimeRemainingColumn(),
                console=Console(file=stream),
                transient=True,
            )
            self._task = self._bar.add_task(description, total=total)

    @property
    def shown(self) -> bool:
        return self._bar is not None

    def advance(self, n: int) -> None:
        self.done += n
        if self._bar is not None and self._task is not None:
            self._bar.update(self._task, advance=n)

    def describe(self, text: str) -> None:
        """Change the bar's text (a job's task count and workers' throughput)."""
        if self._bar is not None and self._task is not None:
            self._bar.update(self._task, description=text)

    @property
    def callback(self) -> Progress | None:
        """What to pass as a writer's ``progress=``: None when nothing is shown (no overhead)."""
        return self.advance if self._bar is not None else None

    def __enter__(self) -> ByteProgress:
        if self._bar is not None:
            self._bar.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._bar is not None:
            self._bar.stop()


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
