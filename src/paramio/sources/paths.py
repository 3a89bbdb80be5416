"""Where a file named inside another file may be opened from.

An IRPA external entry, a safetensors ``index.json`` weight map and the numbering of a split
set all make paramio open files the user never named. A hostile archive could name
``/etc/passwd``, ``../../secret`` or a symlink out of its folder and have ``convert`` copy it.
So such names must resolve (symlinks followed) inside the folder of the file that names them,
or inside a folder the caller allowed (`allow_external=`, ``--allow-external=DIR``).

The folder of the named file counts twice: as given, and where the file really lives when the
path given is itself a symlink (a Hugging Face cache links ``snapshots/REV/*`` to ``blobs/``:
the user chose that file, so its siblings in ``blobs/`` are as trusted as it is).
"""

from __future__ import annotations

import os
from _collections_abc import Iterable  # `collections.abc.Iterable` itself, loaded with `os`: no import

from paramio.core.errors import FormatError, InvalidArgumentError, SourceError
from paramio.core.records import Record

__all__ = ["AllowExternal", "Confinement"]

#: ``True`` (anywhere), a folder, or folders; ``None``/``False``/``()``: only beside the file.
AllowExternal = bool | str | os.PathLike[str] | Iterable[str | os.PathLike[str]] | None


def _within(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


class Confinement(Record):
    """The folders files named by `container` may resolve into (all real paths)."""

    __slots__ = ("container", "roots", "anywhere")
    __match_args__ = __slots__
    container: str
    roots: tuple[str, ...]
    anywhere: bool

    def __init__(self, container: str, roots: tuple[str, ...], anywhere: bool = False) -> None:
        object.__setattr__(self, "container", container)
        object.__setattr__(self, "roots", roots)
        object.__setattr__(self, "anywhere", anywhere)

    @classmethod
    def beside(cls, container: str | os.PathLike[str], allow: AllowExternal = None) -> Confinement:
        """Files beside (or below) `container`, plus the folders in `allow`.

        Raises `InvalidArgumentError` for an `allow` that is not a bool, a path or paths."""
        c = os.fspath(container)
        roots = [os.path.realpath(os.path.dirname(os.path.abspath(c))), os.path.dirname(os.path.realpath(c))]
        anywhere = False
        if allow is True:
            anywhere = True
        elif allow is None or allow is False:
            pass
        elif isinstance(allow, (str, os.PathLike)):
            roots.append(os.path.realpath(os.fspath(allow)))
        elif isinstance(allow, Iterable):
            for a in allow:
                if not isinstance(a, (str, os.PathLike)):
                    raise InvalidArgumentError(f"allow_external: expected folders, got {type(a).__name__}")
                roots.append(os.path.realpath(os.fspath(a)))
        else:
            raise InvalidArgumentError(f"allow_external: expected True or folders, got {type(allow).__name__}")
        return cls(c, tuple(dict.fromkeys(roots)), anywhere)

    def resolve(self, name: str | bytes, *, key: str | None = None, what: str = "external file") -> str:
        """The real path of `name` (relative to the container's folder as given), checked.

        Raises `FormatError` for an empty name or one holding a NUL byte, `SourceError` when
        it resolves outside every allowed folder (naming the container, the entry and both
        paths)."""
        text = os.fsdecode(name)
        shown = text.encode("unicode_escape", "backslashreplace").decode("ascii") if not text.isprintable() else text
        if not text:
            raise FormatError(f"{what} name is empty", path=self.container, key=key)
        if "\0" in text:
            raise FormatError(f"{what} name {shown!r} holds a NUL byte", path=self.container, key=key)
        base = os.path.dirname(os.path.abspath(self.container))
        full = text if os.path.isabs(text) else os.path.join(base, text)
        real = os.path.realpath(full)
        if self.anywhere or any(_within(real, root) for root in self.roots):
            return real
        extra = f" (resolves to {real})" if real != os.path.normpath(full) else ""
        raise SourceError(
            f"{what} {shown!r}{extra} lies outside {self.roots[0]}, the folder of the file naming it; "
            f"allow it with allow_external=[{os.path.dirname(real)!r}] or --allow-external={os.path.dirname(real)}",
            path=self.container,
            key=key,
        )
