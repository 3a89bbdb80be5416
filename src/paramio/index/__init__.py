"""The index: parameters by key (`ParameterIndex`), and by scope and key over layers (`Provider`)."""

from __future__ import annotations

from paramio.index.entry import EntryKind, ParameterEntry
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
