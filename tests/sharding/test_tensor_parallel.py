"""Tensor-parallel split and merge: pieces are exactly NumPy's split, merge gives the original
bytes back, quantised GGUF tensors are cut only at block boundaries, and every refusal names
the tensor before anything is written."""

from __future__ import annotations

import fnmatch
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tp_models import SPLIT, model_tensors

import paramio
from paramio import InvalidArgumentError, ParameterIndex
from paramio.sharding import merge, plan, shard
from paramio.sharding.tensor import SCRATCH, JoinedSource, PieceSource, geometry, join_pieces, split_entry


def test_devices_layout_pieces_are_numpy_splits(st_model: Path, tmp_path: Path) -> None:
    tensors = model_tensors()
    result = shard(st_model, tmp_path / "tp2", tp=2, split=SPLIT, replicate=["*"])
    assert [Path(p).name for p in result.paths] == ["model.rank0.irpa", "model.rank1.irpa", "model.tp.json"]
    for i in range(2):
        device = ParameterIndex.open(tmp_path / "tp2" / f"model.rank{i}.irpa")
        assert sorted(device.keys()) == sorted(tensors)
        for key, array in tensors.items():
            axis = next((a for pat, a in SPLIT.items() if fnmatch.fnmatchcase(key, pat)), None)
            want = array if axis is None else np.split(array, 2, axis=axis)[i]
            got = device[key].to_numpy()
            assert got.dtype == want.dtype and got.shape == want.shape, key
            assert got.tobytes() == want.tobytes(), key


def test_keys_layout_uses_sharktank_names(st_model: Path, tmp_path: Path) -> None:
    result = shard(st_model, tmp_path / "k", tp=2, split=SPLIT, replicate=["*"], layout="keys")
    one = ParameterIndex.open(result.paths[0])
    assert Path(result.paths[0]).name == "model.tp2.irpa"
    assert "blk.0.attn_q.weight.shard.1" in one.keys() and "token_embd.weight" in one.keys()
    assert "blk.0.attn_q.weight" not in one.keys()
    assert one["blk.0.ffn_down.weight.shard.1"].shape == (8, 6)


@pytest.mark.parametrize("layout", ["devices", "keys"])
@pytest.mark.parametrize("fmt", ["irpa", "safetensors", "gguf"])
def test_split_then_merge_is_bit_exact(st_model: Path, tmp_path: Path, layout: str, fmt: str) -> None:
    result = shard(st_model, tmp_path / "tp", tp=2, split=SPLIT, replicate=["*"], layout=layout, format=fmt)
    merge(result.manifest, tmp_path / "back.safetensors", on_loss="error")
    assert (tmp_path / "back.safetensors").read_bytes() == st_model.read_bytes()


def test_merge_keeps_original_metadata_and_attributes(tmp_path: Path) -> None:
    index = ParameterIndex()
    index.add_array("w", np.arange(24, dtype=np.float32).reshape(4, 6))
    w = index["w"]
    # sharktank-style metadata: not the TENSORv0 paramio would regenerate.
    odd = w.replace(metadata=b'PYTORCH:{"type": "Tensor", "dtype": "float32", "shape": [4, 6], "extra": 1}')
    src = tmp_path / "m.irpa"
    paramio.write_path(src, [odd], attributes={"gguf.kv": {"general.name": {"type": "string", "value": "x"}}})
    result = shard(src, tmp_path / "tp3", tp=3, split={"w": 1})
    merge(result.manifest, tmp_path / "back.irpa")
    assert (tmp_path / "back.irpa").read_bytes() == src.read_bytes()


def test_reshard_tp_to_another_tp_streams_through(st_model: Path, tmp_path: Path) -> None:
    a = shard(st_model, tmp_path / "tp2", tp=2, split=SPLIT, replicate=["*"])
    b = paramio.sharding.reshard(
        a.manifest,
        tmp_path / "tp4" / "model.tp.json",
        tp=4,
        split={"*.attn_q.weight": 1, "blk.0.ffn_up.weight": 1, "*.conv": 1},
        replicate=["*"],
    )
    assert b is not None and len(b) == 5
    merge(tmp_path / "tp4", tmp_path / "back.safetensors")
    assert (tmp_path / "back.safetensors").read_bytes() == st_model.read_bytes()


