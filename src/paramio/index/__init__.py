"""The index: parameters by key (`ParameterIndex`), and by scope and key over layers (providers)."""

from __future__ import annotations

from paramio.index.entry import EntryKind, ParameterEntry
from paramio.index.index import DuplicatePolicy, ParameterIndex

__all__ = ["DuplicatePolicy", "EntryKind", "ParameterEntry", "ParameterIndex"]
