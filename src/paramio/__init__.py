"""paramio: parameters (model weights) found by scope and key, in IRPA, safetensors and GGUF.

The index (`ParameterIndex`) is a superset of ``iree.runtime.ParameterIndex``; archives it
writes load in IREE byte for byte. See the README for the tour.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from paramio.arrays.metadata import TensorInfo
from paramio.errors import (
    ConversionWarning,
    DuplicateKeyError,
    FormatError,
    InvalidArgumentError,
    ParameterNotFoundError,
    ParamioError,
    SourceError,
    TruncatedError,
    UnsupportedFormatError,
    WriteError,
)
from paramio.formats.registry import detect_format, plan_losses, read_path, write_path
from paramio.index.entry import EntryKind, ParameterEntry
from paramio.index.index import DuplicatePolicy, ParameterIndex
from paramio.index.overlay import Overlay
from paramio.index.provider import Precedence, Provider, splat_standin
from paramio.index.scopes import ScopeMap
from paramio.index.writable import WritableArchive
from paramio.sources import ByteSource, FileSource, MemorySource

if TYPE_CHECKING:
    from paramio.sharding import merge, reshard, shard

__version__ = "0.1.0"

#: Imported on first use (``paramio.shard`` ...), so ``import paramio`` stays light.
_LAZY = {"merge": "paramio.sharding", "reshard": "paramio.sharding", "shard": "paramio.sharding"}


def __getattr__(name: str) -> object:
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
    "FileSource",
    "FormatError",
    "InvalidArgumentError",
    "MemorySource",
    "Overlay",
    "ParameterEntry",
    "ParameterIndex",
    "ParameterNotFoundError",
    "ParamioError",
    "Precedence",
    "Provider",
    "ScopeMap",
    "SourceError",
    "TensorInfo",
    "TruncatedError",
    "UnsupportedFormatError",
    "WritableArchive",
    "WriteError",
    "__version__",
    "detect_format",
    "merge",
    "plan_losses",
    "read_path",
    "reshard",
    "shard",
    "splat_standin",
    "write_path",
]
