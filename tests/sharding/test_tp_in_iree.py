"""Tensor-parallel archives run in IREE and give the unsharded model's results.

The TP program is compiled for two CPU devices, the way IREE's own multi-device test does it
(``--iree-hal-target-device=device_0=local[0]`` ..., ``#hal.device.promise`` placements,
``--iree-execution-model=async-external``; run with ``--device=local-task`` twice). Each device's
weights are globals placed on that device and read from its own scope (devices layout: file i is
scope ``model<i>``) or from ``<key>.shard.<i>`` keys of one scope (keys layout). On this machine
``#hal.device.target`` globals with ``#hal.device.affinity`` crash iree-compile 3.13 (SIGSEGV in
``DeviceAnalysis::gatherDeviceTargets``); the promise form above works.

``paramio run`` drives one device (``iree.runtime.Config`` takes one), so it is checked on the
same TP program compiled for one device with the scopes side by side.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import paramio
from paramio import ParameterIndex
from paramio.sharding import merge, shard
from paramio.sharding.iree import expand_parameters

pytestmark = pytest.mark.interop

INPUT = "--input=4xf32=1,2,-1,3"

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


def _tp_program(names: list[tuple[str, str]], *, devices: bool) -> str:
    """The TP=2 program; `names[i]` is (scope, key suffix) of device i's pieces. With `devices`,
    device i's globals and work are placed on ``@device_<i>``."""

    def on(i: int) -> str:
        return f"#hal.device.promise<@device_{i}>"

    out: list[str] = []
    for i, (scope, sfx) in enumerate(names):
        attr = f" {{stream.affinity = {on(i)}}}" if devices else ""
        out.append(
            f'util.global private @q{i}{attr} = #flow.parameter.named<"{scope}"::"q.weight{sfx}"> : tensor<4x4xf32>'
        )
        out.append(
            f'util.global private @d{i}{attr} = #flow.parameter.named<"{scope}"::"d.weight{sfx}"> : tensor<4x4xf32>'
        )
    attr0 = f" {{stream.affinity = {on(0)}}}" if devices else ""
    out.append(f'util.global private @b{attr0} = #flow.parameter.named<"{names[0][0]}"::"bias"> : tensor<4xf32>')
    abi = f" {{iree.abi.affinity = {on(0)}}}" if devices else ""
    out += [
        f"func.func public @f(%x: tensor<4xf32>{abi}) -> (tensor<4xf32>{abi}) {{",
        "  %c0 = arith.constant 0.0 : f32",
    ]
    for i in range(len(names)):
        x = "x"
        if devices and i:
            out.append(f"  %x{i} = flow.tensor.transfer %x : tensor<4xf32> to {on(i)}")
            x = f"x{i}"
        out.append(f"  %q{i} = util.global.load @q{i} : tensor<4x4xf32>")
        out.append(f"  %d{i} = util.global.load @d{i} : tensor<4x4xf32>")
        out.append(_MATVEC.format(o=f"h{i}", w=f"q{i}", x=x, n=4, k=4))
        out.append(_MATVEC.format(o=f"p{i}", w=f"d{i}", x=f"h{i}", n=4, k=4))
        if devices and i:  # the partial result goes back to device 0
            out.append(f"  %y{i} = flow.tensor.transfer %p{i} : tensor<4xf32> to {on(0)}")
    # Sum the partial results on device 0 and add the replicated bias.
    second = "%y1" if devices else "%p1"
    out.append("  %b = util.global.load @b : tensor<4xf32>")
    out.append(f"  %s = arith.addf %p0, {second} : tensor<4xf32>")
    out += ["  %r = arith.addf %s, %b : tensor<4xf32>", "  return %r : tensor<4xf32>", "}"]
    return "\n".join(out) + "\n"


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


def _run(run_tool, iree_tool, vmfb: Path, parameters: list[str], devices: int = 1) -> str:  # type: ignore[no-untyped-def]
    r = run_tool(
        [
            iree_tool("iree-run-module"),
            f"--module={vmfb}",
            *["--device=local-task"] * devices,
            "--function=f",
            INPUT,
            *(f"--parameters={p}" for p in parameters),
        ]
    )
    assert r.returncode == 0, r.stderr
    assert "result[0]" in r.stdout
    return r.stdout  # type: ignore[no-any-return]


def _names(layout: str) -> list[tuple[str, str]]:
    return [("model0", ""), ("model1", "")] if layout == "devices" else [("model", ".shard.0"), ("model", ".shard.1")]


@pytest.mark.parametrize("layout", ["devices", "keys"])
def test_tp_archives_on_two_devices_give_the_unsharded_results(  # type: ignore[no-untyped-def]
    model, tmp_path, layout, compile_program, run_tool, iree_tool
) -> None:
    expected = _run(run_tool, iree_tool, compile_program(UNSHARDED, "unsharded"), [f"model={model}"])
    result = shard(
        model, tmp_path / "tp2", tp=2, split={"q.weight": 0, "d.weight": 1}, replicate=["bias"], layout=layout
    )
    program = compile_program(_tp_program(_names(layout), devices=True), f"tp2_{layout}_2dev", 2)
    flags = expand_parameters([f"model={result.manifest}"])
    assert len(flags) == (2 if layout == "devices" else 1)
    assert _run(run_tool, iree_tool, program, flags, devices=2) == expected
    merge(result.manifest, tmp_path / "back.irpa")  # and the set merges back into the model that ran
    assert (tmp_path / "back.irpa").read_bytes() == model.read_bytes()


def test_paramio_run_serves_one_scope_per_device(
    model, tmp_path, compile_program, run_tool, iree_tool, paramio_cli
) -> None:  # type: ignore[no-untyped-def]
    expected = _run(run_tool, iree_tool, compile_program(UNSHARDED, "unsharded"), [f"model={model}"])
    result = shard(model, tmp_path / "tp2", tp=2, split={"q.weight": 0, "d.weight": 1}, replicate=["bias"])
    program = compile_program(_tp_program(_names("devices"), devices=False), "tp2_devices_1dev")
    code, out, err = paramio_cli(
        "run", f"--module={program}", "--function=f", INPUT, f"--parameters=model={result.manifest}"
    )
    assert code == 0, err
    assert out == expected


def test_irpa_set_runs_in_iree_shard_by_shard(
    model, tmp_path, compile_program, run_tool, iree_tool, paramio_cli
) -> None:  # type: ignore[no-untyped-def]
    program = compile_program(UNSHARDED, "unsharded")
    expected = _run(run_tool, iree_tool, program, [f"model={model}"])
    paramio.write_path(tmp_path / "set.irpa", ParameterIndex.open(model).values(), max_shard_size=64)
    manifest = tmp_path / "set.irpa.index.json"
    flags = expand_parameters([f"model={manifest}"])
    assert flags == [f"model={tmp_path}/set-0000{i}-of-00003.irpa" for i in (1, 2, 3)]
    assert _run(run_tool, iree_tool, program, flags) == expected  # IREE merges the shards into one scope
    code, out, err = paramio_cli("run", f"--module={program}", "--function=f", INPUT, f"--parameters=model={manifest}")
    assert code == 0, err
    assert out == expected
    code, out, _ = paramio_cli(
        "run", f"--module={program}", "--function=f", INPUT, f"--parameters=model={manifest}", "--print_iree_flags"
    )
    assert code == 0
    assert out.split() == [
        "iree-run-module",
        f"--module={program}",
        "--device=local-task",
        *(f"--parameters={f}" for f in flags),
        "--function=f",
        INPUT,
    ]
