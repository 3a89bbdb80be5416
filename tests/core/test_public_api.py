"""The public surface is deliberate: adding or dropping a name must show up here."""

from __future__ import annotations

import paramio


def test_public_names_are_pinned() -> None:
    assert paramio.__all__ == [
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
        "LossError",
        "MemorySource",
        "Overlay",
        "ParameterEntry",
        "ParameterIndex",
        "ParameterIndexEntry",
        "ParameterNotFoundError",
        "ParameterProvider",
        "ParameterSpec",
        "ParamioError",
        "Precedence",
        "Provider",
        "ScopeMap",
        "SourceError",
        "SplatValue",
        "TensorInfo",
        "TruncatedError",
        "UnsupportedFormatError",
        "VerifyReport",
        "WritableArchive",
        "WriteError",
        "__version__",
        "create_io_parameters_module",
        "create_parameters",
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
        "verify",
        "write_path",
    ]
    for name in paramio.__all__:
        assert hasattr(paramio, name), name


def test_error_tree() -> None:
    assert issubclass(paramio.TruncatedError, paramio.FormatError)
    assert issubclass(paramio.UnsupportedFormatError, paramio.FormatError)
    assert issubclass(paramio.ParameterNotFoundError, KeyError)
    assert issubclass(paramio.DuplicateKeyError, ValueError)
    assert issubclass(paramio.InvalidArgumentError, ValueError)
    assert issubclass(paramio.SourceError, OSError)
    assert issubclass(paramio.WriteError, OSError)
    for cls in (paramio.FormatError, paramio.ParameterNotFoundError, paramio.SourceError, paramio.WriteError):
        assert issubclass(cls, paramio.ParamioError)
