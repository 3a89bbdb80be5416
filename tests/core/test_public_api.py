"""The public surface is deliberate: adding or dropping a name must show up here."""

from __future__ import annotations

import paramio


def test_public_names_are_pinned() -> None:
    assert paramio.__all__ == [
        "ByteSource",
        "ConversionWarning",
        "DiffReport",
        "DigestReport",
        "DuplicateKeyError",
        "DuplicatePolicy",
        "EntryKind",
        "FileHandle",
        "FileSource",
        "FormatError",
        "FormatWarning",
        "IntegrityError",
        "InvalidArgumentError",
        "LossError",
        "MemorySource",
        "MissingExtraError",
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
        "convert",
        "create_io_parameters_module",
        "create_parameters",
        "detect_format",
        "diff",
        "digest",
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


def test_submodules_load_on_attribute_access() -> None:
    """``paramio.errors.ParamioError`` works after a bare ``import paramio`` (before: an
    AttributeError, start-up being lazy), and ``import paramio`` alone still imports none of them."""
    import subprocess
    import sys
    from pathlib import Path

    code = (
        "import sys, paramio\n"
        "assert 'paramio.errors' not in sys.modules and 'paramio.loading' not in sys.modules\n"
        "assert paramio.errors.ParamioError is paramio.ParamioError\n"
        "assert paramio.formats.elements.parse_element_type('f32').dtype == 'float32'\n"
        "assert paramio.loading.load is paramio.load\n"
        "assert paramio.sources.workers.pool().limit >= 1\n"
        "try:\n"
        "    paramio.no_such_module\n"
        "except AttributeError as e:\n"
        "    assert str(e) == \"module 'paramio' has no attribute 'no_such_module'\", e\n"
        "else:\n"
        "    raise AssertionError('no error')\n"
        "print('ok')\n"
    )
    src = str(Path(paramio.__file__).resolve().parents[1])
    out = subprocess.run([sys.executable, "-c", code], env={"PYTHONPATH": src}, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_public_names_are_written_once_in_the_package_root() -> None:
    """Each public name appears once in the code of ``paramio/__init__.py`` (its ``if
    TYPE_CHECKING:`` import); the lazy table and ``__all__`` are read from it. Before: three
    lists (the imports, the lazy table, ``__all__``) that had to agree by hand."""
    import io
    import tokenize
    from collections import Counter
    from pathlib import Path

    source = Path(paramio.__file__).read_text()
    tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    names = Counter(  # names in code, not parts of a dotted module path
        t.string.strip("'\"") if t.type == tokenize.STRING else t.string
        for prev, t in zip(tokens, tokens[1:], strict=False)
        if (t.type == tokenize.NAME and prev.string != ".") or t.type == tokenize.STRING
    )
    public = set(paramio.__all__) - {"ParameterProvider", "__version__"}
    assert {n: names[n] for n in sorted(public) if names[n] != 1} == {}
    assert paramio.__all__ == sorted(paramio.__all__)
