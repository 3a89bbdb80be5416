"""From a path or URL to the byte source that serves it, the way fsspec's registry does it.

Each scheme names a module, a function in it, and the extra that installs the module's
dependencies. The module is imported only when a URL of that scheme is opened, so ``import
paramio`` never pays for obstore, and a missing dependency is an error that names the extra to
install. Add a scheme with `register_scheme` (see ``docs/sources.md``).
"""

from __future__ import annotations

import _thread
import importlib
import os

from paramio.core.errors import InvalidArgumentError, MissingExtraError
from paramio.core.records import Record
from paramio.sources.file import FileSource
from paramio.sources.names import scheme_of

TYPE_CHECKING = False  # `typing.TYPE_CHECKING` without importing typing (start-up: see paramio/__init__.py)
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from paramio.core.source import ByteSource

__all__ = ["REMOTE_SCHEMES", "MissingExtraError", "known_schemes", "open_source", "register_scheme", "scheme_of"]


class _Entry(Record):
    __slots__ = ("target", "extra", "needs")
    __match_args__ = __slots__
    target: str  # "package.module:function"
    extra: str | None  # the paramio extra that installs its dependencies
    needs: str | None  # the top-level module that extra provides

    def __init__(self, target: str, extra: str | None, needs: str | None) -> None:
        object.__setattr__(self, "target", target)
        object.__setattr__(self, "extra", extra)
        object.__setattr__(self, "needs", needs)


#: The URL schemes `paramio.sources.objectstore` serves (HTTP ranges and obstore's stores): the
#: one list, read by that module too, so a scheme it serves is never unknown here.
REMOTE_SCHEMES = ("http", "https", "s3", "gs", "az", "abfs", "abfss", "azure")

_REMOTE = _Entry("paramio.sources.objectstore:open_object", "remote", "obstore")
_SCHEMES: dict[str, _Entry | Callable[..., ByteSource]] = dict.fromkeys(REMOTE_SCHEMES, _REMOTE)
_LOCK = _thread.allocate_lock()  # `threading.Lock` itself, without importing `threading`


def register_scheme(
    scheme: str, opener: str | Callable[..., ByteSource], *, extra: str | None = None, needs: str | None = None
) -> None:
    """Serve ``scheme://`` URLs with `opener`: a callable ``(url, **options) -> ByteSource`` or a
    ``"module:function"`` string imported on first use. `extra` and `needs` name the paramio
    extra and the module it installs, for the error when that module is missing. Replaces any
    earlier registration of the scheme."""
    key = scheme.lower()
    if not key.isascii() or not key[:1].isalpha() or len(key) < 2:
        raise InvalidArgumentError(f"bad URL scheme {scheme!r}: letters first, two or more characters")
    with _LOCK:
        _SCHEMES[key] = _Entry(opener, extra, needs) if isinstance(opener, str) else opener


def known_schemes() -> list[str]:
    """Schemes `open_source` accepts, besides plain paths and ``file://``."""
    return sorted(_SCHEMES)


def _resolve(scheme: str) -> Callable[..., ByteSource]:
    with _LOCK:
        entry = _SCHEMES.get(scheme)
    if entry is None:
        raise InvalidArgumentError(f"no byte source for {scheme}:// URLs (known: file, {', '.join(known_schemes())})")
    if not isinstance(entry, _Entry):
        return entry
    module_name, _, func = entry.target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        if entry.needs is not None and exc.name is not None and exc.name.split(".")[0] == entry.needs:
            if entry.extra:
                raise MissingExtraError(
                    entry.extra, package=entry.needs, what=f"{scheme}:// URLs need the {entry.needs} package"
                ) from exc
            raise ImportError(f"{scheme}:// URLs need the {entry.needs} package: pip install {entry.needs}") from exc
        raise
    opener: Callable[..., ByteSource] = getattr(module, func)
    return opener


def open_source(path_or_url: str | os.PathLike[str], **options: Any) -> ByteSource:
    """The byte source for a local path, a ``file://`` URL or a remote URL (http, https, s3, gs,
    az, or any registered scheme). `options` go to the scheme's opener (for files: `writable`,
    `use_mmap`; for remote objects: `config`, `client_options`, `retry`, `timeout`,
    `max_concurrency`, `max_request`, `max_gap`, `cache`).

    Raises `MissingExtraError` when the scheme's extra is not installed, `InvalidArgumentError`
    for an unknown scheme, `SourceError` (a `RemoteSourceError` for URLs) when it cannot open."""
    scheme = scheme_of(path_or_url)
    if scheme is None:
        return FileSource(path_or_url, **options)
    text = os.fspath(path_or_url)
    if scheme == "file":
        from urllib.parse import unquote, urlsplit

        u = urlsplit(text)
        if u.netloc not in ("", "localhost"):
            raise InvalidArgumentError(f"file:// URL names another host: {text!r}")
        return FileSource(unquote(u.path), **options)
    return _resolve(scheme)(text, **options)
