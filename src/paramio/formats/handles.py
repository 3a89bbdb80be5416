"""Reading a file handle (memory or a file descriptor) in a format named as IREE names it.

`ParameterIndex.load_from_file_handle` and `paramio.compat` reach formats here: the format's
``read_source`` (`paramio.formats.contract.Format`) reads the one object behind the handle.
"""

from __future__ import annotations

from paramio.core.errors import InvalidArgumentError
from paramio.core.source import ByteSource
from paramio.formats.contract import Format, FormatContents, formats, get_format
from paramio.formats.registry import read_source
from paramio.sources.handles import FileHandle, handle_source

__all__ = ["UnsupportedFormatNameError", "read_handle"]


class UnsupportedFormatNameError(InvalidArgumentError, NotImplementedError):
    """A format name `load_from_file_handle` does not know: IREE raises `NotImplementedError`
    (its UNIMPLEMENTED status) there, paramio's error tree an `InvalidArgumentError`; both hold."""


def _iree_order(fmt: Format) -> int:
    return fmt.iree_handle_order if fmt.iree_handle_order is not None else 0


def read_handle(handle: FileHandle | ByteSource, format: str) -> FormatContents:
    """The entries and attributes of the file behind `handle`, in `format` (``irpa``, ``gguf``,
    ``safetensors``, or any registered format that reads one byte source; case and a leading
    dot ignored, as IREE does). Raises `UnsupportedFormatNameError` with IREE's message for
    another format, else what the reader raises."""
    name = format.lower().lstrip(".")
    try:
        readable = get_format(name).read_source is not None
    except InvalidArgumentError:
        readable = False
    if not readable:
        # IREE's formats first, in the order its message lists them, then any other readable one.
        readable_formats = [f for f in formats() if f.read_source is not None]
        iree = sorted((f for f in readable_formats if f.iree_handle_order is not None), key=_iree_order)
        others = [f for f in readable_formats if f.iree_handle_order is None]
        known = ", ".join(f".{f.name}" for f in [*iree, *others])
        raise UnsupportedFormatNameError(
            f"unsupported file format `{format}`; ensure the extension matches one of the supported formats: [{known}]"
        )
    return read_source(handle_source(handle), name)
