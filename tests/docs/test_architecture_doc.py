"""docs/architecture.md: its blocks run (`guide_runner`), and what they add needs no change to
paramio: the `.toy` format is detected by extension and by magic, read, converted to and from
IRPA by `paramio convert`, `ParameterIndex` and `write_path`, read from a file handle, refuses
hostile headers with paramio's errors, and gets its carried facts back; the counting source
passes the conformance suite."""

from __future__ import annotations

import json
import os
import re
import struct
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from guide_runner import run_page

import paramio
from paramio import ParameterIndex
from paramio.cli.main import main as cli
from paramio.core.entry import ParameterEntry
from paramio.core.errors import FormatError, LossError, TruncatedError
from paramio.core.source import ByteSource
from paramio.formats.contract import format_names, get_format, unregister_format
from paramio.sources import registry as schemes
from paramio.testing import FormatTests

DOC = Path(__file__).resolve().parents[2] / "docs" / "architecture.md"


def _python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)


def _source_block() -> str:
    (block,) = [b for b in _python_blocks() if "class TestCountingSource" in b]
    return block


def _conformance_class() -> type:
    """The page's source and its test class, defined (nothing registered) at collection."""
    ns: dict[str, Any] = {"__name__": "architecture_doc", "ByteSource": ByteSource}
    exec(compile(_source_block(), str(DOC), "exec"), ns)  # noqa: S102 - the page's own example
    cls: type = ns["TestCountingSource"]
    return cls


class TestCountingSourceFromTheDocs(_conformance_class()):  # type: ignore[misc]
    """The page's `SourceTests` subclass, collected by pytest."""


class TestToyFormatConformance(FormatTests):
    """The page's `.toy` format passes `FormatTests` as paramio's own formats do."""

    format_name = "toy"

    @pytest.fixture(autouse=True)
    def _toy_registered(self) -> Iterator[None]:
        (block,) = [b for b in _python_blocks() if "TOY = Format(" in b]
        exec(compile(block, str(DOC), "exec"), {"__name__": "architecture_doc_toy"})  # noqa: S102 - the page's own example
        try:
            yield
        finally:
            unregister_format("toy")


@pytest.fixture
def page(page_folder: Path, iree_tool: Callable[[str], str]) -> Iterator[Path]:
    """The page run in its folder; the format and scheme it registers are removed afterwards."""
    try:
        assert run_page(DOC, iree_tool) >= 7
        yield page_folder
    finally:
        unregister_format("toy")
        with schemes._LOCK:
            schemes._SCHEMES.pop("counted", None)


def _toy_header(path: Path) -> dict[str, Any]:
    raw = path.read_bytes()
    (n,) = struct.unpack("<I", raw[4:8])
    header: dict[str, Any] = json.loads(raw[8 : 8 + n])
    return header


def test_the_page_runs_and_leaves_the_registry_as_it_was(page: Path) -> None:
    assert "toy" in format_names()


def test_toy_is_unknown_outside_the_page() -> None:
    assert "toy" not in format_names()
    with pytest.raises(paramio.InvalidArgumentError, match="unknown format 'toy'; known: irpa, safetensors, gguf, tp"):
        get_format("toy")


def test_convert_through_toy_gives_the_same_irpa_bytes(page: Path) -> None:
    """IRPA -> toy -> IRPA by the command is byte for byte IRPA -> IRPA: nothing is lost."""
    assert cli(["convert", "--parameters=model.irpa", "--output=direct.irpa", "--quiet"]) == 0
    assert cli(["convert", "--parameters=model.irpa", "--output=via.toy", "--quiet"]) == 0
    assert cli(["convert", "--parameters=via.toy", "--output=via.irpa", "--quiet"]) == 0
    assert (page / "via.irpa").read_bytes() == (page / "direct.irpa").read_bytes()
    assert _toy_header(page / "via.toy")["attributes"]["origin"] == "the guide"


def test_toy_from_a_file_handle(page: Path) -> None:
    fd = os.open(page / "model.toy", os.O_RDONLY)
    try:
        index = ParameterIndex()
        index.load_from_file_handle(paramio.FileHandle.wrap_fd(fd), "TOY")
        expected = ParameterIndex.open(page / "model.toy")
        assert index.keys() == expected.keys()
        for key in expected.keys():
            assert index[key].read() == expected[key].read()
        assert index.attributes == expected.attributes
    finally:
        os.close(fd)


def test_toy_is_sniffed_and_written_with_options(page: Path) -> None:
    entries = ParameterIndex.open(page / "model.toy").values()
    paramio.write_path(page / "aligned.dat", entries, format="toy", alignment=64)
    header = _toy_header(page / "aligned.dat")
    raw = (page / "aligned.dat").read_bytes()
    assert (8 + struct.unpack("<I", raw[4:8])[0]) % 64 == 0
    assert all(t["offset"] % 64 == 0 for t in header["tensors"])
    assert paramio.detect_format(page / "aligned.dat") == "toy"
    with pytest.raises(TypeError, match="unexpected keyword argument 'alignmnet'"):
        paramio.write_path(page / "x.toy", entries, alignmnet=64)


def test_a_loss_refused_by_the_command_is_recognised_by_type(page: Path, capsys: pytest.CaptureFixture[str]) -> None:
    paramio.write_path(page / "splat.irpa", [ParameterEntry.splat("z", b"\0", 16)])
    with pytest.raises(LossError) as info:
        paramio.write_path(page / "splat.toy", paramio.read_path(page / "splat.irpa").entries, on_loss="error")
    assert len(info.value.losses) == 1
    assert cli(["convert", "--parameters=splat.irpa", "--output=splat.toy", "--on_loss=error"]) == 1
    err = capsys.readouterr().err
    assert "toy cannot hold everything given" in err and "nothing was written" in err
    assert not (page / "splat.toy").exists()


@pytest.mark.parametrize(
    ("damage", "error", "message"),
    [
        (lambda raw: raw[:6], TruncatedError, "ends past the end"),
        (lambda raw: b"TOX\0" + raw[4:], FormatError, "bad magic"),
        (lambda raw: raw[:4] + struct.pack("<I", 1 << 30) + raw[8:], FormatError, "more than"),
        (lambda raw: raw[:8] + b"x" + raw[9:], FormatError, "malformed header"),
        (lambda raw: raw[:8] + b"[" + raw[9:], FormatError, "malformed header"),
        (lambda raw: raw[: len(raw) - 1], TruncatedError, "ends past the end"),
    ],
)
def test_hostile_toy_files_raise_paramios_errors(
    page: Path, damage: Callable[[bytes], bytes], error: type[Exception], message: str
) -> None:
    (page / "bad.toy").write_bytes(damage((page / "model.toy").read_bytes()))
    with pytest.raises(error, match=message):
        paramio.read_path(page / "bad.toy")
