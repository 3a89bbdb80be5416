"""paramio: parameters (model weights) found by scope and key, in IRPA, safetensors and GGUF.

The index (`ParameterIndex`) is a superset of ``iree.runtime.ParameterIndex``; archives it
writes load in IREE byte for byte. Every name of ``iree.runtime``'s parameter API is here too
(`paramio.compat`), so ``import paramio as rt`` runs code written for IREE. See the README.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from paramio.arrays.metadata import TensorInfo
from paramio.compat import (
    FileHandle,
    SplatValue,
    create_io_parameters_module,
    parameter_index_add_numpy_ndarray,
    parameter_index_entry_as_numpy_flat_ndarray,
    parameter_index_entry_as_numpy_ndarray,
    save_archive_file,
)
from paramio.errors import (
    ConversionWarning,
    DuplicateKeyError,
    FormatError,
    FormatWarning,
    InvalidArgumentError,
    ParameterNotFoundError,
    ParamioError,
    SourceError,
    TruncatedError,
    UnsupportedFormatError,
    WriteError,
)
from paramio.formats.registry import detect_format, plan_losses, read_path, write_path
from paramio.index.entry import EntryKind, ParameterEntry, ParameterIndexEntry
from paramio.index.index import DuplicatePolicy, ParameterIndex
from paramio.index.overlay import Overlay
from paramio.index.provider import Precedence, Provider, splat_standin
from paramio.index.scopes import ScopeMap
from paramio.index.writable import WritableArchive
from paramio.sources import ByteSource, FileSource, MemorySource

if TYPE_CHECKING:
    from paramio.loading import load
    from paramio.sharding import merge, reshard, shard

__version__ = "0.1.0"

#: Imported on first use (``paramio.shard`` ...), so ``import paramio`` stays light.
_LAZY = {
    "load": "paramio.loading",  # asyncio and the worker pool: ~0.1 s
    "merge": "paramio.sharding",
    "reshard": "paramio.sharding",
    "shard": "paramio.sharding",
}


def __getattr__(name: str) -> object:
    """`ParameterProvider` is ``iree.runtime.ParameterProvider`` itself where IREE is installed
    (so `isinstance` checks on the providers `ParameterIndex.create_provider` returns hold), and
    the sharding functions come from `paramio.sharding`; both resolved on first use, so that
    ``import paramio`` stays light and does not import IREE."""
    if name == "ParameterProvider":
        from paramio.compat.runtime import provider_class

        return provider_class()
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'paramio' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "ByteSource",
    "ConversionWarning",
    "DuplicateKeyError",
    "DuplicatePolicy",
    "EntryKind",
    "FileHandle",
    "FileSource",
    "FormatError",
    "FormatWarning",
    "InvalidArgumentError",
    "MemorySource",
    "Overlay",
    "ParameterEntry",
    "ParameterIndex",
    "ParameterIndexEntry",
    "ParameterNotFoundError",
    "ParameterProvider",
    "ParamioError",
    "Precedence",
    "Provider",
    "ScopeMap",
    "SourceError",
    "SplatValue",
    "TensorInfo",
    "TruncatedError",
    "UnsupportedFormatError",
    "WritableArchive",
    "WriteError",
    "__version__",
    "create_io_parameters_module",
    "detect_format",
    "load",
    "merge",
    "parameter_index_add_numpy_ndarray",
    "parameter_index_entry_as_numpy_flat_ndarray",
    "parameter_index_entry_as_numpy_ndarray",
    "plan_losses",
    "read_path",
    "reshard",
    "save_archive_file",
    "shard",
    "splat_standin",
    "write_path",
]
