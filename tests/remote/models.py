"""Small models in every format, written by paramio, for the remote tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from paramio.core.entry import ParameterEntry
from paramio.formats.registry import write_path
from paramio.index.index import ParameterIndex

EXTENSIONS = {"irpa": ".irpa", "safetensors": ".safetensors", "gguf": ".gguf"}


def arrays(n: int = 6, big: int = 40_000) -> dict[str, np.ndarray]:
    """Tensors whose data runs well past the first 64 KiB (so a header-only open is visible)."""
    rng = np.random.default_rng(7)
    out = {f"blk.{i}.weight": rng.standard_normal((big // 4 // (i + 1), 4)).astype(np.float32) for i in range(n)}
    out["tiny"] = np.arange(3, dtype=np.float32)
    return out


def entries(tensors: dict[str, np.ndarray]) -> list[ParameterEntry]:
    index = ParameterIndex()
    for k, v in tensors.items():
        index.add_array(k, v)
    return list(index.entries)


def write_model(folder: Path, fmt: str, name: str = "model", **options: object) -> Path:
    path = folder / (name + EXTENSIONS[fmt])
    write_path(path, entries(arrays()), format=fmt, **options)
    return path
