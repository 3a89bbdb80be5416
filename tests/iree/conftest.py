"""Programs compiled for the local CPU, shared by the run tests."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

#: Two scopes, two results (a 1-D and a 2-D one).
PROGRAM = """
util.global private @w = #flow.parameter.named<"a"::"w"> : tensor<4xf32>
util.global private @v = #flow.parameter.named<"b"::"v"> : tensor<4xf32>
func.func @f(%x: tensor<4xf32>) -> (tensor<4xf32>, tensor<2x2xf32>) {
  %w = util.global.load @w : tensor<4xf32>
  %v = util.global.load @v : tensor<4xf32>
  %r = arith.addf %w, %x : tensor<4xf32>
  %s = arith.mulf %r, %v : tensor<4xf32>
  %t = tensor.expand_shape %s [[0, 1]] output_shape [2, 2] : tensor<4xf32> into tensor<2x2xf32>
  return %r, %t : tensor<4xf32>, tensor<2x2xf32>
}
"""


@pytest.fixture(scope="session")
def compile_mlir(run_tool) -> Callable[[str, Path, str], Path]:  # type: ignore[no-untyped-def]
    """A function compiling MLIR for the local CPU (llvm-cpu, ~1 s); skips without iree-compile."""

    def compile_(source: str, folder: Path, name: str) -> Path:
        compiler = shutil.which("iree-compile") or str(Path(sys.executable).parent / "iree-compile")
        if not Path(compiler).exists():
            pytest.skip("iree-compile not installed (pip install iree-base-compiler)")
        src = folder / f"{name}.mlir"
        src.write_text(source)
        out = folder / f"{name}.vmfb"
        r = run_tool(
            [
                compiler,
                str(src),
                "--iree-hal-target-device=local",
                "--iree-hal-local-target-device-backends=llvm-cpu",
                "--iree-llvmcpu-target-cpu=host",
                "-o",
                str(out),
            ]
        )
        assert r.returncode == 0, r.stderr
        return out

    return compile_


@pytest.fixture(scope="session")
def vmfb(tmp_path_factory: pytest.TempPathFactory, iree_tool: Callable[[str], str], compile_mlir) -> Path:  # type: ignore[no-untyped-def]
    """The two-scope program, compiled once per session."""
    return compile_mlir(PROGRAM, tmp_path_factory.mktemp("prog"), "two_scopes")
