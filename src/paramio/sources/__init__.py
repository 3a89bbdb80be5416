"""Byte sources: where parameter bytes live (local files, memory, remote objects by URL).

Imported eagerly: the contract, local sources, the planner and the scheme registry. The async
twin (`paramio.sources.aio`), remote objects (`paramio.sources.objectstore`, needs the
``remote`` extra), the cache and uploads are imported only by their users, so ``import paramio``
stays as fast as before.
"""

from __future__ import annotations

from paramio.core.planner import Span, plan_reads
from paramio.core.source import ByteSource, set_handle_factory
from paramio.sources.file import FileSource
from paramio.sources.memory import MemorySource
from paramio.sources.registry import MissingExtraError, open_source, register_scheme


def _handle_for(source: ByteSource) -> ByteSource:
    from paramio.sources.handles import FileHandle  # IREE's handle type: imported when first asked for

    return FileHandle.for_source(source)


set_handle_factory(_handle_for)

__all__ = [
    "ByteSource",
    "FileSource",
    "MemorySource",
    "MissingExtraError",
    "Span",
    "open_source",
    "plan_reads",
    "register_scheme",
]
