"""Which signals may stop a write, and holding them off while an output cleans up or commits.

The CLI turns SIGINT and `TERMINATING_SIGNALS` into exceptions that unwind every output
(`paramio.cli.signals`). An exception raised in the middle of removing a temporary file, or
between two renames of a set, would leave the very debris the unwinding is meant to remove, so
those few steps run inside `held_signals`: a signal whose handler was made `deferring`
arrives the moment they are done. Without such handlers (a library caller's process) holding
changes nothing.
"""

from __future__ import annotations

TYPE_CHECKING = False  # `typing.TYPE_CHECKING` without importing typing (start-up: see paramio/__init__.py)
if TYPE_CHECKING:
    import signal
    import signal as _signal  # the same functions and numbers, typed (typeshed has no `_signal`)
    from collections.abc import Callable
    from types import FrameType, TracebackType

    #: Catchable signals whose default action ends the process. `paramio.cli` makes them (and
    #: SIGINT) unwind like Ctrl-C, through handlers that `held_signals` can defer.
    TERMINATING_SIGNALS: tuple[signal.Signals, ...]
else:
    import _signal  # the builtin under `signal`: its enums (and `enum`) are not needed to install handlers

__all__ = ["TERMINATING_SIGNALS", "deferring", "held_signals"]

#: The catchable signals whose default action ends the process, number -> name (what
#: `TERMINATING_SIGNALS` holds as `signal.Signals`): installing handlers, and naming the signal
#: that stopped a command, need only these, so the CLI imports neither `signal` nor `enum` for
#: them (not even in a handler, which may run while the main thread is importing `enum`).
TERMINATING_NAMES: dict[int, str] = {
    getattr(_signal, name): name
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
    if hasattr(_signal, name)
}
TERMINATING_NUMBERS: tuple[int, ...] = tuple(TERMINATING_NAMES)
_depth = 0  # nesting of held_signals blocks in the main thread
_pending: list[int] = []  # signals that arrived while held


class held_signals:  # noqa: N801 - used as a function: ``with held_signals():``
    """Defer, for the block, the signals whose handlers `deferring` wrapped; the first that
    arrived meanwhile is raised again (``signal.raise_signal``) as the block ends.

    Python runs signal handlers in the main thread between bytecodes, whichever thread the
    kernel interrupted, so a flag checked by the handler defers them; blocking the signal with
    ``pthread_sigmask`` would not (another thread would take it). Other threads pass through.
    (A class rather than a `contextlib.contextmanager`: the CLI imports this module at start.)
    """

    __slots__ = ("_counted",)

    def __init__(self) -> None:
        self._counted = False

    def __enter__(self) -> None:
        global _depth
        import threading  # here: only writers hold signals, and they have threads already

        if threading.current_thread() is threading.main_thread():
            _depth += 1
            self._counted = True

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        global _depth
        if not self._counted:
            return
        self._counted = False
        _depth -= 1
        if _depth == 0 and _pending:
            signum = _pending[0]
            _pending.clear()
            _signal.raise_signal(signum)


def deferring(handler: Callable[[int, FrameType | None], object]) -> Callable[[int, FrameType | None], None]:
    """`handler`, made to wait while a `held_signals` block runs."""

    def wrapped(signum: int, frame: FrameType | None) -> None:
        if _depth:
            _pending.append(signum)
            return
        handler(signum, frame)

    return wrapped


def __getattr__(name: str) -> object:
    if name == "TERMINATING_SIGNALS":  # as `signal.Signals`, made on first use (`signal` imports `enum`)
        import signal

        return tuple(signal.Signals(n) for n in TERMINATING_NUMBERS)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
