"""IRPA, the IREE Parameter Archive: layout tables, reader, writer, byte-compatible with IREE."""

from __future__ import annotations

from paramio.formats.irpa.layout import MAGIC_BYTES
from paramio.formats.irpa.reader import read_archive, read_path
from paramio.formats.irpa.writer import plan_archive, write_archive, write_path

__all__ = ["plan_archive", "read_archive", "read_path", "sniff", "write_archive", "write_path"]


def sniff(head: bytes) -> bool:
    return head[:4] == MAGIC_BYTES
