"""The index: parameters by key (`ParameterIndex`), and by scope and key over layers (`Provider`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from paramio.core.exports import attach, exports

if TYPE_CHECKING:
    from paramio.core.entry import EntryKind, ParameterEntry
    from paramio.index.index import DuplicatePolicy, ParameterIndex
    from paramio.index.overlay import Overlay
    from paramio.index.provider import Precedence, Provider, splat_standin
    from paramio.index.scopes import ScopeMap
    from paramio.index.writable import WritableArchive

__all__ = [
    "DuplicatePolicy",
    "EntryKind",
    "Overlay",
    "ParameterEntry",
    "ParameterIndex",
    "Precedence",
    "Provider",
    "ScopeMap",
    "WritableArchive",
    "splat_standin",
]

# Imported on first use (`paramio.core.exports`): importing `paramio.core.entry` need not import
# the overlay, writable-archive and provider modules.
__getattr__ = attach(
    __name__,
    globals(),
    exports(
        ("paramio.core.entry", ("EntryKind", "ParameterEntry")),
        ("paramio.index.index", ("DuplicatePolicy", "ParameterIndex")),
        ("paramio.index.overlay", ("Overlay",)),
        ("paramio.index.provider", ("Precedence", "Provider", "splat_standin")),
        ("paramio.index.scopes", ("ScopeMap",)),
        ("paramio.index.writable", ("WritableArchive",)),
    ),
)
