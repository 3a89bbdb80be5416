"""The parts of IREE's parameter API that hand objects to IREE's runtime, and reading from handles.

`create_provider` and `create_io_parameters_module` return **real** ``iree.runtime`` objects
(a ``ParameterProvider``, the ``io_parameters`` ``VmModule``) built from paramio's entries by
`paramio.iree.bridge` (no copies: IREE reads paramio's mapped files and buffers), so a compiled
program runs on them. Without ``iree-base-runtime`` they raise `ImportError` naming the extra.

`read_handle` (`paramio.formats.handles`) parses a `FileHandle` (memory or file descriptor) in
any format paramio reads, for `ParameterIndex.load_from_file_handle`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from paramio.core.errors import MissingExtraError
from paramio.formats.handles import UnsupportedFormatNameError, read_handle

if TYPE_CHECKING:
    from paramio.index.index import ParameterIndex

__all__ = [
    "ParameterProvider",
    "UnsupportedFormatNameError",
    "create_io_parameters_module",
    "create_provider",
    "provider_class",
    "read_handle",
]


class ParameterProvider:
    """Stands for ``iree.runtime.ParameterProvider`` where IREE is not installed (it has no
    constructor there either); `paramio.ParameterProvider` is IREE's own class when it is."""

    def __init__(self) -> None:
        raise MissingExtraError(
            "iree",
            package="iree.runtime",
            what="paramio.ParameterProvider is iree.runtime's class, and iree.runtime is not installed",
        )


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
