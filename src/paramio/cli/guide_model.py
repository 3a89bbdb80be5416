"""The small model every page of the guide starts from: ``paramio example --make_inputs=DIR``.

A reader who opens the guide in an empty folder runs that one command first and then every
page's examples as written. One model serves every page:

* ``model.safetensors``: three float32 tensors with Hugging Face's kind of names, and the
  ``{"format": "pt"}`` metadata that ``transformers`` writes;
* ``model.gguf``: the llama.cpp side, with one plain and one Q8_0-quantised tensor and a token
  list, as a converted checkpoint has.

Written with paramio's own writers (so the command needs nothing but paramio); the tests check
that ``safetensors`` and ``gguf`` (llama.cpp's package) read the same tensors from them.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from paramio.core.tensor import TensorInfo, encode_tensor_metadata
from paramio.formats.registry import write_path
from paramio.index.index import ParameterIndex

__all__ = ["GGUF_TENSORS", "SAFETENSORS_TENSORS", "q8_0", "write_guide_inputs"]

#: The tensors of ``model.safetensors``, as the pages describe them, in the order the
#: ``safetensors`` library would write them (by name), so the file is the one it writes.
SAFETENSORS_TENSORS: dict[str, np.ndarray] = {
    "embed.weight": np.arange(16, dtype=np.float32).reshape(4, 4),
    "layers.0.bias": np.ones(4, np.float32),
    "layers.0.weight": np.full((4, 4), 0.5, np.float32),
}

#: The plain values of ``model.gguf``; ``blk.0.attn_q.weight`` is stored as Q8_0 of these.
GGUF_TENSORS: dict[str, np.ndarray] = {
    "token_embd.weight": np.arange(32, dtype=np.float32).reshape(8, 4),
    "blk.0.attn_q.weight": np.linspace(-1, 1, 4 * 64, dtype=np.float32).reshape(4, 64),
}

_Q8_0_BLOCK = 32


def q8_0(values: np.ndarray) -> bytes:
    """ggml's Q8_0 encoding: per block of 32 values one float16 scale ``max|x| / 127`` and 32
    int8 values ``x / scale`` rounded half away from zero."""
    blocks = np.asarray(values, np.float32).reshape(-1, _Q8_0_BLOCK)
    scale = np.abs(blocks).max(axis=1, keepdims=True) / 127
    with np.errstate(divide="ignore", invalid="ignore"):
        inverse = np.where(scale == 0, 0, 1 / scale)
    scaled = blocks * inverse
    q = (np.sign(scaled) * np.floor(np.abs(scaled) + 0.5)).astype(np.int8)
    out = np.empty(len(blocks), dtype=[("d", "<f2"), ("qs", "i1", _Q8_0_BLOCK)])
    out["d"] = scale[:, 0].astype(np.float16)
    out["qs"] = q
    return out.tobytes()


def write_guide_inputs(folder: str | os.PathLike[str]) -> list[str]:
    """Write ``model.safetensors`` and ``model.gguf`` into `folder` (made if missing); the paths
    written. Raises `WriteError` when the folder cannot be written."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    st = ParameterIndex()
    for key, array in SAFETENSORS_TENSORS.items():
        st.add_array(key, array)
    st_path = out / "model.safetensors"
    write_path(st_path, st.values(), format="safetensors", attributes={"safetensors.metadata": {"format": "pt"}})

    gg = ParameterIndex()
    gg.add_array("token_embd.weight", GGUF_TENSORS["token_embd.weight"])
    q = GGUF_TENSORS["blk.0.attn_q.weight"]
    info = TensorInfo("gguf.q8_0", q.shape, {"ggml_type": 8})
    gg.add_buffer("blk.0.attn_q.weight", q8_0(q), metadata=encode_tensor_metadata(info))
    kv = {
        "general.architecture": {"type": "string", "value": "llama"},
        "llama.block_count": {"type": "u32", "value": 1},
        "tokenizer.ggml.tokens": {"type": "array", "item_type": "string", "value": [f"t{i}" for i in range(10)]},
    }
    gg_path = out / "model.gguf"
    write_path(gg_path, gg.values(), format="gguf", attributes={"gguf.kv": kv})
    return [str(st_path), str(gg_path)]
