"""`paramio encode` with IREE as the oracle, as IREE's own e2e test (tests/e2e/parameters/
encode_parameters.mlir) runs iree-encode-parameters: compile a program with an encoder output
and a splat archive, compile the encoder, encode, then IREE's iree-run-module with both scopes
prints the values the encoder precomputed. Plus real (non-splat) weights checked against NumPy
in both encoder modes, the listings, and the errors."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from paramio import ParameterIndex
from paramio.formats.registry import write_path

pytestmark = [pytest.mark.interop, pytest.mark.slow, pytest.mark.usefixtures("bindings")]

Cli = Callable[..., tuple[int, str, str]]

# IREE's e2e program; `linalg.add` is unknown to IREE 3.13's parser, so the same addition is an
# `arith.addi` on tensors.
SPLAT_PROGRAM = """
util.global private @raw_param = #flow.parameter.named<"model"::"param_global"> : tensor<256xi32>
util.global private @transformed : tensor<256xi32>
util.initializer {
  %raw = util.global.load @raw_param : tensor<256xi32>
  %c42 = arith.constant 42 : i32
  %init = tensor.empty() : tensor<256xi32>
  %c42_tensor = linalg.fill ins(%c42 : i32) outs(%init : tensor<256xi32>) -> tensor<256xi32>
  %added = arith.addi %raw, %c42_tensor : tensor<256xi32>
  util.global.store %added, @transformed : tensor<256xi32>
  util.return
}
func.func @main() -> tensor<256xi32> {
  %tensor = util.global.load @transformed : tensor<256xi32>
  return %tensor : tensor<256xi32>
}
"""

# Real weights: the initializer squares the transpose of `w`; `b` is used as it is.
WEIGHTS_PROGRAM = """
util.global private @w = #flow.parameter.named<"model"::"w"> : tensor<4x8xf32>
util.global private @b = #flow.parameter.named<"model"::"b"> : tensor<8xf32>
util.global private @wt : tensor<8x4xf32>
util.initializer {
  %w = util.global.load @w : tensor<4x8xf32>
  %init = tensor.empty() : tensor<8x4xf32>
  %t = linalg.transpose ins(%w : tensor<4x8xf32>) outs(%init : tensor<8x4xf32>) permutation = [1, 0]
  %s = arith.mulf %t, %t : tensor<8x4xf32>
  util.global.store %s, @wt : tensor<8x4xf32>
  util.return
}
func.func @main() -> (tensor<8x4xf32>, tensor<8xf32>) {
  %wt = util.global.load @wt : tensor<8x4xf32>
  %b = util.global.load @b : tensor<8xf32>
  return %wt, %b : tensor<8x4xf32>, tensor<8xf32>
}
"""


def _encode_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """`paramio encode` as a user runs it (a process of its own, this checkout's sources)."""
    return subprocess.run(
        [sys.executable, "-m", "paramio", "encode", *args], capture_output=True, text=True, timeout=300, env=os.environ
    )


def _iree_run(iree_tool: Callable[[str], str], vmfb: Path, parameters: list[str], *extra: str) -> str:
    args = [iree_tool("iree-run-module"), f"--module={vmfb}", "--device=local-sync", "--function=main"]
    args += [f"--parameters={p}" for p in parameters] + list(extra)
    r = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return r.stdout


@pytest.fixture(scope="module")
def splat_case(tmp_path_factory: pytest.TempPathFactory, compile_mlir: Callable[..., Path]) -> Path:
    folder = tmp_path_factory.mktemp("encode_splat")
    (folder / "main.mlir").write_text(SPLAT_PROGRAM)
    compile_mlir(
        folder / "main.mlir",
        folder / "main.vmfb",
        f"--iree-parameter-encoder-output-file={folder / 'encoder.mlir'}",
        f"--iree-parameter-splat={folder / 'input.irpa'}",
    )
    compile_mlir(folder / "encoder.mlir", folder / "encoder.vmfb")
    return folder


def test_encode_like_iree_e2e(splat_case: Path, iree_tool: Callable[[str], str]) -> None:
    f = splat_case
    out = f / "output.irpa"
    r = _encode_cli(
        f"--module={f / 'encoder.vmfb'}", f"--parameters=model={f / 'input.irpa'}", f"--output=encoded={out}", "--quiet"
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout == ""
    text = _iree_run(iree_tool, f / "main.vmfb", [f"model={f / 'input.irpa'}", f"encoded={out}"])
    assert "EXEC @main" in text
    assert "256xi32=" + " ".join(["42"] * 256) in text
    # The input splat is zeros: the 42s can only come from the encoded archive.
    zeros = ParameterIndex.open(f / "input.irpa")["param_global"]
    assert zeros.is_splat and zeros.splat_pattern.strip(b"\x00") == b""
    # IREE's own reader takes the archive paramio wrote.
    dump = subprocess.run(
        [iree_tool("iree-dump-parameters"), f"--parameters=encoded={out}"], capture_output=True, text=True, timeout=60
    )
    assert dump.returncode == 0 and "`parameter0`" in dump.stdout, dump.stderr


def test_summary_listings_and_api(splat_case: Path, paramio_cli: Cli, tmp_path: Path) -> None:
    f = splat_case
    code, out, err = paramio_cli("encode", f"--module={f / 'encoder.vmfb'}", "--list_targets")
    assert (code, err) == (0, "")
    assert out == "Encoder module: encoder\nAvailable targets:\n  all\n    scopes: encoded\n"
    code, out, err = paramio_cli("encode", f"--module={f / 'encoder.vmfb'}", "--list_parameters")
    assert (code, out, err) == (0, 'Scope: "encoded"\n  parameter0: DATA, 1024 bytes, alignment 64\n', "")
    target = tmp_path / "o.irpa"
    code, out, err = paramio_cli(
        "encode",
        f"--module={f / 'encoder.vmfb'}",
        f"--parameters=model={f / 'input.irpa'}",
        f"--output=encoded={target}",
    )
    assert code == 0, err
    assert out.startswith("//===" + "-" * 110 + "===//\n" + f"// Output: {target} (4096 bytes)\n")
    assert "// Parameter scope `encoded` (1 entries, 1024 total bytes)" in out
    assert "| `parameter0`" in out
    from paramio.iree.encode import Encoder, encode_parameters

    enc = Encoder(f / "encoder.vmfb", [f"model={f / 'input.irpa'}"])
    assert [(t.name, t.scopes) for t in enc.targets] == [("all", ("encoded",))]
    api = tmp_path / "api.irpa"
    ticks: list[int] = []
    [archive] = encode_parameters(
        f / "encoder.vmfb", [f"model={f / 'input.irpa'}"], {"encoded": api}, progress=ticks.append
    )
    assert ticks == [1024]
    assert archive.scope == "encoded" and archive.size == api.stat().st_size == 4096
    got = ParameterIndex.open(api)["parameter0"].to_numpy()
    assert np.frombuffer(got.tobytes(), np.int32).tolist() == [42] * 256
    assert api.read_bytes() == target.read_bytes()


@pytest.mark.parametrize("mode", ["consolidate", "overlay"])
def test_encode_real_weights(
    mode: str, tmp_path: Path, compile_mlir: Callable[..., Path], iree_tool: Callable[[str], str]
) -> None:
    rng = np.random.default_rng(7)
    w = rng.standard_normal((4, 8)).astype(np.float32)
    b = rng.standard_normal(8).astype(np.float32)
    index = ParameterIndex()
    index.add_buffer("w", w)
    index.add_buffer("b", b)
    # The encoder reads any format paramio serves: an IRPA archive, or here a safetensors file.
    inputs = tmp_path / ("input.irpa" if mode == "consolidate" else "input.safetensors")
    write_path(inputs, list(index.values()))
    (tmp_path / "main.mlir").write_text(WEIGHTS_PROGRAM)
    compile_mlir(
        tmp_path / "main.mlir",
        tmp_path / "main.vmfb",
        f"--iree-parameter-encoder-output-file={tmp_path / 'encoder.mlir'}",
        f"--iree-parameter-encoder-mode={mode}",
    )
    compile_mlir(tmp_path / "encoder.mlir", tmp_path / "encoder.vmfb")
    out = tmp_path / "encoded.irpa"
    r = _encode_cli(
        f"--module={tmp_path / 'encoder.vmfb'}", f"--parameters=model={inputs}", f"--output=encoded={out}", "--quiet"
    )
    assert r.returncode == 0, r.stderr
    expected = np.square(w.T)
    blob = ParameterIndex.open(out)["parameter0"].to_numpy().tobytes()
    if mode == "overlay":  # only what the encoder computed; the program still reads `b` from model
        assert blob == expected.tobytes()
        scopes = [f"model={inputs}", f"encoded={out}"]
    else:  # everything the program reads, packed: it runs on the encoded scope alone
        assert expected.tobytes() in blob and b.tobytes() in blob
        scopes = [f"encoded={out}"]
    _iree_run(
        iree_tool,
        tmp_path / "main.vmfb",
        scopes,
        f"--output=@{tmp_path / 'wt.npy'}",
        f"--output=@{tmp_path / 'b.npy'}",
    )
    np.testing.assert_array_equal(np.load(tmp_path / "wt.npy"), expected)
    np.testing.assert_array_equal(np.load(tmp_path / "b.npy"), b)


def test_errors_name_the_fix(splat_case: Path, paramio_cli: Cli, tmp_path: Path) -> None:
    f = splat_case
    enc = f"--module={f / 'encoder.vmfb'}"
    model = f"--parameters=model={f / 'input.irpa'}"
    code, _, err = paramio_cli("encode", enc, model, f"--output={tmp_path / 'o.irpa'}")
    assert code == 1
    assert "target 'all' writes scope 'encoded': add --output=encoded=FILE" in err
    code, _, err = paramio_cli("encode", enc, f"--output=encoded={tmp_path / 'o.irpa'}")
    assert code == 1 and "give --parameters=model=FILE" in err
    code, _, err = paramio_cli("encode", enc, model, "--target=gpu", f"--output=encoded={tmp_path / 'o.irpa'}")
    assert code == 1 and "target 'gpu' not found in encoder module (its targets: all)" in err
    code, _, err = paramio_cli("encode", f"--module={f / 'main.vmfb'}", f"--output=encoded={tmp_path / 'o.irpa'}")
    assert code == 1 and "no encoder functions found in module" in err
    code, _, err = paramio_cli("encode", enc, model)
    assert code == 2 and "no output specified" in err
    code, _, err = paramio_cli("encode", f"--output=encoded={tmp_path / 'o.irpa'}")
    assert code == 2 and "no modules specified" in err
    # No failure left an output, or a temporary file, behind.
    assert sorted(p.name for p in tmp_path.iterdir()) == []


# A hand-written encoder module whose indices function asks for an alignment of 3, and which has
# no encode function: what the encoder returns is input, checked field by field.
MALFORMED = """
module @bad {
  util.func public @idx() -> !util.list<?> attributes {iree.reflection = {iree.encode.function = "indices", iree.encode.scopes = "encoded", iree.encode.target = "t"}} {
    %scope = util.buffer.constant : !util.buffer = "encoded"
    %key = util.buffer.constant : !util.buffer = "p"
    %null = util.null : !util.buffer
    %c1 = arith.constant 1 : i64
    %len = arith.constant 64 : i64
    %align = arith.constant 3 : i64
    %e = util.list.construct [%c1 : i64, %key : !util.buffer, %null : !util.buffer, %len : i64, %align : i64] : !util.list<?>
    %es = util.list.construct [%e : !util.list<?>] : !util.list<?>
    %s = util.list.construct [%scope : !util.buffer, %es : !util.list<?>] : !util.list<?>
    %all = util.list.construct [%s : !util.list<?>] : !util.list<?>
    util.return %all : !util.list<?>
  }
}
"""


def test_malformed_encoder_module(tmp_path: Path, compile_mlir: Callable[..., Path], paramio_cli: Cli) -> None:
    import dataclasses

    from paramio.core.errors import FormatError
    from paramio.iree.encode import Encoder

    (tmp_path / "bad.mlir").write_text(MALFORMED)
    vmfb = compile_mlir(tmp_path / "bad.mlir", tmp_path / "bad.vmfb")
    code, _, err = paramio_cli("encode", f"--module={vmfb}", "--list_parameters")
    assert code == 1 and "encode function not found for target 't'; encoder module may be incomplete" in err
    encoder = Encoder(vmfb)
    [target] = encoder.targets
    assert (target.name, target.scopes, target.indices, target.steps, target.encode) == (
        "t",
        ("encoded",),
        "idx",
        None,
        None,
    )
    with pytest.raises(
        FormatError, match="scope 'encoded' entry 0: entry 'p' asks for alignment 3, not a power of two"
    ):
        encoder.parameters(dataclasses.replace(target, encode="idx"))
