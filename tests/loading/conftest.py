"""Model files for the loader tests, written by the peers' own writers where one exists."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest


def arrays(seed: int = 0) -> dict[str, np.ndarray]:
    """Varied dtypes, shapes and sizes: sub-chunk tensors, a multi-chunk one, an empty one."""
    rng = np.random.default_rng(seed)
    return {
        "embed": rng.standard_normal((96, 1024)).astype(np.float32),  # 384 KiB: several 64 KiB pieces
        "norm": rng.standard_normal(1024).astype(np.float16),
        "ids": rng.integers(-(2**40), 2**40, size=33, dtype=np.int64),
        "mask": rng.integers(0, 2, size=(7, 5)).astype(np.bool_),
        "head": rng.standard_normal((3, 5, 7)).astype(np.float64),
        "bytes": rng.integers(0, 255, size=1001, dtype=np.uint8),
        "empty": np.zeros((0, 4), dtype=np.float32),
    }


@pytest.fixture
def st_file(tmp_path: Path) -> tuple[Path, dict[str, np.ndarray]]:
    import safetensors.numpy

    a = arrays()
    p = tmp_path / "model.safetensors"
    safetensors.numpy.save_file(a, str(p))
    return p, a


@pytest.fixture
def st_set(tmp_path: Path) -> tuple[Path, dict[str, np.ndarray]]:
    """A Hugging Face sharded set written by the safetensors library, plus its index."""
    import safetensors.numpy

    a = arrays(1)
    keys = list(a)
    groups = [keys[:3], keys[3:5], keys[5:]]
    wmap = {}
    for i, g in enumerate(groups, start=1):
        name = f"model-{i:05d}-of-{len(groups):05d}.safetensors"
        safetensors.numpy.save_file({k: a[k] for k in g}, str(tmp_path / name))
        wmap.update({k: name for k in g})
    index = tmp_path / "model.safetensors.index.json"
    index.write_text(json.dumps({"metadata": {"total_size": sum(x.nbytes for x in a.values())}, "weight_map": wmap}))
    return index, a


@pytest.fixture
def gguf_file(tmp_path: Path) -> tuple[Path, dict[str, np.ndarray]]:
    import gguf

    a = {k: v for k, v in arrays(2).items() if v.dtype != np.bool_ and v.size}  # GGUF has no bool/empty tensors
    a = {k: (v.astype(np.int32) if v.dtype == np.int64 else v) for k, v in a.items()}
    a = {k: (v.astype(np.int8) if v.dtype == np.uint8 else v) for k, v in a.items()}
    p = tmp_path / "model.gguf"
    w = gguf.GGUFWriter(str(p), "llama")
    for k, v in a.items():
        w.add_tensor(k, v)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return p, a


@pytest.fixture
def irpa_file(tmp_path: Path, iree_tool: Callable[[str], str]) -> Path:
    """An IRPA archive written by IREE's own tool: data entries and splats."""
    import subprocess

    p = tmp_path / "model.irpa"
    subprocess.run(
        [
            iree_tool("iree-create-parameters"),
            "--splat=zeros=4096xf32=0",
            "--splat=fours=1000xi16=4",
            "--data=a=64x64xf32",
            "--data=b=300xi8=3",
            "--quiet",
            f"--output={p}",
        ],
        check=True,
        capture_output=True,
    )
    return p
