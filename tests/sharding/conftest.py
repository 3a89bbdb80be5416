"""Shared pieces of the sharding tests: a small model in each format, and IREE's compile helper."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest


def _run_helpers():  # type: ignore[no-untyped-def]
    """tests/iree/test_run.py, for its `_compile` (one compile helper for every IREE test)."""
    spec = importlib.util.spec_from_file_location("_paramio_iree_run_tests", Path(__file__).parents[1] / "iree" / "test_run.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def compile_mlir(run_tool, tmp_path_factory: pytest.TempPathFactory) -> Callable[[str, str], Path]:  # type: ignore[no-untyped-def]
    helpers = _run_helpers()
    folder = tmp_path_factory.mktemp("sharding_programs")

    def go(source: str, name: str) -> Path:
        return helpers._compile(run_tool, source, folder, name)  # type: ignore[no-any-return]

    return go


def model_tensors(seed: int = 0) -> dict[str, np.ndarray]:
    """A small transformer-shaped model: names as llama.cpp's, several dtypes and ranks."""
    rng = np.random.default_rng(seed)
    return {
        "token_embd.weight": rng.standard_normal((16, 8)).astype(np.float32),
        "blk.0.attn_q.weight": rng.standard_normal((8, 8)).astype(np.float16),
        "blk.0.attn_k.weight": rng.standard_normal((8, 8)).astype(np.float32),
        "blk.0.ffn_down.weight": rng.standard_normal((8, 12)).astype(np.float32),
        "blk.0.ffn_up.weight": rng.integers(-100, 100, (12, 8), dtype=np.int32),
        "blk.0.conv": rng.standard_normal((2, 4, 6)).astype(np.float32),
        "output_norm.weight": rng.standard_normal(8).astype(np.float32),
    }


SPLIT = {"*.attn_q.weight": 0, "*.attn_k.weight": 1, "*.ffn_down.weight": 1, "*.ffn_up.weight": 0, "*.conv": 1}


@pytest.fixture
def st_model(tmp_path: Path) -> Path:
    from safetensors.numpy import save_file

    path = tmp_path / "model.safetensors"
    save_file(model_tensors(), str(path), metadata={"format": "np"})
    return path
