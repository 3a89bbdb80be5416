"""Shared pieces of the sharding tests: a small model in each format, and IREE's compile helper."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path

import pytest
from tp_models import model_tensors


def _run_helpers():  # type: ignore[no-untyped-def]
    """tests/iree/test_run.py, for its `_compile` (one compile helper for every IREE test)."""
    spec = importlib.util.spec_from_file_location(
        "_paramio_iree_run_tests", Path(__file__).parents[1] / "iree" / "test_run.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def compile_mlir(run_tool, tmp_path_factory: pytest.TempPathFactory) -> Callable[[str, str], Path]:  # type: ignore[no-untyped-def]
    helpers = _run_helpers()
    folder = tmp_path_factory.mktemp("sharding_programs")

    compiled: dict[tuple[str, str], Path] = {}

    def go(source: str, name: str) -> Path:
        if (source, name) not in compiled:  # each program once per session
            compiled[source, name] = helpers._compile(run_tool, source, folder, name)
        return compiled[source, name]

    return go


@pytest.fixture(scope="session")
def compile_multi_device(run_tool, tmp_path_factory: pytest.TempPathFactory) -> Callable[[str, str, int], Path]:  # type: ignore[no-untyped-def]
    """`source` compiled for `n` local CPU devices ``@device_0`` ... (IREE's own multi-device
    test: ``--iree-hal-target-device=device_i=local[i]`` and the async-external execution
    model; run with one ``--device=local-task`` per device). The flags are all that differs
    from tests/iree/test_run.py's `_compile`."""
    import shutil
    import sys

    folder = tmp_path_factory.mktemp("sharding_multi_device")

    def go(source: str, name: str, n: int) -> Path:
        compiler = shutil.which("iree-compile") or str(Path(sys.executable).parent / "iree-compile")
        if not Path(compiler).exists():
            pytest.skip("iree-compile not installed (pip install iree-base-compiler)")
        src, out = folder / f"{name}.mlir", folder / f"{name}.vmfb"
        src.write_text(source)
        devices = [f"--iree-hal-target-device=device_{i}=local[{i}]" for i in range(n)]
        r = run_tool(
            [
                compiler,
                str(src),
                "--iree-execution-model=async-external",
                *devices,
                "--iree-hal-local-target-device-backends=llvm-cpu",
                "--iree-llvmcpu-target-cpu=host",
                "-o",
                str(out),
            ]
        )
        assert r.returncode == 0, r.stderr
        return out

    return go


@pytest.fixture
def st_model(tmp_path: Path) -> Path:
    from safetensors.numpy import save_file

    path = tmp_path / "model.safetensors"
    save_file(model_tensors(), str(path), metadata={"format": "np"})
    return path
