"""Byte sources: where parameter bytes live (local files, memory, remote objects by URL).

Every name is imported on first use (`paramio.core.exports`): the contract, local sources, the
planner and the scheme registry. Importing one module (`paramio.sources.file` for a local
listing) brings no other: the scheme registry, memory sources, the async twin
(`paramio.sources.aio`), remote objects (`paramio.sources.objectstore`, needs the ``remote``
extra), the cache and uploads are imported only by their users.
"""

from __future__ import annotations

from paramio.core.exports import attach, typed_exports
from paramio.core.source import set_handle_factory

TYPE_CHECKING = False  # `typing.TYPE_CHECKING` without importing typing (start-up: see paramio/__init__.py)
if TYPE_CHECKING:
    from paramio.core.planner import Span, plan_reads
    from paramio.core.source import ByteSource
    from paramio.sources.file import FileSource
    from paramio.sources.memory import MemorySource
    from paramio.sources.registry import MissingExtraError, open_source, register_scheme


def _handle_for(source: ByteSource) -> ByteSource:
    from paramio.sources.handles import FileHandle  # IREE's handle type: imported when first asked for

    return FileHandle.for_source(source)


set_handle_factory(_handle_for)

#: The public names: the imports above, read once (`paramio.core.exports.typed_exports`).
_LAZY = typed_exports(__file__)
__all__ = sorted(_LAZY)
__getattr__ = attach(__name__, globals(), _LAZY)
