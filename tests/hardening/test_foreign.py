"""Foreign exceptions that used to escape become paramio errors, and the CLI never prints a
traceback: one line, exit 1 (issue 18, item 8)."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import numpy as np
import pytest
import specimens as S

import paramio
from paramio.cli.main import main
from paramio.core.errors import InvalidArgumentError, ParamioError
from paramio.formats.registry import read_path, write_path


def _cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    rc = main(argv)
    out, err = capsys.readouterr()
    return rc, out, err


def _one_line(err: str, tool: str) -> str:
    lines = [line for line in err.strip().splitlines() if not line.startswith(f"paramio {tool}: warning: ")]
    assert len(lines) == 1 and lines[0].startswith(f"paramio {tool}: "), err
    assert "Traceback" not in err and "unexpected" not in err, err
    return lines[0]


@pytest.mark.parametrize("length", [2**63, 2**64 - 1])
def test_huge_splat_read_is_a_paramio_error(tmp_path: Path, length: int) -> None:
    """main: OverflowError ("cannot fit 'int' into an index-sized integer")."""
    entry = read_path(str(S.irpa_splat(tmp_path / "s.irpa", length=length))).entries[0]
    for op in (entry.read, entry.to_numpy):
        with pytest.raises(InvalidArgumentError, match=f"a splat of {length} bytes does not fit in memory"):
            op()
    assert bytes(next(iter(entry.iter_chunks(16)))) == b"\1" * 16  # still readable in parts


@pytest.mark.parametrize("fmt", ["safetensors", "gguf"])
def test_huge_splat_converted_is_refused_before_writing(
    tmp_path: Path, fmt: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """main: OverflowError from ftruncate (safetensors, GGUF) and struct.error packing a GGUF
    offset past 2**64 (three splats of 2**63 bytes)."""
    path = tmp_path / "s.irpa"
    rows = [(1, (i, 1), (0, 0), S.splat_tail(2**63, b"\1")) for i in range(3)]
    path.write_bytes(S.irpa_bytes(rows, b"abc"))
    out = tmp_path / f"o.{fmt}"
    with pytest.raises(InvalidArgumentError, match="more than any file can hold"):
        write_path(str(out), read_path(str(path)).entries, format=fmt, on_loss="ignore")
    rc, _, err = _cli(["convert", f"--parameters={path}", f"--output={out}", "--quiet"], capsys)
    assert rc == 1 and "more than any file can hold" in _one_line(err, "convert")
    assert not out.exists() and not list(tmp_path.glob("*.tmp*"))


def test_deep_attributes_json_is_left_as_data(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An attributes record nested past 128 levels is not taken as paramio's record (100,000
    levels raised RecursionError on older code; 900 loaded, and then every json.dumps of it
    sat within a few frames of the recursion limit): the entry stays a data entry."""
    for depth in (100_000, 900):
        path = S.irpa_deep_attributes(tmp_path / f"deep{depth}.irpa", depth=depth)
        contents = read_path(str(path))
        assert [e.key for e in contents.entries] == ["__paramio_attributes__"] and not contents.attributes
        rc, _, err = _cli(["dump", f"--parameters={path}"], capsys)
        assert rc == 0 and not err, err


def test_nul_byte_in_a_file_name_read_from_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """main: ValueError ("embedded null byte") for an EXTERNAL path and a shard name."""
    irpa = S.irpa_external(tmp_path / "ext.irpa", b"a\0b")
    index = S.index_many_shards(tmp_path, shards=1, name="a\0b{}.safetensors")
    for path in (irpa, index):
        with pytest.raises(ParamioError, match="NUL|must be a file name"):
            read_path(str(path))
        rc, _, err = _cli(["dump", f"--parameters={path}"], capsys)
        assert rc == 1
        _one_line(err, "dump")


def test_non_utf8_key_on_a_strict_ascii_stdout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """main: UnicodeEncodeError when a key with undecodable bytes (or any non-ASCII key) is
    printed to a stdout that cannot encode it (LANG=C, PYTHONIOENCODING=ascii)."""
    path = tmp_path / "k.irpa"
    path.write_bytes(
        S.irpa_bytes(
            [(2, (0, 3), (0, 0), S.data_tail(0, 0)), (2, (3, 6), (0, 0), S.data_tail(0, 0))],
            b"\xff\xfeagr\xc3\xb6\xc3\x9f",
        )
    )
    raw = io.BytesIO()
    strict = io.TextIOWrapper(raw, encoding="ascii", errors="strict")
    monkeypatch.setattr(sys, "stdout", strict)
    for argv in (["dump", f"--parameters={path}"], ["dump", f"--parameters={path}", "--json"]):
        assert main(argv) == 0
    strict.flush()
    text = raw.getvalue().decode("ascii")
    assert "\\xff\\xfea" in text and "gr\\xf6\\xdf" in text  # escaped, not a crash
    assert strict.errors == "strict"  # the stream is given back as it was


@pytest.mark.parametrize(
    ("exc", "message"),
    [
        (RecursionError("maximum recursion depth exceeded"), "the input nests too deeply to process (RecursionError)"),
        (MemoryError(), "out of memory (MemoryError)"),
        (ValueError("x" * 10_000), "unexpected ValueError: " + "x" * 400 + "..."),
        (OverflowError("int too large"), "unexpected OverflowError: int too large"),
    ],
)
def test_cli_boundary_turns_any_exception_into_one_line(
    exc: BaseException, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """The last line of defence: what escapes the library still ends as one line, exit 1."""
    from paramio.cli.errors import guarded

    def body() -> int:
        raise exc

    assert guarded("dump", body, debug=lambda: False) == 1
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [
        f"paramio dump: {message}" + ("" if "unexpected" not in message else " (--debug shows where)")
    ]


def test_zero_size_tensor_with_huge_dims_converts(tmp_path: Path) -> None:
    """A 0-element tensor may have any other dimension: GGUF stores it under a stand-in (no
    dimension past int64 is written) and paramio reads the type back; TENSORv0 cannot hold it
    as a NumPy shape, so the IRPA copy reads back as bytes."""
    path = tmp_path / "z.safetensors"
    path.write_bytes(S.safetensors_bytes({"w": {"dtype": "F32", "shape": [0, 2**64 - 1], "data_offsets": [0, 0]}}))
    entries = read_path(str(path)).entries
    write_path(str(tmp_path / "z.gguf"), entries, on_loss="ignore")
    back = read_path(str(tmp_path / "z.gguf")).entries[0]
    assert back.tensor is not None and back.tensor.shape == (0, 2**64 - 1)
    write_path(str(tmp_path / "z.irpa"), entries, on_loss="ignore")
    assert paramio.ParameterIndex.open(tmp_path / "z.irpa")["w"].to_numpy().dtype == np.uint8
