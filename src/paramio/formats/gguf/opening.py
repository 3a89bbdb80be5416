"""Opening one GGUF file by path or URL: only its header, key/values and tensor infos are read.

GGUF gives no table sizes up front: key/values and tensor infos follow each other to the data.
`read_gguf` parses a first read of `FIRST_READ` (64 KiB) bytes and grows it while the parse runs
past it, to what the header must hold at the least and `GROW_AHEAD` (64 KiB) more, so the bytes
read stay within the header + 64 KiB through any source: a view of a mapped file, ranged
requests for a URL.
"""

from __future__ import annotations

from paramio.formats.gguf.reader import FIRST_READ, GGUFFile, read_gguf
from paramio.formats.inputs import open_input

__all__ = ["FIRST_READ", "open_gguf"]


def open_gguf(path: str, *, writable: bool = False, use_mmap: bool = True, strict: bool = False) -> GGUFFile:
    """Parse the GGUF file at `path` (a path or URL). Raises what `read_gguf` raises, and
    `SourceError` when it cannot be opened."""
    return read_gguf(open_input(path, writable=writable, use_mmap=use_mmap), strict=strict)
