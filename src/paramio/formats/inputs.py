"""Opening what a reader is given: a local path or a URL, and the files named beside it.

Every format opener goes through `open_input`, so a URL works wherever a path does. Names a
file gives for other files (shards, an index's weight map, IRPA external entries) resolve
through `beside`: next to a local file as before (the callers keep their symlink checks), and
against the folder of a URL with the lexical rule every source shares
(`paramio.sources.names.join_url`: no ``..``, no other host). Remote options (``config``,
``cache``, ``retry`` ...; see `paramio.sources.open_source`) are set once per open with
`input_options` and reach every object the open touches, siblings included.
"""

from __future__ import annotations

import _thread
import os

from paramio.core.errors import InvalidArgumentError, SourceError
from paramio.sources.file import FileSource
from paramio.sources.names import join_url, scheme_of

TYPE_CHECKING = False  # `typing.TYPE_CHECKING` without importing typing (start-up: see paramio/__init__.py)
if TYPE_CHECKING:
    from collections.abc import Mapping
    from contextvars import ContextVar, Token
    from types import TracebackType
    from typing import Any

    from paramio.core.source import ByteSource

__all__ = ["beside", "current_options", "exists", "input_options", "is_url", "local_path", "open_input"]

#: The options `input_options` set, made by the first `input_options` given any (a listing of
#: local files, often a whole process, never makes it: no `contextvars` import).
_OPTIONS: ContextVar[Mapping[str, Any] | None] | None = None
_OPTIONS_LOCK = _thread.allocate_lock()


def _current() -> Mapping[str, Any] | None:
    return _OPTIONS.get() if _OPTIONS is not None else None


def _variable() -> ContextVar[Mapping[str, Any] | None]:
    global _OPTIONS
    with _OPTIONS_LOCK:
        if _OPTIONS is None:
            from contextvars import ContextVar

            _OPTIONS = ContextVar("paramio_input_options", default=None)
        return _OPTIONS


def is_url(path: str | os.PathLike[str]) -> bool:
    """Whether `path` is a URL that is not ``file://`` (a remote object)."""
    return scheme_of(path) not in (None, "file")


def local_path(path: str) -> str | None:
    """The local path `path` names (itself, or a ``file://`` URL's path), None for a remote URL.

    Readers take a ``file://`` URL through this first, so it is a local path under every rule a
    plain path follows (confinement of the files it names, symlinks resolved). Raises
    `InvalidArgumentError` for a ``file://`` URL naming another host."""
    scheme = scheme_of(path)
    if scheme is None:
        return path
    if scheme == "hf":  # a file of the local Hugging Face cache (`paramio.sources.hf`)
        from paramio.sources.hf import resolve_hf

        return resolve_hf(path)
    if scheme == "file":
        from urllib.parse import unquote, urlsplit

        u = urlsplit(path)
        if u.netloc not in ("", "localhost"):
            raise InvalidArgumentError(f"file:// URL names another host: {path!r}")
        return unquote(u.path)
    return None


class input_options:  # noqa: N801 - used as a function: ``with input_options(options):``
    """Use `options` for every remote object opened inside the block (none: keep the outer ones).
    (A class, not a `contextlib.contextmanager`: every command enters one, a listing included.)"""

    __slots__ = ("_options", "_token")

    def __init__(self, options: Mapping[str, Any] | None) -> None:
        self._options = options
        self._token: Token[Mapping[str, Any] | None] | None = None

    def __enter__(self) -> None:
        if self._options:
            self._token = _variable().set({**(_current() or {}), **self._options})

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        token, self._token = self._token, None
        if token is not None:
            _variable().reset(token)


def current_options() -> dict[str, Any]:
    """The remote options `input_options` set (empty outside any)."""
    return dict(_current() or {})


def open_input(path: str, *, writable: bool = False, use_mmap: bool = True) -> ByteSource:
    """The source for `path`: a `FileSource` for a local path (as the readers always opened
    them), the remote source for a URL, with the options of `input_options`.

    Raises `InvalidArgumentError` for a writable URL (objects are not edited in place),
    `SourceError` (a `RemoteSourceError` for URLs) when it cannot be opened."""
    local = local_path(path)
    if local is not None:
        return FileSource(local, writable=writable, use_mmap=use_mmap)
    if writable:
        raise InvalidArgumentError("a URL cannot be opened writable; write a local file and upload it", path=path)
    from paramio.sources.registry import open_source  # here: a local path needs no scheme registry

    return open_source(path, **(_current() or {}))


def beside(path: str, name: str) -> str:
    """The path or URL of `name` next to `path`. For a URL the name must be relative and stay
    under the URL's folder (`SourceError` otherwise); local names are joined as given, and the
    callers apply their own checks (plain file names, `Confinement`)."""
    if is_url(path):
        return join_url(path, name)
    return os.path.join(os.path.dirname(path), name)


def exists(path: str) -> bool:
    """Whether `path` names something: `os.path.lexists` for a local path; for a URL one HEAD
    (a 404 or 403 is "no"; other failures propagate, so a flaky server is not a missing file)."""
    local = local_path(path)
    if local is not None:
        return os.path.lexists(local)
    from paramio.sources.retry import RemoteSourceError

    try:
        open_input(path).close()
    except RemoteSourceError as exc:
        if exc.status in (403, 404):
            return False
        raise
    except SourceError:
        return False
    return True
