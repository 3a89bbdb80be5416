"""The files every page of the guide starts from, written by the peers' own writers (so a page's
first command reads a file paramio did not write): a small safetensors model and a small GGUF
model with one plain and one Q8_0-quantised tensor."""

from __future__ import annotations

from pathlib import Path

import numpy as np

#: The tensors of model.safetensors, as the pages describe them.
SAFETENSORS = {
    "embed.weight": np.arange(16, dtype=np.float32).reshape(4, 4),
    "layers.0.weight": np.full((4, 4), 0.5, np.float32),
    "layers.0.bias": np.ones(4, np.float32),
}


def make_inputs(folder: Path) -> None:
    """Write model.safetensors and model.gguf into `folder`."""
    import gguf
    from safetensors.numpy import save_file

    save_file(SAFETENSORS, str(folder / "model.safetensors"), metadata={"format": "pt"})
    w = gguf.GGUFWriter(str(folder / "model.gguf"), "llama")
    w.add_block_count(1)
    w.add_tensor("token_embd.weight", np.arange(32, dtype=np.float32).reshape(8, 4))
    q = np.linspace(-1, 1, 4 * 64, dtype=np.float32).reshape(4, 64)
    w.add_tensor(
        "blk.0.attn_q.weight",
        gguf.quants.quantize(q, gguf.GGMLQuantizationType.Q8_0),
        raw_dtype=gguf.GGMLQuantizationType.Q8_0,
    )
    w.add_token_list([f"t{i}" for i in range(10)])
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
