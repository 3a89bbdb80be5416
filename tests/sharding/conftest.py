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


@pytest.fixture
def st_model(tmp_path: Path) -> Path:
    from safetensors.numpy import save_file

    path = tmp_path / "model.safetensors"
    save_file(model_tensors(), str(path), metadata={"format": "np"})
    return path
