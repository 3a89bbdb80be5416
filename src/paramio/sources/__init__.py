"""Byte sources: where parameter bytes live (local files, memory; remote stores later)."""

from __future__ import annotations

from paramio.sources.base import ByteSource
from paramio.sources.file import FileSource
from paramio.sources.memory import MemorySource

__all__ = ["ByteSource", "FileSource", "MemorySource"]
