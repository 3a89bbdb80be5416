"""Every error paramio raises on purpose.

```
ParamioError
 ├── FormatError                 a file's bytes break its format's rules (path, offset, key)
 │    ├── TruncatedError         a read would run past the end of the data
 │    ├── IntegrityError         an entry's bytes do not give the digest the file stores
 │    └── UnsupportedFormatError a version, entry type or dtype we know we cannot read
 ├── ParameterNotFoundError      also a KeyError: no parameter under that key or scope
 ├── DuplicateKeyError           also a ValueError: a key added twice under policy "error"
 ├── InvalidArgumentError        also a ValueError: a caller's argument is out of its domain
 │    └── LossError              a conversion would lose what on_loss="error" forbids losing
 ├── MissingExtraError           also an ImportError: an optional package is absent (`extra` says which)
 ├── SourceError                 also an OSError: a byte source failed to open or read
 └── WriteError                  also an OSError: an output could not be written

ConversionWarning                also a UserWarning: a conversion drops what the target cannot hold
FormatWarning                    also a UserWarning: a file breaks a rule paramio reads past (strict refuses)
```

Errors carry `path`, `offset` and `key` as attributes and say them in the message, e.g.
``model.irpa: entry 'w0' at offset 0x1f40: data ends at 0x9000 but the file ends at 0x8000``.
Foreign exceptions (``OSError``, ``json.JSONDecodeError``, NumPy's) are translated at the format
boundary with ``raise ... from exc``.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False  # `typing.TYPE_CHECKING` without importing typing (start-up: see paramio/__init__.py)
if TYPE_CHECKING:
    from types import ModuleType

__all__ = [
    "ConversionWarning",
    "DuplicateKeyError",
    "FormatError",
    "FormatWarning",
    "IntegrityError",
    "InvalidArgumentError",
    "LossError",
    "MissingExtraError",
    "ParameterNotFoundError",
    "ParamioError",
    "SourceError",
    "TruncatedError",
    "UnsupportedFormatError",
    "WriteError",
    "import_extra",
]


def _where(path: str | os.PathLike[str] | None, key: str | None, offset: int | None) -> str:
    parts: list[str] = []
    if path is not None:
        parts.append(os.fspath(path))
    if key is not None:
        parts.append(f"entry {key!r}")
    if offset is not None:
        parts.append(f"at offset {offset:#x}")
    if not parts:
        return ""
    if len(parts) >= 2 and path is not None:
        head = parts[0]
        return head + ": " + " ".join(parts[1:]) + ": "
    return " ".join(parts) + ": "


class ParamioError(Exception):
    """Base of every paramio error. `path`, `key` and `offset` are None when unknown."""

    def __init__(
        self,
        message: str,
        *,
        path: str | os.PathLike[str] | None = None,
        key: str | None = None,
        offset: int | None = None,
    ) -> None:
        self.reason = message
        self.path = os.fspath(path) if path is not None else None
        self.key = key
        self.offset = offset
        super().__init__(_where(path, key, offset) + message)

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else self.reason


class FormatError(ParamioError):
    """The bytes of a file break the rules of its format."""


class TruncatedError(FormatError):
    """A structure claims bytes beyond the end of the file or segment holding it."""


class IntegrityError(FormatError):
    """An entry's bytes do not give the digest the file stores for it: the data was damaged
    (or the record was). `expected` and `got` are the hex digests, `algorithm` their kind."""

    def __init__(
        self,
        message: str,
        *,
        algorithm: str = "",
        expected: str | None = None,
        got: str | None = None,
        path: str | os.PathLike[str] | None = None,
        key: str | None = None,
        offset: int | None = None,
    ) -> None:
        super().__init__(message, path=path, key=key, offset=offset)
        self.algorithm = algorithm
        self.expected = expected
        self.got = got


class UnsupportedFormatError(FormatError):
    """The file is well formed but uses a version, entry type or dtype paramio cannot read."""


class ParameterNotFoundError(ParamioError, KeyError):
    """No parameter under the requested key (or scope). Also a `KeyError`."""

    def __str__(self) -> str:  # KeyError would otherwise repr() the message
        return ParamioError.__str__(self)


class DuplicateKeyError(ParamioError, ValueError):
    """A key was added twice to an index whose duplicate policy is "error"."""


class InvalidArgumentError(ParamioError, ValueError):
    """An argument is outside what the operation accepts (a 3-byte splat pattern, say)."""


class LossError(InvalidArgumentError):
    """The target format cannot hold everything given and ``on_loss="error"`` was asked: nothing
    was written. `losses` lists what would have been lost (`paramio.formats.conversion.Loss`)."""

    def __init__(
        self, message: str, *, losses: tuple[object, ...] = (), path: str | os.PathLike[str] | None = None
    ) -> None:
        super().__init__(message, path=path)
        self.losses = losses


class MissingExtraError(ParamioError, ImportError):
    """An optional package that the call needs is not installed. `extra` names the paramio extra
    that installs it (``pip install 'paramio[torch]'``), `package` the module that was missing.
    Raised by `import_extra`, paramio's one way to import an optional dependency."""

    def __init__(self, extra: str, *, package: str | None = None, what: str | None = None) -> None:
        self.extra = extra
        self.package = package
        lead = what or f"{package or 'an optional package'} is not installed"
        super().__init__(f"{lead}: pip install 'paramio[{extra}]'")
        self.name = package  # ImportError's attribute: the module that could not be imported

    @property
    def advice(self) -> str:
        """``needs the torch extra: pip install 'paramio[torch]'``: what the CLI prints."""
        return f"needs the {self.extra} extra: pip install 'paramio[{self.extra}]'"


def import_extra(module: str, extra: str, *, what: str | None = None) -> ModuleType:
    """Import optional `module` (``torch``, ``iree.runtime``, ``gguf.quants``), or raise
    `MissingExtraError` naming `extra` when it (or the package it is part of) is not installed.
    An ImportError from inside an installed package (a broken install) propagates unchanged.
    `what` says what needed what (``"dequantising Q4_K needs the gguf package"``), for the message."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        missing = exc.name or ""
        top = module.split(".")[0]
        if missing and missing != module and not module.startswith(missing + ".") and missing.split(".")[0] != top:
            raise  # the package is there, something it imports is not: not ours to rename
        raise MissingExtraError(extra, package=top, what=what) from exc


class SourceError(ParamioError, OSError):
    """A byte source could not be opened or read."""


class WriteError(ParamioError, OSError):
    """An output could not be written; no partial file is left under the final name."""


class FormatWarning(UserWarning):
    """A file breaks a rule of its format that paramio can read past (a GGUF key repeated, as
    older gguf-py wrote them); the reader's ``strict=True`` refuses such files instead."""


class ConversionWarning(UserWarning):
    """A conversion writes something the target format cannot hold as the source did (a splat
    expanded, a type stored as a stand-in, an attribute dropped). A warning, not a
    `ParamioError`: ``on_loss="error"`` turns losses into a `LossError` instead."""


def warn_caller(message: str, category: type[Warning]) -> None:
    """`warnings.warn` pointed at the caller's line, the first frame outside paramio, however
    deep in paramio the warning arises (a fixed ``stacklevel`` names a line of paramio's own
    whenever the call path changes)."""
    import os
    import sys
    import warnings

    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
    level, frame = 2, sys._getframe(1)  # stacklevel 2 is warn_caller's caller
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(package):
        level += 1
        frame = frame.f_back  # type: ignore[assignment]
    warnings.warn(message, category, stacklevel=level)
