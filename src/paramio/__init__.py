"""paramio: parameters (model weights) found by scope and key, in IRPA, safetensors and GGUF.

The index (`ParameterIndex`) is a superset of ``iree.runtime.ParameterIndex``; archives it
writes load in IREE byte for byte. Every name of ``iree.runtime``'s parameter API is here too
(`paramio.compat`), so ``import paramio as rt`` runs code written for IREE. See the README.
"""

from __future__ import annotations

from paramio.core.exports import attach, declare_above, declare_format_above, typed_exports

#: `typing.TYPE_CHECKING` without importing `typing` (~8 ms of a ~25 ms ``paramio --help``);
#: type checkers treat this name as true.
TYPE_CHECKING = False
if TYPE_CHECKING:  # the public names, once: type checkers read these imports, `_LAZY` reads this text
    from paramio.compat import (
        FileHandle,
        SplatValue,
        create_io_parameters_module,
        parameter_index_add_numpy_ndarray,
        parameter_index_entry_as_numpy_flat_ndarray,
        parameter_index_entry_as_numpy_ndarray,
        save_archive_file,
    )
    from paramio.core.entry import (
        EntryKind,
        ParameterEntry,
        ParameterIndexEntry,
    )
    from paramio.core.errors import (
        ConversionWarning,
        DuplicateKeyError,
        FormatError,
        FormatWarning,
        IntegrityError,
        InvalidArgumentError,
        LossError,
        MissingExtraError,
        ParameterNotFoundError,
        ParamioError,
        SourceError,
        TruncatedError,
        UnsupportedFormatError,
        WriteError,
    )
    from paramio.core.tensor import TensorInfo
    from paramio.formats.irpa.create import ParameterSpec, create_parameters
    from paramio.formats.registry import (
        detect_format,
        plan_losses,
        read_path,
        write_path,
    )
    from paramio.formats.verify import VerifyReport, verify
    from paramio.index.convert import convert
    from paramio.index.index import DuplicatePolicy, ParameterIndex
    from paramio.index.overlay import Overlay
    from paramio.index.provider import Precedence, Provider, splat_standin
    from paramio.index.scopes import ScopeMap
    from paramio.index.writable import WritableArchive
    from paramio.integrity import DiffReport, DigestReport, diff, digest
    from paramio.loading import load
    from paramio.sharding import merge, reshard, shard
    from paramio.sources import ByteSource, FileSource, MemorySource

__version__ = "0.1.0"

# The tensor-parallel set is a format defined above the formats layer: declared here (by name,
# extension and the module that registers it) so the format registry finds it without naming
# `paramio.sharding`, and imports that module only when a ``.tp.json`` is used.
declare_format_above("tp", (".tp.json",), "paramio.sharding.tpset")
# IREE's API puts ``create_provider`` on the index; the IREE bridge it needs stands above the
# index, so the index reaches it through this declaration and imports it only when called.
declare_above("index.create_provider", "paramio.compat.runtime:create_provider")
# ``engine="ray"`` (issue 28): the scale-out engine stands above the index and the integrity
# tools that take ``engine=``; they reach it through these, importing it (and Ray) only then.
declare_above("index.convert_on_engine", "paramio.scaleout.convert:convert_on_engine")
declare_above("integrity.digest_on_engine", "paramio.scaleout.digest:digest_on_engine")
declare_above("integrity.diff_on_engine", "paramio.scaleout.diff:diff_on_engine")
declare_above("sharding.shard_on_engine", "paramio.scaleout.shard:shard_on_engine")
declare_above("sharding.merge_on_engine", "paramio.scaleout.merge:merge_on_engine")

#: public name -> (module, attribute), read from the ``if TYPE_CHECKING:`` imports above (the one
#: list of public names) and imported on first use (``paramio.ParameterIndex``, ``from paramio
#: import load``) by `paramio.core.exports`, so that ``import paramio`` (and so every ``paramio``
#: command's start) imports no NumPy, asyncio or subpackage a caller does not touch. Submodules
#: load on attribute access too (``paramio.errors.ParamioError``).
_LAZY = typed_exports(__file__)
_resolve = attach(__name__, globals(), _LAZY)


def __getattr__(name: str) -> object:
    """A public name, imported on first use (`_LAZY`).

    `ParameterProvider` is ``iree.runtime.ParameterProvider`` itself where IREE is installed (so
    `isinstance` checks on the providers `ParameterIndex.create_provider` returns hold), looked up
    each time it is asked for, so ``import paramio`` does not import IREE."""
    if name == "ParameterProvider":
        from paramio.compat.runtime import provider_class

        return provider_class()
    return _resolve(name)


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


__all__ = sorted([*_LAZY, "ParameterProvider", "__version__"])
