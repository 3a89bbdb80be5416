"""The index: parameters by key (`ParameterIndex`), and by scope and key over layers (`Provider`)."""

from __future__ import annotations

from paramio.core.exports import attach, typed_exports

TYPE_CHECKING = False  # `typing.TYPE_CHECKING` without importing typing (start-up: see paramio/__init__.py)
if TYPE_CHECKING:
    from paramio.core.entry import EntryKind, ParameterEntry
    from paramio.index.index import DuplicatePolicy, ParameterIndex
    from paramio.index.overlay import Overlay
    from paramio.index.provider import Precedence, Provider, splat_standin
    from paramio.index.scopes import ScopeMap
    from paramio.index.writable import WritableArchive

#: The public names: the imports above, read once (`paramio.core.exports.typed_exports`).
_LAZY = typed_exports(__file__)
__all__ = sorted(_LAZY)

# Imported on first use (`paramio.core.exports`): importing `paramio.core.entry` need not import
# the overlay, writable-archive and provider modules.
__getattr__ = attach(__name__, globals(), _LAZY)
