"""Element types and values: paramio's bytes against iree-create-parameters' own."""

from __future__ import annotations

import struct
import subprocess
from pathlib import Path

import pytest

from paramio.formats.elements import ElementError, parse_element, parse_element_type, parse_shape_and_type


def _bytes(spec: str) -> bytes:
    shape, _, value = spec.rpartition("=")
    t = parse_shape_and_type(shape)
    return parse_element(t.element, value)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("2xi8=-1", "ff"),
        ("2xi16=0x10", "1000"),
        ("2xi16=010", "0800"),
        ("2xi16=12abc", "0c00"),
        ("2xi16=08", "0000"),
        ("2xi32=99999999999", "ffe77648"),
        ("2xui32=-1", "ffffffff"),
        ("2xi64=1e3", "0100000000000000"),
        ("2xf16=2.1", "3340"),
        ("2xbf16=2.1", "0640"),
        ("2xf32=2.1", "66660640"),
        ("2xf64=2.1", "cdcccccccccc0040"),
        ("2xf32=0x1p3", "00000041"),
        ("2xf32=1.5abc", "0000c03f"),
        ("2xf8E5M2=nan", "7f"),
        ("2xf8E8M0FNU=0", "00"),
        ("*32=CAFEF00D", "cafef00d"),
        ("4xi1=01", "01"),
    ],
)
def test_values_as_iree_parses_them(spec: str, expected: str) -> None:
    assert _bytes(spec).hex() == expected


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("2xi8=256", "'256' is out of range for i8 (-128..255)"),
        ("2xsi8=255", "'255' is out of range for si8 (at most 127)"),
        ("2xui8=-1", "'-1' is out of range for ui8 (0..255)"),
        ("2xf32=1e-46", "'1e-46' underflows to zero in f32"),
        ("2xi32=9223372036854775806", "'9223372036854775806' is too long for i32 (IREE reads at most 15 characters)"),
        ("2xi64=99999999999999999999", "'99999999999999999999' is out of range for i64"),
        ("2xi16=abc", "'abc' is not an integer for i16"),
        ("2xf32=e5", "'e5' is not a number for f32"),
        ("x32=CAFE", "'CAFE' is not a x32 value; expected exactly 8 hex digits (bytes in text order)"),
    ],
)
def test_bad_values(spec: str, message: str) -> None:
    shape, _, value = spec.rpartition("=")
    element = parse_element_type(shape.rpartition("x")[2]) if not shape.startswith("x") else parse_element_type(shape)
    with pytest.raises(ElementError) as info:
        parse_element(element, value)
    assert str(info.value) == message


def test_types() -> None:
    assert parse_element_type("cf64").dtype == "complex64"  # N is the whole complex number
    assert parse_element_type("i1").nbytes == 1 and parse_element_type("i1").dtype == "bool"
    assert parse_element_type("f8E4M3FNUZ").dtype == "float8_e4m3fnuz"
    assert parse_element_type("x32").dtype is None
    with pytest.raises(ElementError, match="sub-byte"):
        parse_element_type("i4")
    with pytest.raises(ElementError, match="unknown element type 'F32'"):
        parse_element_type("F32")
    st = parse_shape_and_type("2x3x4xf32")
    assert st.shape == (2, 3, 4) and st.nbytes == 96
    assert parse_shape_and_type("f32").shape == ()
    with pytest.raises(ElementError, match="invalid shape '2x'"):
        parse_shape_and_type("2xx32")


# Values chosen to hit rounding ties, subnormals, overflow, NaN and the f8 encodings' edges.
_FLOATS = [
    "0",
    "-0",
    "1",
    "-1",
    "2.1",
    "0.1",
    "1e-40",
    "-1e-45",
    "1e-46",
    "3.4028235e38",
    "3.4028236e38",
    "1e39",
    "65504",
    "65520",
    "70000",
    "6e-8",
    "3e-8",
    "1.00390625",
    "1.01171875",
    "448",
    "464",
    "500",
    "1000",
    "57344",
    "61440",
    "1e6",
    "0.0001",
    "0.001953125",
    "0.0009765625",
    "inf",
    "-inf",
    "nan",
    "-nan",
    "0x1.fffffep127",
    "0x1p-149",
    "0x1p-150",
    "0x1.8p-150",
    "3",
    "1.5",
    "0.75",
    "2.5e-5",
    "1.7014118e38",
    "0.333333333333333314829616256247390992939472198486328125",
]
_FLOAT_TYPES = ["f16", "bf16", "f32", "f64", "f8E5M2", "f8E4M3FN", "f8E5M2FNUZ", "f8E4M3FNUZ", "f8E8M0FNU"]
_INTS = [
    "0",
    "-1",
    "127",
    "-128",
    "255",
    "32767",
    "-32768",
    "65535",
    "0x7fffffff",
    "4294967295",
    "-2147483649",
    "9223372036854775807",
    "-9223372036854775808",
    "18446744073709551615",
    "077",
    "0xABCDEF",
    "+12",
    " 5",
    "1x",
]
_INT_TYPES = ["i8", "si8", "ui8", "i16", "si16", "ui16", "i32", "si32", "ui32", "i64", "si64", "ui64"]


def _iree_patterns(tool: str, specs: list[str], tmp_path: Path) -> dict[str, bytes | None]:
    """Run iree-create-parameters once per spec batch; one splat per spec. Specs IREE rejects
    are found by bisecting the batch on failure (rare)."""
    out: dict[str, bytes | None] = {}
    path = tmp_path / "probe.irpa"

    def run(batch: list[str]) -> None:
        if not batch:
            return
        args = [tool, "--quiet", f"--output={path}"] + [f"--splat=s{i}={s}" for i, s in enumerate(batch)]
        r = subprocess.run(args, capture_output=True, timeout=60)
        if r.returncode != 0:
            if len(batch) == 1:
                out[batch[0]] = None
                return
            mid = len(batch) // 2
            run(batch[:mid])
            run(batch[mid:])
            return
        data = path.read_bytes()
        for i, s in enumerate(batch):
            at = 96 + 96 * i  # each splat entry is 85 bytes, 16-aligned
            plen = data[at + 0x54]
            out[s] = data[at + 0x44 : at + 0x44 + plen]

    run(specs)
    return out


@pytest.mark.interop
def test_every_value_matches_iree(iree_tool, tmp_path: Path) -> None:
    tool = iree_tool("iree-create-parameters")
    specs = [f"1x{t}={v}" for t in _FLOAT_TYPES for v in _FLOATS] + [f"1x{t}={v}" for t in _INT_TYPES for v in _INTS]
    iree = _iree_patterns(tool, specs, tmp_path)
    mismatches = []
    for spec in specs:
        try:
            ours: bytes | None = _bytes(spec)
        except ElementError:
            ours = None
        if ours != iree[spec]:
            mismatches.append((spec, ours.hex() if ours else None, iree[spec].hex() if iree[spec] else None))
    assert mismatches == [], "\n".join(map(str, mismatches))
    assert struct.unpack("<f", _bytes("1xf32=2.1"))[0] == pytest.approx(2.1)
