"""Tensor-parallel archives run in IREE and give the unsharded model's results.

IREE 3.13 on this machine cannot compile a program for two CPU devices: iree-compile crashes
(SIGSEGV in ``DeviceAnalysis::gatherDeviceTargets``) on a module with two ``#hal.device.target``
globals and ``#hal.device.affinity`` placements, and the ``--iree-hal-target-device=a=local
--iree-hal-target-device=b=local`` form fails to legalize ``stream.executable``. So the TP
program runs its N "devices" as N parameter scopes on one device (the devices layout), or as one
scope of ``<key>.shard.<i>`` keys (the keys layout), which is exactly what a multi-device
program reads: each device's weights from its own file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from paramio import ParameterIndex
from paramio.sharding import merge, shard
from paramio.sharding.iree import expand_parameters

pytestmark = pytest.mark.interop

# y = D (Q x) + b: Q [8x4] split by rows (axis 0), D [4x8] by columns (axis 1), b replicated.
# With Q = [Q0; Q1] and D = [D0 D1]: D (Q x) = D0 (Q0 x) + D1 (Q1 x).
_MATVEC = """
  %{o}e = tensor.empty() : tensor<{n}xf32>
  %{o}z = linalg.fill ins(%c0 : f32) outs(%{o}e : tensor<{n}xf32>) -> tensor<{n}xf32>
  %{o} = linalg.matvec ins(%{w}, %{x} : tensor<{n}x{k}xf32>, tensor<{k}xf32>) outs(%{o}z : tensor<{n}xf32>) -> tensor<{n}xf32>
"""

UNSHARDED = (
    """
util.global private @q = #flow.parameter.named<"model"::"q.weight"> : tensor<8x4xf32>
util.global private @d = #flow.parameter.named<"model"::"d.weight"> : tensor<4x8xf32>
util.global private @b = #flow.parameter.named<"model"::"bias"> : tensor<4xf32>
func.func @f(%x: tensor<4xf32>) -> tensor<4xf32> {
  %c0 = arith.constant 0.0 : f32
  %q = util.global.load @q : tensor<8x4xf32>
  %d = util.global.load @d : tensor<4x8xf32>
  %b = util.global.load @b : tensor<4xf32>
"""
    + _MATVEC.format(o="h", w="q", x="x", n=8, k=4)
    + _MATVEC.format(o="y", w="d", x="h", n=4, k=8)
    + """
  %r = arith.addf %y, %b : tensor<4xf32>
  return %r : tensor<4xf32>
}
"""
)


def _tp_program(names: list[tuple[str, str]]) -> str:
    """The TP=2 program; `names[i]` is (scope, key suffix) of device i's pieces."""
    globals_ = []
    for i, (scope, sfx) in enumerate(names):
        globals_.append(
            f'util.global private @q{i} = #flow.parameter.named<"{scope}"::"q.weight{sfx}"> : tensor<4x4xf32>'
        )
        globals_.append(
            f'util.global private @d{i} = #flow.parameter.named<"{scope}"::"d.weight{sfx}"> : tensor<4x4xf32>'
        )
    globals_.append(f'util.global private @b = #flow.parameter.named<"{names[0][0]}"::"bias"> : tensor<4xf32>')
    body = ["func.func @f(%x: tensor<4xf32>) -> tensor<4xf32> {", "  %c0 = arith.constant 0.0 : f32"]
    for i in range(len(names)):
        body.append(f"  %q{i} = util.global.load @q{i} : tensor<4x4xf32>")
        body.append(f"  %d{i} = util.global.load @d{i} : tensor<4x4xf32>")
        body.append(_MATVEC.format(o=f"h{i}", w=f"q{i}", x="x", n=4, k=4))
        body.append(_MATVEC.format(o=f"y{i}", w=f"d{i}", x=f"h{i}", n=4, k=4))
    body += [
        "  %b = util.global.load @b : tensor<4xf32>",
        "  %s = arith.addf %y0, %y1 : tensor<4xf32>",
        "  %r = arith.addf %s, %b : tensor<4xf32>",
        "  return %r : tensor<4xf32>",
        "}",
    ]
    return "\n".join(globals_ + body) + "\n"


