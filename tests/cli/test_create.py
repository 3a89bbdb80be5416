"""paramio create: IREE's bytes and listing, its bug fixed, its errors as one line."""

from __future__ import annotations

import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest

from paramio.index.index import ParameterIndex

CASES = [
    ["--data=w=16xi8=170", "--splat=s=4xf32=4.1", "--data=z=8xf32"],
    ["--data=zz=16xi8=170", "--splat=yy=4xf32=4.1", "--data=aa=8xf32", "--splat=bb=2x4096xi16=123", "--alignment=32"],
    ["--splat=my.splat_param_1=4096xf32=4.1", "--splat=my.splat_param_2=2x4096xi16=123"],
    ["--data=my.zeroed_param_1=4096xf32", "--data=my.zeroed_param_2=2x4096xi16", "--splat=x=*32=CAFEF00D"],
    [],
]


@pytest.mark.interop
@pytest.mark.parametrize("flags", CASES)
def test_byte_identical_to_iree(flags: list[str], tmp_path: Path, iree_tool, paramio_cli) -> None:
    iree_out, ours = tmp_path / "iree.irpa", tmp_path / "ours.irpa"
    r = subprocess.run(
        [iree_tool("iree-create-parameters"), *flags, f"--output={iree_out}"], capture_output=True, text=True
    )
    assert r.returncode == 0, r.stderr
    code, out, err = paramio_cli("create", *flags, f"--output={ours}")
    assert (code, err) == (0, "")
    assert ours.read_bytes() == iree_out.read_bytes()
    assert out == r.stdout.replace(str(iree_out), str(ours))


@pytest.mark.interop
def test_guide_example_iree_fails_paramio_fills(tmp_path: Path, iree_tool, paramio_cli) -> None:
    flags = [
        "--data=my.zeroed_param_1=4096xf32",
        "--data=my.zeroed_param_2=2x4096xi16",
        "--data=my.pattern_param_2=8x2xf32=2.1",
    ]
    r = subprocess.run(
        [iree_tool("iree-create-parameters"), *flags, f"--output={tmp_path / 'i.irpa'}"], capture_output=True, text=True
    )
    assert r.returncode == 1 and "write failed" in r.stderr
    out = tmp_path / "p.irpa"
    code, _, err = paramio_cli("create", "--quiet", *flags, f"--output={out}")
    assert (code, err) == (0, "")
    import iree.runtime as rt

    idx = rt.ParameterIndex()
    idx.load(str(out))
    entries = dict(idx.items())
    assert np.asarray(entries["my.pattern_param_2"].file_view).view(np.float32).tolist() == [np.float32(2.1)] * 16
    assert not np.asarray(entries["my.zeroed_param_2"].file_view).any()


def test_typed_adds_tensor_metadata(tmp_path: Path, paramio_cli) -> None:
    out = tmp_path / "t.irpa"
    code, _, _ = paramio_cli(
        "create",
        "--typed",
        "--quiet",
        "--splat=s=2x3xbf16=1.5",
        "--data=d=4xi16=-2",
        "--data=x=2x*32=CAFEF00D",
        f"--output={out}",
    )
    assert code == 0
    idx = ParameterIndex.open(out)
    assert idx["s"].dtype == "bfloat16" and idx["s"].shape == (2, 3)
    assert idx["d"].to_numpy().tolist() == [-2, -2, -2, -2]
    assert idx["x"].tensor is None and idx["x"].read() == bytes.fromhex("CAFEF00D") * 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--bogus=1"], "paramio create: unknown flag '--bogus' (see --help)\n"),
        (["--data=w"], "paramio create: --data=w: expected name=SHAPExTYPE[=value], e.g. --data=w=4xf32=1.5\n"),
        (
            ["--data=w=4xq8"],
            "paramio create: --data=w=4xq8: unknown element type 'q8'; expected iN, siN, uiN, fN, bfN, cfN, xN, f8E5M2, f8E4M3FN, f8E5M2FNUZ, f8E4M3FNUZ or f8E8M0FNU\n",
        ),
        (["--splat=w=4xi8=300"], "paramio create: --splat=w=4xi8=300: '300' is out of range for i8 (-128..255)\n"),
        (
            ["--splat=w=2xi24=000001"],
            "paramio create: --splat=w=...: a 3-byte element cannot be a splat pattern (1, 2, 4, 8 or 16 bytes)\n",
        ),
        (["--alignment=48"], "paramio create: --alignment=48: expected a power of two such as 64\n"),
        (["--quiet=maybe"], "paramio create: --quiet=maybe: expected true or false\n"),
    ],
)
def test_usage_errors(args: list[str], message: str, tmp_path: Path, paramio_cli) -> None:
    out = tmp_path / "e.irpa"
    code, stdout, err = paramio_cli("create", *args, f"--output={out}")
    assert (code, stdout, err) == (2, "", message)
    assert not out.exists()


def test_missing_output_and_debug(paramio_cli) -> None:
    assert paramio_cli("create", "--splat=a=4xf32=1") == (2, "", "paramio create: --output=file.irpa is required\n")
    code, _, err = paramio_cli("create", "--debug", "--splat=a=4xf32=1")
    assert code == 2 and "Traceback" in err and err.endswith("--output=file.irpa is required\n")


def test_flagfile_and_bools(tmp_path: Path, paramio_cli) -> None:
    ff = tmp_path / "flags.txt"
    out = tmp_path / "f.irpa"
    ff.write_text(f"# comment\n\n  --splat=b=2xi8=3  \n--quiet\n--output={out}\n")
    assert paramio_cli("create", f"--flagfile={ff}") == (0, "", "")
    code, stdout, _ = paramio_cli("create", f"--flagfile={ff}", "--quiet=false")  # later flags override
    assert code == 0 and "`b`" in stdout
    data = out.read_bytes()
    assert data[0xA4:0xA5] == b"\x03" and struct.unpack_from("<Q", data, 0x9C)[0] == 2


def test_help_has_examples(paramio_cli) -> None:
    code, out, _ = paramio_cli("create", "--help")
    assert code == 0 and "--data=my.pattern_param_2=8x2xf32=2.1" in out and "--alignment=64" in out
