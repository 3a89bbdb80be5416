"""Termination signals unwind the tools as Ctrl-C does, so temporary files are removed.

Python turns SIGINT into `KeyboardInterrupt`, which unwinds every ``with AtomicOutput(...)``
block and removes its temporary file. Every other catchable signal whose default action ends
the process (SIGTERM from ``kill`` or a job scheduler, SIGHUP from a closed terminal, SIGQUIT,
...) would kill the process where it stands, leaving a ``.tmp`` file as large as the output.
`unwinding_on_signals` makes them raise `Terminated` instead; the command's outputs clean up
and the tool exits with 128 + the signal number, the status a shell reports for it.

Signals the parent set to be ignored stay ignored (``nohup paramio convert ...`` survives a
hang-up), handlers are installed only in the main thread, and the previous ones are restored
on exit, so calling `paramio.cli.main.main` from a program leaves its handlers as they were.
SIGINT gets the same handler, so that it too can be held. Every signal raises (a first one
whose exception a finalizer swallowed is not the last word), always as the first one: the exit
status names what stopped the tool. The cleanup itself, and the main thread's waits on copy
threads, run with signals held (`paramio.formats.interrupts.held_signals`), so a second
``kill`` cannot cut the cleanup short, nor an exception land inside a lock a copy thread needs.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType

from paramio.formats.interrupts import TERMINATING_SIGNALS, deferring

__all__ = ["TERMINATING_SIGNALS", "Terminated", "unwinding_on_signals"]


class Terminated(BaseException):  # noqa: N818 - named like KeyboardInterrupt, its sibling
    """Raised in the main thread when a termination signal arrives. A `BaseException`, like
    `KeyboardInterrupt`, so ``except Exception`` blocks let it through to the unwinding."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        try:
            self.name = signal.Signals(signum).name
        except ValueError:
            self.name = f"signal {signum}"
        super().__init__(f"terminated by {self.name}")

    @property
    def exit_status(self) -> int:
        return 128 + self.signum


@contextlib.contextmanager
def unwinding_on_signals() -> Iterator[None]:
    """Within the block, `TERMINATING_SIGNALS` raise `Terminated` (see the module docstring)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous: dict[signal.Signals, object] = {}
    first: list[int] = []

    def unwind(signum: int, frame: FrameType | None) -> None:
        # Every signal raises, but as the first one: the exit status names what stopped us.
        if not first:
            first.append(signum)
        if first[0] == signal.SIGINT:
            raise KeyboardInterrupt
        raise Terminated(first[0])

    handler = deferring(unwind)
    for sig in (*TERMINATING_SIGNALS, signal.SIGINT):
        try:
            current = signal.getsignal(sig)
            if current is signal.SIG_IGN or (sig == signal.SIGINT and current is not signal.default_int_handler):
                continue  # ignored by the parent (nohup), or a program's own Ctrl-C handler
            previous[sig] = current
            signal.signal(sig, handler)
        except (OSError, ValueError):
            continue
    try:
        yield
    finally:
        for sig, old in previous.items():
            with contextlib.suppress(OSError, ValueError, TypeError):
                signal.signal(sig, old)  # type: ignore[arg-type]
