"""How the tools report failure: one line on stderr and an exit status.

| exit | meaning |
|---|---|
| 0 | success |
| 1 | a bad input file or a failed operation (`ParamioError`, `OSError`): the message names the file, entry and offset |
| 2 | a usage error: unknown flag, malformed ``--data``/``--splat``/``--rename``, unknown type |

``--debug`` (or ``PARAMIO_DEBUG=1``) adds the traceback.
"""

from __future__ import annotations

import sys

from paramio.core.errors import MissingExtraError, ParamioError
from paramio.formats.text import escape

TYPE_CHECKING = False  # `typing.TYPE_CHECKING` without importing typing (start-up: see paramio/__init__.py)
if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["EXIT_FAILURE", "EXIT_OK", "EXIT_USAGE", "CommandFailed", "UsageError", "guarded", "escape", "warn"]

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2


class UsageError(Exception):
    """The command line is wrong; the message says which flag and what was expected."""


class CommandFailed(Exception):
    """The operation could not be done for a reason the message gives in full (exit 1)."""


def guarded(tool: str, body: Callable[[], int], *, debug: Callable[[], bool]) -> int:
    """Run `body`, turning errors into one line on stderr and an exit status, and paramio's
    `FormatWarning` (a file read past a rule it breaks) into one warning line.

    This is the CLI's last boundary: paramio's own errors are expected, but anything else that
    escapes the library (a `RecursionError`, a `MemoryError`, a bug) is reported the same way,
    as one line and exit 1, never a traceback (``--debug`` shows it). Output streams print what
    they cannot encode as backslash escapes: a non-UTF-8 key on a strict ASCII stdout must not
    end the command with `UnicodeEncodeError`.
    """
    restore = _tolerant_streams()
    try:
        return _guarded(tool, body, debug)
    finally:
        restore()


def _guarded(tool: str, body: Callable[[], int], debug: Callable[[], bool]) -> int:
    import warnings

    from paramio.core.errors import FormatWarning

    default_show = warnings.showwarning

    def show(message: Warning | str, category: type[Warning], *args: object, **kwargs: object) -> None:
        if issubclass(category, FormatWarning):
            warn(tool, escape(str(message), quote=False))
        else:
            default_show(message, category, *args, **kwargs)  # type: ignore[arg-type]

    try:
        with warnings.catch_warnings():
            warnings.showwarning = show
            return body()
    except UsageError as exc:
        _report(tool, str(exc), debug())
        return EXIT_USAGE
    except MissingExtraError as exc:  # one line for every optional package, whoever needed it
        _report(tool, exc.advice, debug())
        return EXIT_FAILURE
    except (ParamioError, CommandFailed) as exc:
        _report(tool, str(exc), debug())
        return EXIT_FAILURE
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        _report(tool, f"{where}{exc.strerror or exc}", debug())
        return EXIT_FAILURE
    except KeyboardInterrupt:
        sys.stderr.write(f"paramio {tool}: interrupted\n")
        return 130
    except RecursionError:
        _report(tool, "the input nests too deeply to process (RecursionError)", debug())
        return EXIT_FAILURE
    except MemoryError:
        _report(tool, "out of memory (MemoryError)", debug())
        return EXIT_FAILURE
    except Exception as exc:  # noqa: BLE001 - the boundary: one line, never a traceback
        text = str(exc)
        if len(text) > _MAX_FOREIGN_MESSAGE:
            text = text[:_MAX_FOREIGN_MESSAGE] + "..."
        _report(tool, f"unexpected {type(exc).__name__}: {text} (--debug shows where)", debug())
        return EXIT_FAILURE


#: A foreign exception's message may quote a whole hostile value: cut it to one readable line.
_MAX_FOREIGN_MESSAGE = 400


def _tolerant_streams() -> Callable[[], None]:
    """Make stdout and stderr escape what their encoding cannot hold; returns the undo."""
    undo: list[tuple[object, str]] = []
    for stream in (sys.stdout, sys.stderr):
        errors = getattr(stream, "errors", None)
        reconfigure = getattr(stream, "reconfigure", None)
        if errors == "strict" and callable(reconfigure):
            try:
                reconfigure(errors="backslashreplace")
            except (ValueError, OSError):  # a detached or closed stream: leave it alone
                continue
            undo.append((stream, errors))

    def restore() -> None:
        for stream, errors in undo:
            try:
                stream.reconfigure(errors=errors)  # type: ignore[attr-defined]
            except (ValueError, OSError):
                pass

    return restore


#: The library's "pass format=" is a Python keyword; on the command line the advice differs.
_PYTHON_FORMAT_HINT = " or pass format="
CLI_FORMAT_HINT = " (paramio also knows them by their first bytes; convert takes --format= for its output)"


def cli_wording(message: str) -> str:
    """A library message with its Python-only advice replaced by the command-line one."""
    if message.endswith(_PYTHON_FORMAT_HINT):
        return message[: -len(_PYTHON_FORMAT_HINT)] + CLI_FORMAT_HINT
    return message


def _report(tool: str, message: str, debug: bool) -> None:
    message = cli_wording(message)
    if debug:
        import traceback  # here: a command that succeeds (a listing) never needs it

        traceback.print_exc(file=sys.stderr)
    sys.stderr.write(f"paramio {tool}: {escape(message, quote=False)}\n")


def warn(tool: str, message: str) -> None:
    sys.stderr.write(f"paramio {tool}: warning: {message}\n")
