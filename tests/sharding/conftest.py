"""Shared pieces of the sharding tests: a small model in each format, and IREE's compile helper."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from tp_models import model_tensors


def _compile(run_tool, source: str, folder: Path, name: str, devices: int) -> Path:  # type: ignore[no-untyped-def]
    """`source` compiled for the local CPU, as tests/iree/conftest.py's `compile_mlir` does
    (same compiler, same flags) for one device; for `devices` > 1, IREE's own multi-device test
    flags: ``--iree-hal-target-device=device_i=local[i]`` and the async-external execution model
    (run with one ``--device=local-task`` per device). Skips without iree-compile."""
    compiler = shutil.which("iree-compile") or str(Path(sys.executable).parent / "iree-compile")
    if not Path(compiler).exists():
        pytest.skip("iree-compile not installed (pip install iree-base-compiler)")
    src, out = folder / f"{name}.mlir", folder / f"{name}.vmfb"
    src.write_text(source)
    if devices == 1:
        targets = ["--iree-hal-target-device=local"]
    else:
        targets = ["--iree-execution-model=async-external"]
        targets += [f"--iree-hal-target-device=device_{i}=local[{i}]" for i in range(devices)]
    r = run_tool(
        [
            compiler,
            str(src),
            *targets,
            "--iree-hal-local-target-device-backends=llvm-cpu",
            "--iree-llvmcpu-target-cpu=host",
            "-o",
            str(out),
        ]
    )
    assert r.returncode == 0, r.stderr
    return out


@pytest.fixture(scope="session")
def compile_program(run_tool, tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:  # type: ignore[no-untyped-def]
    """``compile_program(source, name, devices=1)``: each program compiled once per session."""
    folder = tmp_path_factory.mktemp("sharding_programs")
    compiled: dict[tuple[str, str, int], Path] = {}

    def go(source: str, name: str, devices: int = 1) -> Path:
        if (source, name, devices) not in compiled:
            compiled[source, name, devices] = _compile(run_tool, source, folder, name, devices)
        return compiled[source, name, devices]

    return go


@pytest.fixture
def st_model(tmp_path: Path) -> Path:
    from safetensors.numpy import save_file

    path = tmp_path / "model.safetensors"
    save_file(model_tensors(), str(path), metadata={"format": "np"})
    return path
