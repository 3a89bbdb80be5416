"""The call signatures of a `Format`'s readers and preparer, for type checkers.

`paramio.formats.contract` names these only in annotations, so a process that reads or lists a
file never imports this module (nor `typing`); ``from paramio.formats.contract import
PathReader`` still works, importing it on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from paramio.core.entry import ParameterEntry
    from paramio.core.source import ByteSource
    from paramio.formats.contract import FormatContents
    from paramio.formats.conversion import Prepared
    from paramio.sources.paths import AllowExternal

__all__ = ["MemberReader", "PathReader", "Preparer"]


class PathReader(Protocol):
    """``read_path(path, *, writable, use_mmap, allow_external, strict)``: one file, or the whole
    set it belongs to. Files named inside must resolve beside it or in `allow_external`
    (`paramio.sources.paths`); `strict` refuses what the reader otherwise reads past with a
    `FormatWarning` (a format with nothing to be strict about ignores it)."""

    def __call__(
        self,
        path: str,
        *,
        writable: bool = False,
        use_mmap: bool = True,
        allow_external: AllowExternal = None,
        strict: bool = False,
    ) -> FormatContents: ...


class Preparer(Protocol):
    """``prepare(entries, attributes, options)``: the entries and attributes the writer will be
    given after carrying, and every `Loss`, decided before anything is written."""

    def __call__(
        self, entries: list[ParameterEntry], attributes: dict[str, object], options: dict[str, object]
    ) -> Prepared: ...


class MemberReader(Protocol):
    """``read_member(source, path, *, writable, allow_external, strict)``: ONE file of a set,
    read from `source` (already open; entries point into it), never the set it belongs to."""

    def __call__(
        self,
        source: ByteSource,
        path: str,
        *,
        writable: bool = False,
        allow_external: AllowExternal = None,
        strict: bool = False,
    ) -> FormatContents: ...
