"""The files every page of the guide starts from, written by the peers' own writers (so a page's
first command reads a file paramio did not write): a small safetensors model and a small GGUF
model with one plain and one Q8_0-quantised tensor. A page that needs another model gets it from
`PAGE_INPUTS`, written over those."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]

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


def tp_model(folder: Path) -> None:
    """docs/sharding.md's model.safetensors: the transformer-shaped model of the sharding tests."""
    from safetensors.numpy import save_file

    spec = importlib.util.spec_from_file_location("guide_tp_models", ROOT / "tests" / "sharding" / "tp_models.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    save_file(module.model_tensors(), str(folder / "model.safetensors"), metadata={"format": "np"})


#: Pages that start from another model than `make_inputs` writes.
PAGE_INPUTS: dict[str, Callable[[Path], None]] = {"sharding.md": tp_model}
