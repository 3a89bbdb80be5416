"""paramio dump (IREE's exact text, --json, --table, --extract) and paramio verify."""

from __future__ import annotations

import json
import struct
import subprocess
from pathlib import Path

import pytest

from paramio.cli.dump import offset_alignment


@pytest.fixture
def small_irpa(tmp_path: Path, iree_tool) -> Path:
    path = tmp_path / "small.irpa"
    subprocess.run(
        [
            iree_tool("iree-create-parameters"),
            "--data=w=16xi8=170",
            "--splat=s=4xf32=4.1",
            "--data=z=8xf32",
            f"--output={path}",
            "--quiet",
        ],
        check=True,
    )
    return path


@pytest.mark.interop
def test_text_is_iree_byte_for_byte(small_irpa: Path, small_safetensors: Path, iree_tool, paramio_cli) -> None:
    flags = [f"--parameters={small_irpa}", f"--parameters=st={small_safetensors}", f"--parameters=st={small_irpa}"]
    r = subprocess.run([iree_tool("iree-dump-parameters"), *flags], capture_output=True, text=True, check=True)
    assert paramio_cli("dump", *flags) == (0, r.stdout, "")
    assert paramio_cli("dump") == (0, "", "")


@pytest.mark.interop
def test_extract_where_iree_cannot(
    small_irpa: Path, small_safetensors: Path, tmp_path: Path, iree_tool, paramio_cli
) -> None:
    tool = iree_tool("iree-dump-parameters")
    w_iree, s_iree = tmp_path / "wi.bin", tmp_path / "si.bin"
    r = subprocess.run([tool, f"--parameters={small_irpa}", f"--extract=w={w_iree}"], capture_output=True, text=True)
    assert r.returncode == 1 and "only host allocation file handles" in r.stderr  # default mode: IREE fails
    r = subprocess.run(
        [tool, "--parameter_mode=preload", f"--parameters=sc={small_irpa}", f"--extract=sc::w={w_iree}"],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0
    r = subprocess.run(
        [tool, "--parameter_mode=preload", f"--parameters={small_irpa}", f"--extract=s={s_iree}"],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 1 and "cannot extract parameters of type 0" in r.stderr  # IREE cannot extract splats

    w, s, a = tmp_path / "w.bin", tmp_path / "s.bin", tmp_path / "a.bin"
    code, out, err = paramio_cli(
        "dump",
        f"--parameters=sc={small_irpa}",
        f"--parameters={small_safetensors}",
        f"--extract=sc::w={w}",
        f"--extract=sc::s={s}",
        f"--extract=a.weight={a}",
    )
    assert (code, err) == (0, "")
    assert f"Extracting parameter `sc::w` (16b) to `{w}`...\n" in out
    assert w.read_bytes() == w_iree.read_bytes() == b"\xaa" * 16
    assert s.read_bytes() == struct.pack("<f", 4.1) * 4
    assert a.read_bytes() == struct.pack("<8f", *range(8))
    code, _, err = paramio_cli("dump", f"--parameters={small_irpa}", f"--extract=nope={tmp_path / 'n.bin'}")
    assert code == 1 and "'nope'" in err and "extracting parameter with flag `nope=" in err


def test_positional_files_are_parameters(small_irpa: Path, paramio_cli) -> None:
    # One rule for every command that reads files: FILE is --parameters=FILE (IREE refuses it).
    assert paramio_cli("dump", str(small_irpa)) == paramio_cli("dump", f"--parameters={small_irpa}")
    code, _, err = paramio_cli("dump", "missing.irpa")
    assert code == 1 and "missing.irpa" in err


@pytest.mark.interop
def test_json_schema(small_irpa: Path, paramio_cli) -> None:
    code, out, _ = paramio_cli("dump", f"--parameters=m={small_irpa}", "--json", "--parameter_mode=preload")
    doc = json.loads(out)
    assert code == 0 and doc["version"] == 1
    s, w, z = doc["entries"]
    assert s == {
        "scope": "m",
        "key": "s",
        "kind": "splat",
        "dtype": None,
        "shape": None,
        "length": 16,
        "offset": None,
        "end": None,
        "alignment": None,
        "pattern": "33338340",
        "metadata": None,
        "metadata_encoding": None,
        "origin": None,
        "format": "irpa",
    }
    assert (w["offset"], w["end"], w["alignment"], w["origin"]) == (384, 400, 128, str(small_irpa))
    assert (z["offset"], z["alignment"]) == (448, 64)


def test_names_are_escaped_in_table_and_json(tmp_path: Path, paramio_cli) -> None:
    path = tmp_path / "evil.irpa"
    assert paramio_cli("create", "--quiet", "--splat=a\x1b[31m[bold]x=4xi8=1", f"--output={path}")[0] == 0
    code, out, _ = paramio_cli("dump", f"--parameters={path}", "--table")
    assert code == 0 and "\x1b" not in out and "a\\x1b[31m[bold]x" in out
    code, out, _ = paramio_cli("dump", f"--parameters={path}", "--json")
    assert "\x1b" not in out and json.loads(out)["entries"][0]["key"] == "a\x1b[31m[bold]x"


def test_offset_alignment() -> None:
    assert [offset_alignment(o) for o in (0, 1, 96, 384, 8192 * 3)] == [4096, 1, 32, 128, 4096]


@pytest.mark.interop
def test_verify_good_and_bad(small_irpa: Path, small_safetensors: Path, tmp_path: Path, paramio_cli) -> None:
    code, out, _ = paramio_cli("verify", str(small_irpa), str(small_safetensors))
    assert code == 0 and f"{small_irpa}: irpa, 3 entries: OK" in out
    assert "zero-copy at 64: 1 of 4 data entries" in out  # safetensors packs tensors at 8-byte steps
    code, out, _ = paramio_cli("verify", str(small_safetensors), "--alignment=64")
    assert code == 1 and "less than --alignment=64" in out
    # two data entries made to overlap: z's storage offset moved onto w's
    data = bytearray(small_irpa.read_bytes())
    struct.pack_into("<Q", data, 0x110 + 0x3C, 8)
    bad = tmp_path / "overlap.irpa"
    bad.write_bytes(bytes(data))
    code, out, _ = paramio_cli("verify", str(bad))
    assert code == 1 and "entry 'z' at offset 0x188: data overlaps entry 'w' (0x180..0x190)" in out
    # a splat whose pattern does not divide its length
    struct.pack_into("<Q", data, 0x60 + 0x3C, 10)
    bad.write_bytes(bytes(data))
    code, out, _ = paramio_cli("verify", str(bad), "--json")
    problems = json.loads(out)["files"][0]["problems"]
    assert (
        code == 1
        and {"key": "s", "offset": None, "message": "splat length 10 is not a multiple of its 4-byte pattern"}
        in problems
    )
    trunc = tmp_path / "trunc.irpa"
    trunc.write_bytes(small_irpa.read_bytes()[:200])
    code, out, _ = paramio_cli("verify", str(trunc))
    assert code == 1 and "problem:" in out
    assert paramio_cli("verify")[0] == 2
