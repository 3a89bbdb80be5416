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
