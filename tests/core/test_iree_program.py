"""A program compiled by iree-compile runs under iree-run-module with an archive paramio wrote."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from paramio import ParameterIndex

pytestmark = [pytest.mark.interop, pytest.mark.slow]

PROGRAM = """
util.global private @w = #flow.parameter.named<"model"::"weight"> : tensor<4xf32>
util.global private @b = #flow.parameter.named<"model"::"bias"> : tensor<4xf32>
func.func @affine(%x: tensor<4xf32>) -> tensor<4xf32> {
  %w = util.global.load @w : tensor<4xf32>
  %b = util.global.load @b : tensor<4xf32>
  %m = arith.mulf %w, %x : tensor<4xf32>
  %r = arith.addf %m, %b : tensor<4xf32>
  return %r : tensor<4xf32>
}
"""


@pytest.fixture(scope="module")
def vmfb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    compiler = pytest.importorskip("iree.compiler", reason="iree-base-compiler compiles the test program")
    out = tmp_path_factory.mktemp("prog") / "affine.vmfb"
    blob = compiler.compile_str(
        PROGRAM,
        target_backends=["vmvx"],
    )
    out.write_bytes(blob)
    return out


def test_iree_run_module_uses_paramio_archive(tmp_path: Path, vmfb: Path, iree_tool: Callable[[str], str]) -> None:
    index = ParameterIndex()
    index.add_buffer("weight", np.array([10, 20, 30, 40], dtype=np.float32))
    index.add_splat("bias", np.float32(0.5), 16)
    index.create_archive_file(tmp_path / "params.irpa")
    result = subprocess.run(
        [
            iree_tool("iree-run-module"),
            f"--module={vmfb}",
            "--device=local-sync",
            f"--parameters=model={tmp_path / 'params.irpa'}",
            "--function=affine",
            "--input=4xf32=1,2,3,4",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "4xf32=10.5 40.5 90.5 160.5" in result.stdout
