"""The parts of IREE's parameter API that hand objects to IREE's runtime, and reading from handles.

`create_provider` and `create_io_parameters_module` return **real** ``iree.runtime`` objects
(a ``ParameterProvider``, the ``io_parameters`` ``VmModule``) built from paramio's entries by
`paramio.iree.bridge` (no copies: IREE reads paramio's mapped files and buffers), so a compiled
program runs on them. Without ``iree-base-runtime`` they raise `ImportError` naming the extra.

`read_handle` parses a `FileHandle` (memory or file descriptor) in any format paramio reads,
for `ParameterIndex.load_from_file_handle`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from paramio.core.errors import InvalidArgumentError
from paramio.core.source import ByteSource
from paramio.sources.handles import FileHandle, handle_source

if TYPE_CHECKING:
    from paramio.formats.contract import FormatContents
    from paramio.index.index import ParameterIndex

__all__ = ["ParameterProvider", "create_io_parameters_module", "create_provider", "provider_class", "read_handle"]

_EXTRA = "pip install 'paramio[iree]'"


class UnsupportedFormatNameError(InvalidArgumentError, NotImplementedError):
    """A format name `load_from_file_handle` does not know: IREE raises `NotImplementedError`
    (its UNIMPLEMENTED status) there, paramio's error tree an `InvalidArgumentError`; both hold."""


class ParameterProvider:
    """Stands for ``iree.runtime.ParameterProvider`` where IREE is not installed (it has no
    constructor there either); `paramio.ParameterProvider` is IREE's own class when it is."""

    def __init__(self) -> None:
        raise TypeError(f"paramio.ParameterProvider: no constructor defined! (IREE's runtime: {_EXTRA})")


def provider_class() -> type:
    """``iree.runtime.ParameterProvider`` when installed, else paramio's stand-in."""
    try:
        rt = importlib.import_module("iree.runtime")
    except ImportError:
        return ParameterProvider
    cls: type = rt.ParameterProvider
    return cls


def create_provider(index: ParameterIndex, scope: str = "", max_concurrent_operations: int | None = None) -> object:
    """An ``iree.runtime.ParameterProvider`` serving `index`'s entries under `scope`."""
    from paramio.iree.bridge import to_iree_provider

    if max_concurrent_operations is not None and max_concurrent_operations < 0:
        raise TypeError(
            "create_provider(): incompatible function arguments: max_concurrent_operations must be a "
            "non-negative int or None"
        )
    provider, keeper = to_iree_provider(index.values(), scope, max_concurrent_operations)
    index._keep_for_iree(keeper)
    return provider


def create_io_parameters_module(instance: object, *providers: object) -> object:
    """IREE's ``io_parameters`` VM module over `providers`, in lookup order. Each is an IREE
    ``ParameterProvider`` (from `ParameterIndex.create_provider`) or, beyond IREE, a paramio
    `Provider`, whose every scope is served."""
    from paramio.index.provider import Provider
    from paramio.iree.bridge import IreeParameters, iree_runtime

    rt = iree_runtime()
    native: list[object] = []
    for p in providers:
        if isinstance(p, Provider):
            bridge = IreeParameters(p)
            p.keep_alive(bridge)
            native.extend(bridge.providers.values())
        else:
            native.append(p)
    return rt.create_io_parameters_module(instance, *native)


#: The formats IREE's ``load_from_file_handle`` names in its error, in its order.
_IREE_NAMES = (".irpa", ".gguf", ".safetensors")


def read_handle(handle: FileHandle | ByteSource, format: str) -> FormatContents:
    """The entries and attributes of the file behind `handle`, in `format` (``irpa``, ``gguf``,
    ``safetensors``, or any registered format that reads one byte source; case and a leading
    dot ignored, as IREE does). Raises `InvalidArgumentError` with IREE's message for another
    format, else what the reader raises."""
    from paramio.formats.contract import formats, get_format
    from paramio.formats.registry import read_source

    name = format.lower().lstrip(".")
    try:
        readable = get_format(name).read_source is not None
    except InvalidArgumentError:
        readable = False
    if not readable:
        others = [f".{f.name}" for f in formats() if f.read_source is not None and f".{f.name}" not in _IREE_NAMES]
        known = ", ".join([*_IREE_NAMES, *others])
        raise UnsupportedFormatNameError(
            f"unsupported file format `{format}`; ensure the extension matches one of the supported formats: [{known}]"
        )
    return read_source(handle_source(handle), name)
