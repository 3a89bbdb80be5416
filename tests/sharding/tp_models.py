"""A small transformer-shaped model for the sharding tests, and the split rules they use."""

from __future__ import annotations

import numpy as np


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
