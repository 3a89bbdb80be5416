"""Byte sources: where parameter bytes live (local files, memory, remote objects by URL).

Imported eagerly: the contract, local sources, the planner and the scheme registry. The async
twin (`paramio.sources.aio`), remote objects (`paramio.sources.objectstore`, needs the
``remote`` extra), the cache and uploads are imported only by their users, so ``import paramio``
stays as fast as before.
"""

from __future__ import annotations

from paramio.sources.base import ByteSource
from paramio.sources.file import FileSource
from paramio.sources.memory import MemorySource
from paramio.sources.planner import Span, plan_reads
from paramio.sources.registry import MissingExtraError, open_source, register_scheme

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
