"""A program runs on GGUF parameters IREE's own GGUF parser refuses (BF16) or mis-sizes (IQ2_XXS).

IREE 3.13's GGUF type table is stale: it rejects BF16 (type 30) and reads type 16 (now IQ2_XXS)
as I8. Served through paramio's bridge, the same file runs, with every tensor sized right.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest

pytestmark = [pytest.mark.interop, pytest.mark.slow]
gguf = pytest.importorskip("gguf", reason="the gguf package writes the input file")

PROGRAM = """
util.global private @w = #flow.parameter.named<"model"::"w"> : tensor<4xbf16>
util.global private @b = #flow.parameter.named<"model"::"b"> : tensor<4xf32>
func.func @f(%x: tensor<4xf32>) -> tensor<4xf32> {
  %w = util.global.load @w : tensor<4xbf16>
  %b = util.global.load @b : tensor<4xf32>
  %wf = arith.extf %w : tensor<4xbf16> to tensor<4xf32>
  %m = arith.mulf %wf, %x : tensor<4xf32>
  %r = arith.addf %m, %b : tensor<4xf32>
  return %r : tensor<4xf32>
}
"""


@pytest.fixture(scope="module")
def vmfb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    compiler = shutil.which("iree-compile") or str(Path(sys.executable).parent / "iree-compile")
    if not Path(compiler).exists():
        pytest.skip("iree-compile not installed (pip install iree-base-compiler)")
    folder = tmp_path_factory.mktemp("bf16prog")
    (folder / "p.mlir").write_text(PROGRAM)
    out = folder / "p.vmfb"
    subprocess.run(
        [
            compiler,
            str(folder / "p.mlir"),
            "--iree-hal-target-device=local",
            "--iree-hal-local-target-device-backends=llvm-cpu",
            "--iree-llvmcpu-target-cpu=host",
            "-o",
            str(out),
        ],
        check=True,
        capture_output=True,
    )
    return out


@pytest.fixture
def model(tmp_path: Path) -> Path:
    path = tmp_path / "model.gguf"
    writer = gguf.GGUFWriter(str(path), "test")
    # An IQ2_XXS tensor (66 bytes per 256 elements) first: IREE sizes it as 512 one-byte I8s.
    writer.add_tensor("q", np.zeros((1, 2 * 66), np.uint8), raw_dtype=gguf.GGMLQuantizationType.IQ2_XXS)
    writer.add_tensor(
        "w",
        np.array([1, 2, 3, 4], np.float32).astype(ml_dtypes.bfloat16).view(np.uint16),
        raw_dtype=gguf.GGMLQuantizationType.BF16,
    )
    writer.add_tensor("b", np.array([0.5, 0.5, 0.5, 0.5], np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_iree_cannot_load_the_file_paramio_runs_it(
    model: Path, vmfb: Path, iree_tool: Callable[[str], str], paramio_cli: Callable[..., tuple[int, str, str]]
) -> None:
    iree = subprocess.run(
        [
            iree_tool("iree-run-module"),
            f"--module={vmfb}",
            f"--parameters=model={model}",
            "--function=f",
            "--input=4xf32=10,10,10,10",
        ],
        capture_output=True,
        text=True,
    )
    # IREE reads the 132-byte IQ2_XXS tensor as 512 bytes of I8 and runs past the data.
    assert iree.returncode != 0 and "begin=0, end=512" in iree.stderr
    code, out, err = paramio_cli(
        "run", f"--module={vmfb}", f"--parameters=model={model}", "--function=f", "--input=4xf32=10,10,10,10"
    )
    assert code == 0, err
    assert "4xf32=10.5 20.5 30.5 40.5" in out


def test_quantised_tensor_is_sized_right(model: Path) -> None:
    from paramio import ParameterIndex

    index = ParameterIndex.open(model)
    assert index["q"].length == 132 and index["q"].dtype == "gguf.iq2_xxs"
    assert index["w"].to_numpy().astype(np.float32).tolist() == [1, 2, 3, 4]
