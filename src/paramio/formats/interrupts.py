"""Which signals may stop a write, and holding them off while an output cleans up or commits.

The CLI turns SIGINT and `TERMINATING_SIGNALS` into exceptions that unwind every output
(`paramio.cli.signals`). An exception raised in the middle of removing a temporary file, or
between two renames of a set, would leave the very debris the unwinding is meant to remove, so
those few steps run inside `held_signals`: a signal whose handler was made `deferring`
arrives the moment they are done. Without such handlers (a library caller's process) holding
changes nothing.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from types import FrameType

__all__ = ["TERMINATING_SIGNALS", "deferring", "held_signals"]

#: Catchable signals whose default action ends the process. `paramio.cli` makes them (and
#: SIGINT) unwind like Ctrl-C, through handlers that `held_signals` can defer.
TERMINATING_SIGNALS: tuple[signal.Signals, ...] = tuple(
    getattr(signal, name)
    for name in (
        "SIGTERM",
        "SIGHUP",
        "SIGQUIT",
        "SIGUSR1",
        "SIGUSR2",
        "SIGALRM",
        "SIGVTALRM",
        "SIGPROF",
        "SIGXCPU",
        "SIGPWR",
        "SIGSTKFLT",
    )
    if hasattr(signal, name)
)
_depth = 0  # nesting of held_signals blocks in the main thread
_pending: list[int] = []  # signals that arrived while held


@contextlib.contextmanager
def held_signals() -> Iterator[None]:
    """Defer, for the block, the signals whose handlers `deferring` wrapped; the first that
    arrived meanwhile is raised again (``signal.raise_signal``) as the block ends.

    Python runs signal handlers in the main thread between bytecodes, whichever thread the
    kernel interrupted, so a flag checked by the handler defers them; blocking the signal with
    ``pthread_sigmask`` would not (another thread would take it). Other threads pass through.
    """
    global _depth
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1
        if _depth == 0 and _pending:
            signum = _pending[0]
            _pending.clear()
            signal.raise_signal(signum)


def deferring(handler: Callable[[int, FrameType | None], object]) -> Callable[[int, FrameType | None], None]:
    """`handler`, made to wait while a `held_signals` block runs."""

    def wrapped(signum: int, frame: FrameType | None) -> None:
        if _depth:
            _pending.append(signum)
            return
        handler(signum, frame)

    return wrapped
