"""The issue's 'done when', with IREE as the oracle: a program with embedded weights gives the
same outputs compiled as it is, exported to an archive (run by iree-run-module and `paramio run`),
imported back, and a hand-written function over declared globals runs on an archive."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from mlir_programs import EMBEDDED, EMBEDDED_INPUT, EMBEDDED_RESULT

from paramio import ParameterIndex

pytestmark = [pytest.mark.interop, pytest.mark.slow, pytest.mark.usefixtures("bindings")]

Cli = Callable[..., tuple[int, str, str]]


@pytest.fixture(scope="module")
def work(
    tmp_path_factory: pytest.TempPathFactory, compile_mlir: Callable[..., Path], run_module: Callable[..., str]
) -> Path:
    """The embedded program, compiled and run once: its output is the reference."""
    folder = tmp_path_factory.mktemp("e2e")
    (folder / "model.mlir").write_text(EMBEDDED)
    vmfb = compile_mlir(folder / "model.mlir", folder / "model.vmfb")
    assert EMBEDDED_RESULT in run_module(vmfb, "predict", [EMBEDDED_INPUT])
    return folder


def _export(cli: Cli, work: Path, archive: str) -> None:
    code, out, err = cli(
        "mlir",
        "export",
        str(work / "model.mlir"),
        f"--archive=model={work / archive}",
        f"--output={work / 'model.params.mlir'}",
    )
    assert code == 0, err
    assert out.startswith("exported 3 parameters (72 bytes)")


def test_exported_program_runs_on_the_archive_like_the_embedded_one(
    work: Path, paramio_cli: Cli, compile_mlir: Callable[..., Path], run_module: Callable[..., str]
) -> None:
    _export(paramio_cli, work, "weights.irpa")
    index = ParameterIndex.open(work / "weights.irpa")
    assert [(e.key, e.dtype, e.shape) for e in index.entries] == [
        ("weight", "float32", (3, 4)),
        ("bias", "float32", (3,)),
        ("scale", "float32", (3,)),
    ]
    vmfb = compile_mlir(work / "model.params.mlir", work / "params.vmfb")
    assert EMBEDDED_RESULT in run_module(vmfb, "predict", [EMBEDDED_INPUT], [f"model={work / 'weights.irpa'}"])
    code, out, err = paramio_cli(
        "run",
        f"--module={vmfb}",
        f"--parameters=model={work / 'weights.irpa'}",
        "--function=predict",
        f"--input={EMBEDDED_INPUT}",
    )
    assert code == 0, err
    assert EMBEDDED_RESULT in out
    # The same program on a safetensors export (IREE reads safetensors directly).
    code, _, err = paramio_cli(
        "mlir",
        "export",
        str(work / "model.mlir"),
        f"--archive=model={work / 'w.safetensors'}",
        f"--output={work / 'again.mlir'}",
    )
    assert code == 0, err
    assert (work / "again.mlir").read_text() == (work / "model.params.mlir").read_text()
    assert EMBEDDED_RESULT in run_module(vmfb, "predict", [EMBEDDED_INPUT], [f"model={work / 'w.safetensors'}"])
    # Without the archive the exported program cannot run: the weights really left it.
    assert "dense<[[1.0" not in (work / "model.params.mlir").read_text()


def test_imported_program_runs_without_parameters(
    work: Path, paramio_cli: Cli, compile_mlir: Callable[..., Path], run_module: Callable[..., str]
) -> None:
    _export(paramio_cli, work, "weights.irpa")
    code, out, err = paramio_cli(
        "mlir",
        "import",
        str(work / "model.params.mlir"),
        f"--parameters=model={work / 'weights.irpa'}",
        f"--output={work / 'back.mlirbc'}",
    )
    assert code == 0, err
    assert out.startswith("imported 3 parameters (72 bytes); 0 references left")
    vmfb = compile_mlir(work / "back.mlirbc", work / "back.vmfb")
    assert EMBEDDED_RESULT in run_module(vmfb, "predict", [EMBEDDED_INPUT])


def test_iree_compile_export_flag_drops_private_globals(
    work: Path, paramio_cli: Cli, compile_mlir: Callable[..., Path]
) -> None:
    """The difference that makes paramio's export worth having: iree-compile's flag inlines the
    private globals before it exports, so only the public one reaches its archive."""
    compile_mlir(work / "model.mlir", work / "flag.vmfb", f"--iree-parameter-export=model={work / 'flag.irpa'}")
    assert ParameterIndex.open(work / "flag.irpa").keys() == ["bias"]
    _export(paramio_cli, work, "weights.irpa")
    assert ParameterIndex.open(work / "weights.irpa").keys() == ["weight", "bias", "scale"]


def test_declared_globals_compile_and_run_on_a_safetensors_file(
    tmp_path: Path, paramio_cli: Cli, compile_mlir: Callable[..., Path], run_module: Callable[..., str]
) -> None:
    from safetensors.numpy import save_file

    save_file(
        {
            "bias": np.array([1.0, 2.0, -3.0], np.float32),
            "layer.0/scale": np.array([2.0, 3.0, 4.0], np.float32),
            "steps": np.array([7], np.int64),
        },
        str(tmp_path / "model.safetensors"),
    )
    code, declared, err = paramio_cli("mlir", "declare", f"--parameters=model={tmp_path / 'model.safetensors'}")
    assert code == 0, err
    assert declared == (  # in the file's order (safetensors sorts by dtype alignment, then name)
        'util.global private @steps = #flow.parameter.named<"model"::"steps"> : tensor<1xi64>\n'
        'util.global private @bias = #flow.parameter.named<"model"::"bias"> : tensor<3xf32>\n'
        'util.global private @layer.0_scale = #flow.parameter.named<"model"::"layer.0/scale"> : tensor<3xf32>\n'
    )
    program = (
        declared
        + """
func.func @combine(%x: tensor<3xf32>) -> tensor<3xf32> {
  %b = util.global.load @bias : tensor<3xf32>
  %s = util.global.load @layer.0_scale : tensor<3xf32>
  %0 = arith.mulf %b, %s : tensor<3xf32>
  %1 = arith.addf %0, %x : tensor<3xf32>
  return %1 : tensor<3xf32>
}
"""
    )
    (tmp_path / "combine.mlir").write_text(program)
    vmfb = compile_mlir(tmp_path / "combine.mlir", tmp_path / "combine.vmfb")
    out = run_module(vmfb, "combine", ["3xf32=1,1,1"], [f"model={tmp_path / 'model.safetensors'}"])
    assert "3xf32=3 7 -11" in out


def test_hoisted_constants_run_from_the_archive(
    work: Path, paramio_cli: Cli, compile_mlir: Callable[..., Path], run_module: Callable[..., str]
) -> None:
    code, out, err = paramio_cli(
        "mlir",
        "export",
        str(work / "model.mlir"),
        f"--archive=model={work / 'c.irpa'}",
        f"--output={work / 'c.mlir'}",
        "--constants",
        "--json",
    )
    assert code == 0, err
    assert json.loads(out)["hoisted"] == ["constant"]  # the matvec's zero init, a splat
    assert ParameterIndex.open(work / "c.irpa")["constant"].is_splat
    vmfb = compile_mlir(work / "c.mlir", work / "c.vmfb")
    assert EMBEDDED_RESULT in run_module(vmfb, "predict", [EMBEDDED_INPUT], [f"model={work / 'c.irpa'}"])
