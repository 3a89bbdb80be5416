"""Fixtures for the CLI tests: small input files made by the peers' own writers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


@pytest.fixture
def small_safetensors(tmp_path: Path) -> Path:
    from safetensors.numpy import save_file

    path = tmp_path / "small.safetensors"
    save_file(
        {
            "a.weight": np.arange(8, dtype=np.float32),
            "b.bias": np.arange(6, dtype=np.int16),
            "c.half": np.ones(4, np.float16),
            "unneeded": np.full(4, 7, np.float32),
        },
        str(path),
    )
    return path


@pytest.fixture
def small_gguf(tmp_path: Path) -> Path:
    gguf = pytest.importorskip("gguf")
    path = tmp_path / "small.gguf"
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_tensor("g.weight", np.arange(8, dtype=np.float32))
    w.add_tensor("g.bias", np.arange(3, dtype=np.float32))
    w.add_tensor("g.half", np.ones(8, np.float16))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path
