"""The `Format` contract and its registry (issue 12): every format is reached through its record,
built-ins and the tensor-parallel set register themselves from their own packages, lookups stay
lazy, and no module outside a format's package names a format (the worked example of adding one
is docs/architecture.md, run by tests/docs/test_architecture_doc.py)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

import paramio
from paramio.core.entry import ParameterEntry
from paramio.core.errors import ConversionWarning, InvalidArgumentError, LossError
from paramio.core.tensor import TensorInfo
from paramio.formats import contract
from paramio.formats.contract import (
    Format,
    FormatContents,
    declare_format,
    file_formats,
    format_names,
    get_format,
    register_format,
    unregister_format,
)
from paramio.formats.conversion import CARRIED_KEY, restore
from paramio.formats.registry import FORMATS, check_options, format_module, writer_options

SRC = Path(paramio.__file__).resolve().parent


def _modules_after(body: str) -> set[str]:
    env = {**os.environ, "PYTHONPATH": str(SRC.parent)}
    code = f"import json, sys\n{body}\nprint(json.dumps(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return set(json.loads(done.stdout.strip().splitlines()[-1]))


def test_names_in_order_and_the_unknown_name_error() -> None:
    assert format_names()[:4] == ["irpa", "safetensors", "gguf", "tp"]
    assert list(FORMATS)[:4] == ["irpa", "safetensors", "gguf", "tp"]
    assert "IRPA" in FORMATS and "nope" not in FORMATS
    with pytest.raises(InvalidArgumentError, match=r"^unknown format 'nope'; known: irpa, safetensors, gguf, tp$"):
        get_format("nope")
    with pytest.raises(InvalidArgumentError, match="unknown format 'nope'"):
        format_module("nope")


def test_each_format_registers_itself_from_its_own_package() -> None:
    for name, module in [
        ("irpa", "paramio.formats.irpa"),
        ("safetensors", "paramio.formats.safetensors"),
        ("gguf", "paramio.formats.gguf"),
        ("tp", "paramio.sharding.tpset"),
    ]:
        fmt = get_format(name)
        assert fmt.read_path.__module__ == module
        assert format_module(name).__name__ == module
        assert importlib_module(module).FORMAT is fmt
        assert FORMATS[name] is fmt
    assert get_format("tp").composite and [f.name for f in file_formats()][:3] == ["irpa", "safetensors", "gguf"]


def importlib_module(name: str) -> object:
    import importlib

    return importlib.import_module(name)


def test_every_writer_takes_the_common_options() -> None:
    for fmt in contract.formats():
        assert {"alignment", "durable", "progress", "max_shard_size"} <= writer_options(fmt.name), fmt.name
    with pytest.raises(TypeError, match="unexpected keyword argument 'alignmnet'"):
        check_options("gguf", {"alignmnet": 4})


def test_detecting_by_extension_imports_no_format() -> None:
    """The registry knows every format's extensions before importing it: naming a ``.tp.json``
    imports no sharding, naming a ``.gguf`` no format package (start-up stays light)."""
    body = (
        "from paramio.formats.registry import detect_format\n"
        "assert detect_format('m.tp.json') == 'tp' and detect_format('m.GGUF') == 'gguf'\n"
        "assert detect_format('m.irpa.index.json', for_writing=True) == 'irpa'\n"
    )
    modules = _modules_after(body)
    assert not {
        m for m in modules if m.startswith(("paramio.sharding", "paramio.formats.gguf", "paramio.formats.irpa"))
    }


def test_the_formats_layer_names_no_layer_above_it() -> None:
    """Not even as a string for a lazy import (what `FORMATS` held for ``tp`` before)."""
    above = re.compile(r"paramio\.(sharding|index|loading|iree|compat|cli|mlir|torch)\b")
    for path in (SRC / "formats").rglob("*.py"):
        code = "\n".join(line for line in path.read_text().splitlines() if not line.lstrip().startswith("#"))
        found = {m.group(0) for m in above.finditer(code)}
        # Docstrings may point a reader elsewhere with backquotes; code may not.
        bare = {f for f in found if f"`{f}" not in code}
        assert not bare, (path, bare)


def test_a_declared_format_must_register_what_it_declared() -> None:
    fmt = Format(
        name="declared-twice",
        extensions=(".dt",),
        read_path=get_format("irpa").read_path,
        write_path=get_format("irpa").write_path,
        prepare=get_format("irpa").prepare,
    )
    declare_format("declared-twice", (".dtx",), "paramio.no_such_module")
    try:
        assert paramio.detect_format("a.DTX") == "declared-twice"  # known by extension, not imported
        with pytest.raises(InvalidArgumentError, match="registers extensions"):
            register_format(fmt)
        with pytest.raises(ModuleNotFoundError):
            get_format("declared-twice")  # its module is imported on first use
    finally:
        unregister_format("declared-twice")
    assert "declared-twice" not in format_names()


@pytest.mark.parametrize(
    "bad",
    [
        {"name": "Upper"},
        {"extensions": ("toy",)},
        {"extensions": (".Toy",)},
        {"index_suffix": ".toy.index.json"},
    ],
)
def test_a_malformed_format_is_refused(bad: dict[str, object]) -> None:
    irpa = get_format("irpa")
    fields: dict[str, object] = {
        "name": "toy",
        "extensions": (".toy",),
        "read_path": irpa.read_path,
        "write_path": irpa.write_path,
        "prepare": irpa.prepare,
        **bad,
    }
    with pytest.raises(InvalidArgumentError):
        Format(**fields)  # type: ignore[arg-type]


def test_paramios_own_formats_cannot_be_forgotten() -> None:
    for name in ("irpa", "tp"):
        with pytest.raises(InvalidArgumentError, match="register a replacement"):
            unregister_format(name)
        assert get_format(name).name == name


def test_a_registered_format_is_found_by_extension_and_name(tmp_path: Path) -> None:
    """A format that reuses IRPA's reader and writer under another name and a longer extension:
    the longest extension wins, and its origin is its own name."""
    irpa = get_format("irpa")
    register_format(
        Format(
            name="irpa2",
            extensions=(".v2.irpa",),
            read_path=irpa.read_path,
            write_path=irpa.write_path,
            prepare=irpa.prepare,
            take_carried=irpa.take_carried,
        )
    )
    try:
        assert paramio.detect_format(tmp_path / "m.V2.irpa") == "irpa2"
        assert paramio.detect_format(tmp_path / "m.irpa") == "irpa"
        paramio.write_path(tmp_path / "m.v2.irpa", [ParameterEntry.splat("a", b"\1", 4)], attributes={"x": 1})
        contents = paramio.read_path(tmp_path / "m.v2.irpa")
        assert [e.key for e in contents.entries] == ["a"] and contents.attributes == {"x": 1}
        assert "irpa2" in FORMATS and "irpa2" in {f.name for f in file_formats()}
    finally:
        unregister_format("irpa2")
    assert "irpa2" not in format_names()


def test_restore_asks_the_format_where_its_record_is() -> None:
    """`restore` with a format's record: the carried type replaces the stand-in the format says
    is one, and is distrusted where it says not."""
    entry = ParameterEntry.data("w", _memory(8), 0, 8, tensor=TensorInfo("uint8", (8,)))
    claim = {"tensors": {"w": {"dtype": "float16", "shape": [4]}}, "version": 1}

    def contents() -> FormatContents:
        return FormatContents([entry], {"box": {CARRIED_KEY: json.dumps(claim)}}, ["m.box"])

    def take(attributes: dict[str, object]) -> object:
        from paramio.formats.conversion import detach_carried

        return detach_carried(attributes, "box", "had_box")

    irpa = get_format("irpa")
    trusting = Format(
        name="box",
        extensions=(".box",),
        read_path=irpa.read_path,
        write_path=irpa.write_path,
        prepare=irpa.prepare,
        take_carried=take,  # type: ignore[arg-type]
        stands_in=lambda e, c: True,
    )
    got = restore(trusting, contents())
    assert got.entries[0].tensor == TensorInfo("float16", (4,)) and got.attributes == {"box": {}}
    doubting = Format(
        name="box",
        extensions=(".box",),
        read_path=irpa.read_path,
        write_path=irpa.write_path,
        prepare=irpa.prepare,
        take_carried=take,  # type: ignore[arg-type]
    )
    with pytest.warns(Warning, match="the file's own type is kept"):
        got = restore(doubting, contents())
    assert got.entries[0].tensor == TensorInfo("uint8", (8,))


def _memory(n: int) -> paramio.MemorySource:
    return paramio.MemorySource(bytes(range(n)))


def test_a_loss_error_is_a_type_with_the_losses(tmp_path: Path) -> None:
    """`on_loss="error"` raises `LossError` (still an `InvalidArgumentError`), carrying the
    losses: the CLI recognises it by type, not by its message."""
    entries = [ParameterEntry.splat("z", b"\0", 16), ParameterEntry.splat("y", b"\1", 4)]
    with pytest.raises(LossError) as info:
        paramio.write_path(tmp_path / "m.safetensors", entries, on_loss="error")
    assert isinstance(info.value, InvalidArgumentError)
    assert [loss.key for loss in info.value.losses] == ["z", "y"]  # type: ignore[attr-defined]
    assert not (tmp_path / "m.safetensors").exists()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConversionWarning)
        paramio.write_path(tmp_path / "m.safetensors", entries)


def test_file_handles_take_every_format_that_reads_one_source(tmp_path: Path) -> None:
    index = paramio.ParameterIndex()
    with pytest.raises(InvalidArgumentError, match=r"supported formats: \[\.irpa, \.gguf, \.safetensors\]$"):
        index.load_from_file_handle(paramio.FileHandle.wrap_memory(b""), "tp")
    with pytest.raises(NotImplementedError):
        index.load_from_file_handle(paramio.FileHandle.wrap_memory(b""), "npz")
