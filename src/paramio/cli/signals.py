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

Every command starts inside `unwinding_on_signals`, so it is built on the builtin `_signal`
(no `signal`, `enum`, `threading` or `contextlib`: a ``paramio dump`` is often a whole process).
"""

from __future__ import annotations

from paramio.formats.interrupts import TERMINATING_NAMES, TERMINATING_NUMBERS, deferring

TYPE_CHECKING = False  # `typing.TYPE_CHECKING` without importing typing (start-up: see paramio/__init__.py)
if TYPE_CHECKING:
    import signal
    import signal as _signal  # the same functions and numbers, typed (typeshed has no `_signal`)
    from types import FrameType, TracebackType

    from paramio.formats.interrupts import TERMINATING_SIGNALS as TERMINATING_SIGNALS
else:
    import _signal

__all__ = ["TERMINATING_SIGNALS", "Terminated", "unwinding_on_signals"]


class Terminated(BaseException):  # noqa: N818 - named like KeyboardInterrupt, its sibling
    """Raised in the main thread when a termination signal arrives. A `BaseException`, like
    `KeyboardInterrupt`, so ``except Exception`` blocks let it through to the unwinding."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        name = TERMINATING_NAMES.get(signum)
        if name is None:  # not one the CLI handles: asked of `signal` (no handler is running)
            import signal

            try:
                name = signal.Signals(signum).name
            except ValueError:
                name = f"signal {signum}"
        self.name = name
        super().__init__(f"terminated by {self.name}")

    @property
    def exit_status(self) -> int:
        return 128 + self.signum


class unwinding_on_signals:  # noqa: N801 - used as a function: ``with unwinding_on_signals():``
    """Within the block, `TERMINATING_SIGNALS` raise `Terminated` (see the module docstring).

    Outside the main thread (of the main interpreter) `_signal.signal` refuses with ValueError:
    no handler is installed and the block runs as it is."""

    __slots__ = ("_previous",)

    def __init__(self) -> None:
        self._previous: dict[int, object] = {}

    def __enter__(self) -> None:
        first: list[int] = []

        def unwind(signum: int, frame: FrameType | None) -> None:
            # Every signal raises, but as the first one: the exit status names what stopped us.
            if not first:
                first.append(signum)
            if first[0] == _signal.SIGINT:
                raise KeyboardInterrupt
            raise Terminated(first[0])

        handler = deferring(unwind)
        for sig in (*TERMINATING_NUMBERS, _signal.SIGINT):
            try:
                current = _signal.getsignal(sig)
                if current == _signal.SIG_IGN or (sig == _signal.SIGINT and current is not _signal.default_int_handler):
                    continue  # ignored by the parent (nohup), or a program's own Ctrl-C handler
                _signal.signal(sig, handler)
            except (OSError, ValueError):
                continue
            self._previous[sig] = current

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        previous, self._previous = self._previous, {}
        for sig, old in previous.items():
            try:
                _signal.signal(sig, old)  # type: ignore[arg-type]
            except (OSError, ValueError, TypeError):
                pass


def __getattr__(name: str) -> object:
    if name == "TERMINATING_SIGNALS":  # as `signal.Signals`, made on first use (`signal` imports `enum`)
        from paramio.formats import interrupts

        signals: tuple[signal.Signals, ...] = interrupts.TERMINATING_SIGNALS
        return signals
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
