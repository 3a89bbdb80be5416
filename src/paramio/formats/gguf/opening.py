"""Opening one GGUF file by path or URL; a remote one transfers its header and tables only.

GGUF gives no table sizes up front: key/values and tensor infos follow each other to the data.
A remote file is parsed from a fetched prefix (`paramio.formats.window.WindowSource`) that
grows fourfold until the parse ends inside it, so the bytes fetched stay within four times the
header (and one first read of `FIRST_READ` covers most models without a large vocabulary).
"""

from __future__ import annotations

import warnings

from paramio.core.errors import ParamioError
from paramio.core.source import ByteSource
from paramio.formats.gguf.reader import GGUFFile, read_gguf
from paramio.formats.inputs import open_parsed
from paramio.formats.window import WindowSource

__all__ = ["FIRST_READ", "open_gguf", "parse_gguf"]

#: The first read of a remote GGUF file.
FIRST_READ = 256 * 1024


def open_gguf(path: str, *, writable: bool = False, use_mmap: bool = True, strict: bool = False) -> GGUFFile:
    """Parse the GGUF file at `path` (a path or URL). Raises what `read_gguf` raises, and
    `SourceError` when it cannot be opened."""
    return parse_gguf(open_parsed(path, writable=writable, use_mmap=use_mmap), strict=strict)


def parse_gguf(source: ByteSource, *, strict: bool = False) -> GGUFFile:
    """`read_gguf` on a source from `open_parsed`: a `WindowSource` is filled as it parses."""
    if not isinstance(source, WindowSource):
        return read_gguf(source, strict=strict)
    try:
        return _parse_window(source, strict)
    finally:
        source.seal()


def _parse_window(source: WindowSource, strict: bool) -> GGUFFile:
    want = FIRST_READ
    while True:
        source.fill([(0, want)])
        complete = source.filled_prefix() >= source.size
        # Warnings (a repeated key) are kept until the parse that counts, so they show once.
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                f: GGUFFile | None = read_gguf(source, strict=strict)
            except ParamioError:
                if complete:
                    raise
                f = None  # the parse ran into bytes not fetched yet
        # Every byte the parse read lies before the tensor data: inside the prefix, it was real.
        if f is not None and (complete or f.data_offset <= source.filled_prefix()):
            for w in caught:
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
            return f
        want *= 4
