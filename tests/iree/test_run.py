"""`paramio run` and the IREE bridge against iree-run-module on the same files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from paramio.core.errors import InvalidArgumentError
from paramio.index.index import ParameterIndex
from paramio.index.provider import Provider
from paramio.iree.values import format_result, parse_input


@pytest.fixture
def params(tmp_path: Path) -> tuple[Path, Path]:
    a = ParameterIndex()
    a.add_array("w", np.array([10, 20, 30, 40], np.float32))
    a.create_archive_file(tmp_path / "a.irpa")
    b = ParameterIndex()
    b.add_array("v", np.array([1.5, 2, 1e-10, -3], np.float32))
    b.create_archive_file(tmp_path / "b.irpa")
    return tmp_path / "a.irpa", tmp_path / "b.irpa"


def test_parse_input_like_iree() -> None:
    assert parse_input("4xf32=1,2,3,4").tolist() == [1, 2, 3, 4]
    assert parse_input("2x2xi32=[1 2][3 4]").tolist() == [[1, 2], [3, 4]]
    assert parse_input("3xf32=7").tolist() == [7, 7, 7]
    assert parse_input("f32=2.5").shape == ()
    with pytest.raises(InvalidArgumentError, match="unknown element type 'q7'"):
        parse_input("4xq7=1")
    with pytest.raises(InvalidArgumentError, match="has 3 values for 4 elements of f32"):
        parse_input("4xf32=1,2,3")


def test_format_result_like_iree() -> None:
    assert format_result(np.array([11, 22, 33, 44], np.float32)) == "4xf32=11 22 33 44"
    assert format_result(np.array([[16.5, 44], [3.3e-9, -132]], np.float32)) == "2x2xf32=[16.5 44][3.3E-09 -132]"
    assert format_result(np.array([[1, 2], [3, 4]], np.int32)) == "2x2xi32=[1 2][3 4]"


def _iree_run(run_tool, iree_tool, vmfb: Path, *flags: str) -> str:  # type: ignore[no-untyped-def]
    r = run_tool([iree_tool("iree-run-module"), f"--module={vmfb}", "--function=f", "--input=4xf32=1,2,3,4", *flags])
    assert r.returncode == 0, r.stderr
    return str(r.stdout)


@pytest.mark.interop
def test_paramio_run_prints_what_iree_run_module_prints(vmfb, params, paramio_cli, run_tool, iree_tool) -> None:  # type: ignore[no-untyped-def]
    a, b = params
    flags = (f"--parameters=a={a}", f"--parameters=b={b}")
    expected = _iree_run(run_tool, iree_tool, vmfb, *flags)
    assert "4xf32=11 22 33 44" in expected
    code, out, err = paramio_cli("run", f"--module={vmfb}", "--function=f", "--input=4xf32=1,2,3,4", *flags)
    assert (code, err) == (0, "")
    assert out == expected


@pytest.mark.interop
def test_overlay_changes_the_result(vmfb, params, paramio_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    a, b = params
    ov = tmp_path / "ov.irpa"
    p = Provider.from_flags([f"b={b}"], overlays=[f"b={ov}"])
    p.write("b::v", np.array([1, 1, 1, 1], np.float32))
    p.flush()
    code, out, err = paramio_cli(
        "run",
        f"--module={vmfb}",
        "--function=f",
        "--input=4xf32=1,2,3,4",
        f"--parameters=a={a}",
        f"--parameters=b={b}",
        f"--overlay=b={ov}",
    )
    assert (code, err) == (0, "")
    assert out.splitlines()[-1] == "2x2xf32=[11 22][33 44]"
    # stripped: every parameter a zero splat
    code, out, _ = paramio_cli(
        "run",
        f"--module={vmfb}",
        "--function=f",
        "--input=4xf32=1,2,3,4",
        f"--parameters=a={a}",
        f"--parameters=b={b}",
        "--stripped",
    )
    assert code == 0 and out.splitlines()[2] == "4xf32=1 2 3 4" and out.splitlines()[-1] == "2x2xf32=[0 0][0 0]"


@pytest.mark.interop
def test_two_layers_in_iree_follow_paramio_precedence(
    vmfb, params, paramio_cli, run_tool, iree_tool, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    a, b = params
    patch = ParameterIndex()
    patch.add_array("w", np.array([100, 200, 300, 400], np.float32))
    patch.create_archive_file(tmp_path / "patch.irpa")
    flags = (f"--parameters=a={a}", f"--parameters=a={tmp_path / 'patch.irpa'}", f"--parameters=b={b}")
    expected = _iree_run(run_tool, iree_tool, vmfb, *flags)  # IREE: the first file given wins
    code, out, _ = paramio_cli("run", f"--module={vmfb}", "--function=f", "--input=4xf32=1,2,3,4", *flags)
    assert code == 0 and out == expected and "4xf32=11 22 33 44" in out
    code, out, _ = paramio_cli(
        "run", f"--module={vmfb}", "--function=f", "--input=4xf32=1,2,3,4", "--precedence=last", *flags
    )
    assert code == 0 and out.splitlines()[2] == "4xf32=101 202 303 404"


@pytest.mark.interop
def test_safetensors_scope_runs_in_iree(vmfb, params, paramio_cli, run_tool, iree_tool, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    st = pytest.importorskip("safetensors.numpy")
    a, _ = params
    path = tmp_path / "b.safetensors"
    st.save_file({"pad": np.ones(3, np.float32), "v": np.array([2, 2, 2, 2], np.float32)}, str(path))
    flags = (f"--parameters=a={a}", f"--parameters=b={path}")
    expected = _iree_run(run_tool, iree_tool, vmfb, *flags)
    code, out, err = paramio_cli("run", f"--module={vmfb}", "--function=f", "--input=4xf32=1,2,3,4", *flags)
    assert (code, err) == (0, "") and out == expected and out.splitlines()[-1] == "2x2xf32=[22 44][66 88]"


@pytest.mark.interop
def test_python_bridge_reads_files_through_fd_handles(vmfb, params) -> None:  # type: ignore[no-untyped-def]
    rt = pytest.importorskip("iree.runtime")
    from paramio.iree import create_parameters_module, to_iree_providers

    a, b = params
    provider = Provider.from_flags([f"a={a}"])
    mem = ParameterIndex()
    mem.add_array("v", np.array([2, 2, 2, 2], np.float32))
    provider.add_index(mem, "b")
    bridge = to_iree_providers(provider)
    entry = bridge.indices["a"].items()[0][1]
    handle, offset = entry.file_storage
    assert handle.is_fd and offset == ParameterIndex.open(a)["w"].offset
    config = rt.Config("local-task")
    mods = [
        create_parameters_module(config.vm_instance, provider),
        rt.create_hal_module(config.vm_instance, config.device),
        rt.VmModule.mmap(config.vm_instance, str(vmfb)),
    ]
    m = rt.load_vm_modules(*mods, config=config)[-1]
    r, t = m.f(np.array([1, 2, 3, 4], np.float32))
    assert r.to_host().tolist() == [11, 22, 33, 44] and t.to_host().tolist() == [[22, 44], [66, 88]]


def test_run_usage_errors(paramio_cli) -> None:  # type: ignore[no-untyped-def]
    code, _, err = paramio_cli("run", "--function=f")
    assert code == 2 and err == "paramio run: --module=path.vmfb is required\n"


BIG_PROGRAM = """
func.func @big(%x: tensor<3x20x30xi32>, %y: tensor<1500xf32>) -> (tensor<3x20x30xi32>, tensor<1500xf32>) {
  %a = arith.addi %x, %x : tensor<3x20x30xi32>
  %b = arith.addf %y, %y : tensor<1500xf32>
  return %a, %b : tensor<3x20x30xi32>, tensor<1500xf32>
}
"""


def test_format_result_truncates_like_iree() -> None:
    assert format_result(np.ones(1024, np.int32)).endswith(" 1")  # exactly the budget: no marker
    assert format_result(np.ones(1025, np.int32)).endswith(" 1...")
    text = format_result(np.arange(12, dtype=np.int32).reshape(2, 2, 3), max_elements=4)
    assert text == "2x2x3xi32=[[0 1 2][3...]][[...][...]]"


@pytest.mark.interop
def test_large_results_print_as_iree_run_module_prints(
    tmp_path: Path, paramio_cli, run_tool, iree_tool, compile_mlir
) -> None:  # type: ignore[no-untyped-def]
    out = compile_mlir(BIG_PROGRAM, tmp_path, "big")
    np.save(tmp_path / "x.npy", np.arange(1800, dtype=np.int32).reshape(3, 20, 30))
    flags = (f"--module={out}", "--function=big", f"--input=@{tmp_path / 'x.npy'}", "--input=1500xf32=0.25")
    r = run_tool([iree_tool("iree-run-module"), *flags])
    assert r.returncode == 0, r.stderr
    assert "[...]" in r.stdout and "0.5..." in r.stdout  # IREE cut both results at 1,024 elements
    code, mine, err = paramio_cli("run", *flags)
    assert (code, err) == (0, "")
    assert mine == r.stdout


@pytest.mark.interop
def test_module_from_standard_input_as_iree_run_module_takes_it(vmfb, params, run_tool, iree_tool) -> None:  # type: ignore[no-untyped-def]
    """``--module=-`` reads the module from standard input: ``iree-compile ... -o - | paramio run
    --module=- ...`` is how IREE's own tests run programs."""
    import subprocess
    import sys

    a, b = params
    flags = [f"--parameters=a={a}", f"--parameters=b={b}", "--function=f", "--input=4xf32=1,2,3,4"]
    expected = _iree_run(run_tool, iree_tool, vmfb, *flags[:2])
    r = subprocess.run(
        [sys.executable, "-m", "paramio", "run", "--module=-", *flags],
        input=vmfb.read_bytes(),
        capture_output=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.decode() == expected
    r = subprocess.run(
        [sys.executable, "-m", "paramio", "run", "--module=-", *flags], input=b"", capture_output=True, timeout=120
    )
    assert r.returncode == 1 and b"standard input is empty" in r.stderr
