"""Model sets for the scale-out tests, and the comparison of two saves of one set: byte for byte,
except the set's generation stamp, a random id each save writes into every member and the
manifest (`paramio.formats.sets.reading.STAMP_KEY`), which is the same length in both."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

import paramio


def safetensors_set(folder: Path, *, tensors: int, elements: int, max_shard_size: int, seed: int = 0) -> Path:
    """A Hugging Face sharded safetensors set (float32 tensors of `elements` each, a few dtypes
    and shapes mixed in) in `folder`; returns its index.json."""
    rng = np.random.default_rng(seed)
    arrays: dict[str, np.ndarray] = {}
    for i in range(tensors):
        arrays[f"layers.{i}.weight"] = rng.standard_normal(elements, dtype=np.float32).reshape(-1, 16)
        arrays[f"layers.{i}.bias"] = rng.integers(-100, 100, size=16, dtype=np.int16)
    folder.mkdir(parents=True, exist_ok=True)
    single = folder / "single.safetensors"
    save_file(arrays, str(single))
    index = folder / "model.safetensors.index.json"
    paramio.convert(str(single), str(index), max_shard_size=max_shard_size)
    single.unlink()
    return index


def stamp_of(manifest: bytes) -> str | None:
    meta = json.loads(manifest).get("metadata", {})
    stamp = meta.get("paramio.set")
    return stamp if isinstance(stamp, str) else None


def same_set(a: dict[str, bytes], b: dict[str, bytes]) -> None:
    """Assert two saves (file name -> bytes, one manifest among them) are byte-identical but for
    their stamps."""
    assert sorted(a) == sorted(b)
    manifest = next((n for n in a if n.endswith(".json")), None)  # a single file has none, and no stamp
    sa, sb = (stamp_of(a[manifest]), stamp_of(b[manifest])) if manifest is not None else (None, None)
    assert (sa is None) == (sb is None)
    for name in a:
        x, y = a[name], b[name]
        if sa is not None and sb is not None:
            assert x.count(sa.encode()) == y.count(sb.encode()) >= 1, name
            x, y = x.replace(sa.encode(), b"S" * len(sa)), y.replace(sb.encode(), b"S" * len(sb))
        assert x == y, f"{name} differs"


def files_in(folder: Path) -> dict[str, bytes]:
    return {n: (folder / n).read_bytes() for n in sorted(os.listdir(folder))}