def test_tp_manifest_opens_as_the_original_model(st_model: Path, tmp_path: Path) -> None:
    result = shard(st_model, tmp_path / "tp2", tp=2, split=SPLIT, replicate=["*"])
    joined = ParameterIndex.open(result.manifest)
    for key, array in model_tensors().items():
        assert joined[key].to_numpy().tobytes() == array.tobytes()
        assert joined[key].shape == array.shape


def _q8_gguf(path: Path, shape: tuple[int, int]) -> np.ndarray:
    import gguf

    rng = np.random.default_rng(3)
    blocks = gguf.quants.quantize(rng.standard_normal(shape).astype(np.float32), gguf.GGMLQuantizationType.Q8_0)
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_tensor("blk.0.ffn_down.weight", blocks, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
    w.add_tensor("blk.0.attn_q.weight", rng.standard_normal((4, 64)).astype(np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return blocks  # type: ignore[no-any-return]


def test_quantised_gguf_splits_at_block_boundaries(tmp_path: Path) -> None:
    import gguf

    src = tmp_path / "q.gguf"
    blocks = _q8_gguf(src, (4, 128))  # Q8_0: 32-element blocks of 34 bytes; 4 blocks a row
    result = shard(src, tmp_path / "tp", tp=2, split={"*": 1}, format="gguf")
    for i in range(2):
        r = gguf.GGUFReader(str(tmp_path / "tp" / f"q.rank{i}.gguf"))
        t = next(t for t in r.tensors if t.name == "blk.0.ffn_down.weight")
        assert t.tensor_type == gguf.GGMLQuantizationType.Q8_0 and list(t.shape) == [64, 4]
        assert bytes(t.data) == np.split(blocks, 2, axis=1)[i].tobytes()  # whole blocks: 2 of 4 per row
    merge(result.manifest, tmp_path / "back.gguf")
    assert (tmp_path / "back.gguf").read_bytes() == src.read_bytes()
    with pytest.raises(
        InvalidArgumentError,
        match=r"'blk.0.ffn_down.weight': splitting gguf.q8_0\[4, 128\] along axis 1 "
        r"into 8 pieces would cut its 32-element blocks \(128/8 = 16 is not a multiple of 32\)",
    ):
        shard(src, tmp_path / "tp8", tp=8, split={"*": 1})
    assert not (tmp_path / "tp8").exists()


def test_refusals_name_the_tensor_before_writing(st_model: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    with pytest.raises(InvalidArgumentError, match="'output_norm.weight': matches no split or replicate rule"):
        shard(st_model, out, tp=2, split=SPLIT)
    with pytest.raises(
        InvalidArgumentError,
        match=r"'blk.0.ffn_down.weight': dimension 1 of float32\[8, 12\] is 12, not a multiple of 5",
    ):
        shard(st_model, out, tp=5, split={"*.ffn_down.weight": 1}, replicate=["*"])
    with pytest.raises(InvalidArgumentError, match="'output_norm.weight': has 1 dimensions; axis 1 is out of range"):
        shard(st_model, out, tp=2, split={"output_norm.weight": 1}, replicate=["*"])
    with pytest.raises(InvalidArgumentError, match="tp must be a positive integer"):
        shard(st_model, out, tp=0, replicate=["*"])
    assert not out.exists()


def test_plan_says_what_goes_where(st_model: Path) -> None:
    p = plan(st_model, 2, split=SPLIT, replicate=["*"])
    d = p.to_dict()
    q = next(t for t in d["tensors"] if t["key"] == "blk.0.attn_q.weight")  # type: ignore[index, union-attr]
    assert q == {
        "key": "blk.0.attn_q.weight",
        "rule": "*.attn_q.weight=0",
        "bytes": 128,
        "action": "split",
        "axis": 0,
        "dtype": "float16",
        "shape": [8, 8],
        "piece_shape": [4, 8],
        "piece_bytes": 64,
    }
    total = sum(a.nbytes for a in model_tensors().values())
    replicated = sum(a.nbytes for k, a in model_tensors().items() if not any(fnmatch.fnmatchcase(k, s) for s in SPLIT))
    assert d["device_bytes"] == [(total - replicated) // 2 + replicated] * 2


def test_manifest_errors_name_the_manifest_and_tensor(st_model: Path, tmp_path: Path) -> None:
    result = shard(st_model, tmp_path / "tp2", tp=2, split=SPLIT, replicate=["*"])
    m = Path(result.manifest)
    doc = json.loads(m.read_text())
    doc["tensors"]["blk.0.conv"]["shape"] = [2, 4, 7]
    m.write_text(json.dumps(doc))
    with pytest.raises(
        paramio.FormatError,
        match=r"model.tp.json: entry 'blk.0.conv': float32\[2, 4, 7\] takes 224 bytes but the entry has 192",
    ):
        ParameterIndex.open(m)
    doc["tensors"]["blk.0.conv"]["shape"] = [2, 4, 6]
    doc["tensors"]["blk.0.conv"]["pieces"][1] = ["../evil.irpa", "blk.0.conv"]
    m.write_text(json.dumps(doc))
    with pytest.raises(paramio.FormatError, match="piece names file '../evil.irpa', which is not in 'files'"):
        ParameterIndex.open(m)
    doc["files"][0] = "/etc/passwd"
    m.write_text(json.dumps(doc))
    with pytest.raises(paramio.FormatError, match="member '/etc/passwd' must be a file name next to the manifest"):
        ParameterIndex.open(m)
    doc["files"][0] = "model.tp.json"
    m.write_text(json.dumps(doc))
    with pytest.raises(paramio.FormatError, match="file 'model.tp.json' is a tensor-parallel manifest"):
        ParameterIndex.open(m)


# -- the byte arithmetic against NumPy, over shapes, axes and piece counts ---------------------


@settings(max_examples=60, deadline=None)
@given(
    shape=st.lists(st.integers(1, 5), min_size=1, max_size=4),
    axis_seed=st.integers(0, 3),
    count=st.integers(1, 4),
    dtype=st.sampled_from(["uint8", "float16", "float32", "float64"]),
)
def test_piece_and_joined_sources_match_numpy(shape: list[int], axis_seed: int, count: int, dtype: str) -> None:
    axis = axis_seed % len(shape)
    shape[axis] *= count
    array = np.arange(int(np.prod(shape)), dtype=np.float64).astype(dtype).reshape(shape)
    index = ParameterIndex()
    index.add_array("t", array)
    e = index["t"]
    g = geometry("t", e.tensor, e.length, axis, count)
    pieces = [split_entry(e, g, i) for i in range(count)]
    for i, (p, want) in enumerate(zip(pieces, np.split(array, count, axis=axis), strict=True)):
        assert p.read() == want.tobytes(), i
        assert p.shape == want.shape
        if p.length > 2:  # reads that start and end inside rows
            assert p.source is not None
            mid = bytearray(p.length - 2)
            p.readinto(mid, 1)
            assert bytes(mid) == want.tobytes()[1:-1]
    joined = join_pieces(pieces, g, "t")
    assert joined.read() == array.tobytes()
    if joined.length > 3:
        assert joined.source is not None
        assert joined.source.read(joined.offset + 1, joined.length - 3) == array.tobytes()[1:-2]


def test_large_rows_stream_through_bounded_buffers() -> None:
    # Rows longer than SCRATCH take the direct path: each segment read on its own.
    cols = SCRATCH // 4 + 1024
    array = np.arange(2 * cols, dtype=np.float32).reshape(2, cols)
    index = ParameterIndex()
    index.add_array("big", array)
    e = index["big"]
    g = geometry("big", e.tensor, e.length, 1, 2)
    pieces = [split_entry(e, g, i) for i in range(2)]
    assert all(isinstance(p.source, PieceSource) for p in pieces)
    for p, want in zip(pieces, np.split(array, 2, axis=1), strict=True):
        assert p.read() == want.tobytes()
    joined = join_pieces(pieces, g, "big")
    assert isinstance(joined.source, JoinedSource)
    assert joined.read() == array.tobytes()


def test_splats_stay_splats() -> None:
    index = ParameterIndex()
    index.add_splat("z", b"\x00\x00\x80\x3f", 4 * 64, metadata=None)
    e = index["z"].replace(declared_tensor=paramio.TensorInfo("float32", (8, 8)))
    g = geometry("z", e.tensor, e.length, 1, 4)
    piece = split_entry(e, g, 2)
    assert piece.is_splat and piece.length == 64 and piece.shape == (8, 2)
    assert join_pieces([split_entry(e, g, i) for i in range(4)], g, "z").is_splat