@pytest.fixture
def model(tmp_path: Path) -> Path:
    # Small integers: every sum is exact, so the sharded and unsharded results match exactly.
    rng = np.random.default_rng(7)
    index = ParameterIndex()
    index.add_array("q.weight", rng.integers(-4, 5, (8, 4)).astype(np.float32))
    index.add_array("d.weight", rng.integers(-4, 5, (4, 8)).astype(np.float32))
    index.add_array("bias", np.array([1, -2, 3, -4], np.float32))
    path = tmp_path / "model.irpa"
    index.create_archive_file(path)
    return path


def _run(run_tool, iree_tool, vmfb: Path, parameters: list[str]) -> str:  # type: ignore[no-untyped-def]
    r = run_tool(
        [
            iree_tool("iree-run-module"),
            f"--module={vmfb}",
            "--device=local-task",
            "--function=f",
            "--input=4xf32=1,2,-1,3",
            *(f"--parameters={p}" for p in parameters),
        ]
    )
    assert r.returncode == 0, r.stderr
    assert "result[0]" in r.stdout
    return r.stdout


@pytest.mark.parametrize("layout", ["devices", "keys"])
def test_tp_archives_give_the_unsharded_results(
    model, tmp_path, layout, compile_mlir, run_tool, iree_tool, paramio_cli
) -> None:  # type: ignore[no-untyped-def]
    expected = _run(run_tool, iree_tool, compile_mlir(UNSHARDED, "unsharded"), [f"model={model}"])
    result = shard(
        model, tmp_path / f"tp2{layout}", tp=2, split={"q.weight": 0, "d.weight": 1}, replicate=["bias"], layout=layout
    )
    if layout == "devices":
        program = compile_mlir(_tp_program([("model0", ""), ("model1", "")]), "tp2_scopes")
    else:
        program = compile_mlir(_tp_program([("model", ".shard.0"), ("model", ".shard.1")]), "tp2_keys")
    flags = expand_parameters([f"model={result.manifest}"])
    assert len(flags) == (2 if layout == "devices" else 1)
    assert _run(run_tool, iree_tool, program, flags) == expected
    # paramio run takes the manifest itself and serves the same files.
    code, out, err = paramio_cli(
        "run", f"--module={program}", "--function=f", "--input=4xf32=1,2,-1,3", f"--parameters=model={result.manifest}"
    )
    assert code == 0, err
    assert out == expected
    # ... and merging the set gives back the model the unsharded program ran on.
    merge(result.manifest, tmp_path / "back.irpa")
    assert (tmp_path / "back.irpa").read_bytes() == model.read_bytes()


def test_irpa_set_runs_in_iree_shard_by_shard(model, tmp_path, compile_mlir, run_tool, iree_tool, paramio_cli) -> None:  # type: ignore[no-untyped-def]
    import paramio

    program = compile_mlir(UNSHARDED, "unsharded")
    expected = _run(run_tool, iree_tool, program, [f"model={model}"])
    index = ParameterIndex.open(model)
    paramio.write_path(tmp_path / "set.irpa", index.values(), max_shard_size=64)
    manifest = tmp_path / "set.irpa.index.json"
    flags = expand_parameters([f"model={manifest}"])
    assert flags == [f"model={tmp_path}/set-0000{i}-of-00003.irpa" for i in (1, 2, 3)]
    assert _run(run_tool, iree_tool, program, flags) == expected  # IREE merges the shards into one scope
    code, out, err = paramio_cli(
        "run", f"--module={program}", "--function=f", "--input=4xf32=1,2,-1,3", f"--parameters=model={manifest}"
    )
    assert code == 0, err
    assert out == expected
    code, out, _ = paramio_cli(
        "run",
        f"--module={program}",
        "--function=f",
        "--input=4xf32=1,2,-1,3",
        f"--parameters=model={manifest}",
        "--print_iree_flags",
    )
    assert code == 0
    assert out.split() == [
        "iree-run-module",
        f"--module={program}",
        "--device=local-task",
        *(f"--parameters={f}" for f in flags),
        "--function=f",
        "--input=4xf32=1,2,-1,3",
    ]
