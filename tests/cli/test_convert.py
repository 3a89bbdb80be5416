"""paramio convert: IREE's archive where IREE is right, and the fixes where it is not."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from paramio.index.index import ParameterIndex


def _iree_load(path: Path) -> dict[str, tuple[int, bytes]]:
    import iree.runtime as rt

    idx = rt.ParameterIndex()
    idx.load(str(path))
    out = {}
    for k, e in idx.items():
        data = bytes(np.asarray(e.file_view)) if e.is_file else (e.splat_pattern * e.length)[: e.length]
        out[k] = (e.length, data)
    return out


@pytest.mark.interop
@pytest.mark.parametrize(
    "extra",
    [
        [],
        ["--exclude=unneeded", "--rename=a.weight=renamed.weight", "--splat=b.bias=i16=9", "--splat=c.half"],
        ["--strip", "--splat=a.weight=f32=1.0"],
        ["--splat=a.weight=x32=CAFEF00D"],
    ],
)
def test_byte_identical_with_typed_false(
    extra, small_safetensors: Path, tmp_path: Path, iree_tool, paramio_cli
) -> None:
    i_out, p_out = tmp_path / "i.irpa", tmp_path / "p.irpa"
    flags = [f"--parameters={small_safetensors}", *extra]
    r = subprocess.run(
        [iree_tool("iree-convert-parameters"), *flags, f"--output={i_out}"], capture_output=True, text=True
    )
    assert r.returncode == 0, r.stderr
    code, out, err = paramio_cli("convert", *flags, "--typed=false", f"--output={p_out}")
    assert (code, err) == (0, "")
    assert p_out.read_bytes() == i_out.read_bytes()
    assert out == r.stdout
    # irpa in, irpa out: IREE's own output converts to itself
    p2 = tmp_path / "p2.irpa"
    assert paramio_cli("convert", f"--parameters={i_out}", "--quiet", f"--output={p2}")[0] == 0
    i2 = tmp_path / "i2.irpa"
    subprocess.run(
        [iree_tool("iree-convert-parameters"), f"--parameters={i_out}", "--quiet", f"--output={i2}"], check=True
    )
    assert p2.read_bytes() == i2.read_bytes()


@pytest.mark.interop
def test_typed_output_loads_in_iree_with_same_contents(
    small_safetensors, small_gguf, tmp_path, iree_tool, paramio_cli
) -> None:
    flags = [
        f"--parameters={small_gguf}",
        f"--parameters={small_safetensors}",
        "--exclude=unneeded",
        "--rename=a.weight=renamed.weight",
        "--splat=b.bias=i16=9",
        "--splat=g.half",
    ]
    i_out, p_out = tmp_path / "i.irpa", tmp_path / "p.irpa"
    subprocess.run([iree_tool("iree-convert-parameters"), *flags, f"--output={i_out}", "--quiet"], check=True)
    assert paramio_cli("convert", *flags, "--quiet", f"--output={p_out}") == (0, "", "")
    ours = _iree_load(p_out)
    assert set(ours) == set(_iree_load(i_out))  # no paramio-internal entry: attributes are in a SKIP entry
    for k, v in _iree_load(i_out).items():
        assert ours[k] == v, k
    idx = ParameterIndex.open(p_out)
    assert idx["renamed.weight"].dtype == "float32" and idx["renamed.weight"].shape == (8,)
    assert idx["b.bias"].dtype == "int16" and idx["b.bias"].is_splat
    assert (
        idx.attributes.get("general.architecture") in ("llama", {"type": "string", "value": "llama"}) or idx.attributes
    )


def test_duplicates_policy_and_warnings(small_safetensors: Path, tmp_path: Path, paramio_cli) -> None:
    first = tmp_path / "first.irpa"
    assert (
        paramio_cli(
            "convert", f"--parameters={small_safetensors}", "--quiet", "--rename=a.weight=x", f"--output={first}"
        )[0]
        == 0
    )
    out = tmp_path / "o.irpa"
    code, _, err = paramio_cli(
        "convert",
        f"--parameters={first}",
        f"--parameters={small_safetensors}",
        "--quiet",
        f"--output={out}",
        "--exclude=nope",
    )
    assert code == 0
    assert "warning: --exclude=nope names no parameter" in err
    assert "parameter 'b.bias' appears 2 times" in err and "kept the first" in err
    idx = ParameterIndex.open(out)
    assert idx.keys() == ["x", "unneeded", "c.half", "b.bias", "a.weight"]
    code, _, err = paramio_cli(
        "convert",
        f"--parameters={first}",
        f"--parameters={small_safetensors}",
        "--duplicates=error",
        f"--output={tmp_path / 'e.irpa'}",
    )
    assert code == 1 and "appears 2 times" in err and not (tmp_path / "e.irpa").exists()


def test_rename_onto_existing_key_refused(small_safetensors: Path, tmp_path: Path, paramio_cli) -> None:
    out = tmp_path / "r.irpa"
    code, stdout, err = paramio_cli(
        "convert", f"--parameters={small_safetensors}", "--rename=a.weight=b.bias", f"--output={out}"
    )
    assert (code, stdout) == (1, "")
    assert (
        err
        == f"paramio convert: --rename=a.weight=b.bias: 'b.bias' is already a parameter (from {small_safetensors}); nothing was written\n"
    )
    assert list(tmp_path.iterdir()) == [small_safetensors]


def test_output_over_an_input_is_atomic(small_safetensors: Path, tmp_path: Path, paramio_cli) -> None:
    path = tmp_path / "m.irpa"
    assert paramio_cli("convert", f"--parameters={small_safetensors}", "--quiet", f"--output={path}")[0] == 0
    before = ParameterIndex.open(path)["a.weight"].to_numpy().tolist()
    assert paramio_cli("convert", f"--parameters={path}", "--quiet", "--rename=a.weight=w", f"--output={path}")[0] == 0
    idx = ParameterIndex.open(path)
    assert idx["w"].to_numpy().tolist() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.irpa", "small.safetensors"]


def test_usage_errors(small_safetensors: Path, tmp_path: Path, paramio_cli) -> None:
    o = f"--output={tmp_path / 'o.irpa'}"
    p = f"--parameters={small_safetensors}"
    assert paramio_cli("convert", p, "--rename=abc", o) == (2, "", "paramio convert: --rename=abc: expected old=new\n")
    assert paramio_cli("convert", p, "--splat=a=f32", o) == (
        2,
        "",
        "paramio convert: --splat=a=f32: expected name=TYPE=VALUE (e.g. f32=4.5, i8=123, x32=CAFEF00D)\n",
    )
    assert paramio_cli("convert", p, "--splat=a=q8=1", o)[0] == 2
    assert paramio_cli("convert", p, "--duplicates=maybe", o) == (
        2,
        "",
        "paramio convert: --duplicates=maybe: expected first, last or error\n",
    )
    assert paramio_cli("convert", p) == (
        2,
        "",
        "paramio convert: --output=file is required (.irpa, .safetensors or .gguf)\n",
    )
    code, _, err = paramio_cli("convert", p, "--splat=b.bias=f64=1.0", o)
    assert (
        code == 1
        and err == "paramio convert: --splat: parameter 'b.bias' (12 bytes) is not a whole number of 8-byte patterns\n"
    )


def test_bad_input_file_is_one_line(tmp_path: Path, paramio_cli) -> None:
    bad = tmp_path / "bad.irpa"
    bad.write_bytes(b"NOPE" + bytes(200))
    code, _, err = paramio_cli("convert", f"--parameters={bad}", f"--output={tmp_path / 'o.irpa'}")
    assert code == 1 and err.count("\n") == 1 and str(bad) in err and "magic" in err


@pytest.mark.interop
def test_irpa_to_safetensors_keeps_dtypes(small_safetensors: Path, tmp_path: Path, paramio_cli) -> None:
    from safetensors.numpy import load_file

    mid, out = tmp_path / "m.irpa", tmp_path / "back.safetensors"
    assert paramio_cli("convert", f"--parameters={small_safetensors}", "--quiet", f"--output={mid}")[0] == 0
    assert paramio_cli("convert", f"--parameters={mid}", "--quiet", "--splat=c.half", f"--output={out}")[0] == 0
    got, want = load_file(str(out)), load_file(str(small_safetensors))
    assert set(got) == set(want)
    for k in want:
        assert got[k].dtype == want[k].dtype and got[k].shape == want[k].shape
        if k != "c.half":
            np.testing.assert_array_equal(got[k], want[k])
    assert not got["c.half"].any()


@pytest.mark.interop
def test_safetensors_to_gguf_reads_in_gguf_package(small_safetensors: Path, tmp_path: Path, paramio_cli) -> None:
    gguf = pytest.importorskip("gguf")
    out = tmp_path / "o.gguf"
    code, _, err = paramio_cli("convert", f"--parameters={small_safetensors}", "--quiet", f"--output={out}")
    assert code == 0, err
    reader = gguf.GGUFReader(str(out))
    tensors = {t.name: np.asarray(t.data) for t in reader.tensors}
    np.testing.assert_array_equal(tensors["a.weight"].reshape(-1), np.arange(8, dtype=np.float32))


@pytest.mark.slow
def test_peak_memory_stays_flat(tmp_path: Path) -> None:
    """Converting 320 MB adds far less than 320 MB to the child's peak RSS."""
    from safetensors.numpy import save_file

    def child_peak(args: list[str]) -> int:
        code = (
            "import resource, subprocess, sys; "
            "r = subprocess.run(sys.argv[1:]); "
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(r.returncode)"
        )
        r = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        return int(r.stdout.strip().splitlines()[-1]) * 1024

    src = tmp_path / "big.safetensors"
    save_file({f"t{i}": np.full(20 << 20, i, np.float32) for i in range(4)}, str(src))  # 4 x 80 MB
    size = src.stat().st_size
    base = child_peak([sys.executable, "-m", "paramio", "convert", "--help"])
    t0 = time.perf_counter()
    peak = child_peak(
        [
            sys.executable,
            "-m",
            "paramio",
            "convert",
            f"--parameters={src}",
            "--quiet",
            f"--output={tmp_path / 'big.irpa'}",
        ]
    )
    assert time.perf_counter() - t0 < 10
    assert peak - base < 64 << 20, (peak, base, size)
    idx = ParameterIndex.open(tmp_path / "big.irpa")
    assert idx["t3"].to_numpy()[-1] == 3 and idx["t3"].dtype == "float32"
    _ = os, resource
