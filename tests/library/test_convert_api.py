"""`paramio.convert`: ``paramio convert``'s rules from Python (issue 23, item 7).

The command only maps its flags onto this function; the last test checks both write the same bytes.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

import paramio
from paramio import ConversionWarning, DuplicateKeyError, InvalidArgumentError, ParameterIndex
from paramio.index.convert import parse_splat, plan_conversion


@pytest.fixture
def two(tmp_path: Path) -> tuple[Path, Path]:
    a = ParameterIndex()
    a.add_array("x", np.arange(4, dtype=np.float32))
    a.add_array("y", np.arange(8, dtype=np.int16))
    a.create_archive_file(tmp_path / "a.irpa")
    b = ParameterIndex()
    b.add_array("y", np.full(8, 7, dtype=np.int16))
    b.add_array("z", np.ones(2, dtype=np.float64))
    b.create_archive_file(tmp_path / "b.irpa")
    return tmp_path / "a.irpa", tmp_path / "b.irpa"


def test_rename_exclude_splat_and_duplicates(two: tuple[Path, Path], tmp_path: Path) -> None:
    a, b = two
    out = tmp_path / "o.safetensors"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        plan = paramio.convert([a, b], out, exclude=["z", "gone"], rename={"x": "ex"}, splat={"y": "i16=9", "ex": None})
    notes = [str(w.message) for w in caught if issubclass(w.category, ConversionWarning)]
    assert "exclude=gone names no parameter" in notes
    assert any(n.startswith("parameter 'y' appears 2 times") and n.endswith("kept the first") for n in notes)
    assert [e.key for e in plan.entries] == ["ex", "y"]
    got = ParameterIndex.open(out)
    assert got.keys() == ["ex", "y"]
    assert got["y"].read() == bytes([9, 0]) * 8  # the splat, written as data in safetensors
    assert got["ex"].read() == bytes(16)
    assert got["y"].tensor is not None and got["y"].tensor.dtype == "int16"  # typed: dtype kept


def test_duplicates_last_and_error(two: tuple[Path, Path], tmp_path: Path) -> None:
    a, b = two
    plan = plan_conversion([a, b], duplicates="last")
    assert [e.key for e in plan.entries] == ["x", "y", "z"]
    assert plan.entries[1].read() == np.full(8, 7, np.int16).tobytes()
    with pytest.raises(DuplicateKeyError, match=r"parameter 'y' appears 2 times .*nothing was written") as info:
        paramio.convert([a, b], tmp_path / "e.irpa", duplicates="error")
    assert info.value.key == "y" and not (tmp_path / "e.irpa").exists()


def test_scopes_flatten_and_indexes_are_inputs(two: tuple[Path, Path], tmp_path: Path) -> None:
    a, b = two
    mem = ParameterIndex()
    mem.add_array("m", np.arange(3, dtype=np.int32))
    paramio.convert({"first": a, "second": mem}, tmp_path / "s.irpa", strip=True)
    got = ParameterIndex.open(tmp_path / "s.irpa")
    assert got.keys() == ["x", "y", "m"]
    assert all(e.is_splat and e.pattern == b"\0" for e in got.values())  # strip: one zero byte each


def test_refusals_write_nothing(two: tuple[Path, Path], tmp_path: Path) -> None:
    a, _ = two
    out = tmp_path / "r.irpa"
    with pytest.raises(DuplicateKeyError, match=r"^rename=x=y: 'y' is already a parameter \(from .*a.irpa\)"):
        paramio.convert(a, out, rename={"x": "y"})
    odd = ParameterIndex()
    odd.add_array("odd", np.arange(3, dtype=np.int16))  # 6 bytes
    with pytest.raises(
        InvalidArgumentError, match=r"splat: parameter 'odd' \(6 bytes\) is not a whole number of 4-byte"
    ):
        paramio.convert(odd, out, splat={"odd": b"\1\2\3\4"})
    with pytest.raises(InvalidArgumentError, match=r"a 3-byte value cannot be a splat pattern"):
        paramio.convert(a, out, splat={"y": b"\1\2\3"})
    with pytest.raises(InvalidArgumentError, match=r"splat=y=i16=abc: 'abc' is not an integer for i16"):
        paramio.convert(a, out, splat={"y": "i16=abc"})
    with pytest.raises(InvalidArgumentError, match="duplicates='maybe'"):
        paramio.convert(a, out, duplicates="maybe")
    assert not out.exists()
    assert parse_splat("x32=CAFEF00D") == bytes.fromhex("cafef00d") and parse_splat(None) == b"\0"


def test_the_command_writes_what_the_function_writes(two: tuple[Path, Path], tmp_path: Path, paramio_cli) -> None:  # type: ignore[no-untyped-def]
    a, b = two
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        paramio.convert([a, b], tmp_path / "lib.irpa", rename=[("x", "w")], splat=[("y", "i16=3")], typed=False)
    code, _, err = paramio_cli(
        "convert",
        f"--parameters={a}",
        f"--parameters={b}",
        "--rename=x=w",
        "--splat=y=i16=3",
        "--typed=false",
        f"--output={tmp_path / 'cli.irpa'}",
        "--quiet",
    )
    assert code == 0, err
    assert (tmp_path / "lib.irpa").read_bytes() == (tmp_path / "cli.irpa").read_bytes()
