"""The guide's first step writes the model every page starts from, and the peers' own writers
write the very same bytes: the pages' first commands read files a reader could have got from
``safetensors`` and llama.cpp's ``gguf`` package."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from guide_inputs import make_inputs

from paramio.cli.guide_model import GGUF_TENSORS, SAFETENSORS_TENSORS, q8_0


def test_the_first_step_writes_only_the_two_models(tmp_path: Path) -> None:
    make_inputs(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.gguf", "model.safetensors"]


@pytest.mark.interop
def test_safetensors_writes_the_same_file(tmp_path: Path) -> None:
    from safetensors.numpy import save_file

    make_inputs(tmp_path)
    save_file(SAFETENSORS_TENSORS, str(tmp_path / "peer.safetensors"), metadata={"format": "pt"})
    assert (tmp_path / "model.safetensors").read_bytes() == (tmp_path / "peer.safetensors").read_bytes()


@pytest.mark.interop
def test_gguf_writes_the_same_file(tmp_path: Path) -> None:
    gguf = pytest.importorskip("gguf")
    make_inputs(tmp_path)
    w = gguf.GGUFWriter(str(tmp_path / "peer.gguf"), "llama")
    w.add_block_count(1)
    w.add_tensor("token_embd.weight", GGUF_TENSORS["token_embd.weight"])
    q = GGUF_TENSORS["blk.0.attn_q.weight"]
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
    assert (tmp_path / "model.gguf").read_bytes() == (tmp_path / "peer.gguf").read_bytes()


@pytest.mark.interop
def test_q8_0_is_ggml_s_encoding() -> None:
    gguf = pytest.importorskip("gguf")
    rng = np.random.default_rng(0)
    values = np.concatenate([rng.standard_normal(32 * 7).astype(np.float32), np.zeros(32, np.float32)])
    values[5] = 127.5 / 127 * values[:32].max()  # a value that rounds at exactly .5
    expected = gguf.quants.quantize(values.reshape(8, 32), gguf.GGMLQuantizationType.Q8_0).tobytes()
    assert q8_0(values) == expected
