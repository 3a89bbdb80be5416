"""Resharding between any layouts: A -> B -> A gives the same tensors, dtypes, shapes and
metadata, for HF safetensors sets, IRPA sets, GGUF splits and tensor-parallel sets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from tp_models import SPLIT, model_tensors

import paramio
from paramio import ParameterIndex
from paramio.sharding import reshard
from paramio.sharding.iree import expand_parameters


def _hf_set(folder: Path) -> Path:
    """A sharded safetensors checkpoint as huggingface_hub writes it (greedy, 5-digit names)."""
    from safetensors.numpy import save_file

    tensors = model_tensors()
    names = sorted(tensors)
    groups = [names[:3], names[3:5], names[5:]]
    wmap = {}
    for i, group in enumerate(groups, start=1):
        shard = f"model-{i:05d}-of-00003.safetensors"
        save_file({k: tensors[k] for k in group}, str(folder / shard), metadata={"format": "pt"})
        wmap.update(dict.fromkeys(group, shard))
    import json

    total = sum(a.nbytes for a in tensors.values())
    (folder / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {"total_size": total}, "weight_map": wmap})
    )
    return folder / "model.safetensors.index.json"


def _facts(path: Path) -> dict[str, tuple[str | None, tuple[int, ...] | None, bytes]]:
    index = ParameterIndex.open(path)
    return {k: (index[k].dtype, index[k].shape, index[k].read()) for k in index.keys()}


def test_hf_set_to_irpa_set_to_gguf_split_and_back(tmp_path: Path) -> None:
    src = _hf_set(tmp_path)
    original = _facts(src)
    (tmp_path / "irpa").mkdir()
    reshard(src, tmp_path / "irpa" / "model.irpa", max_shard_size=400)
    assert len(list((tmp_path / "irpa").glob("model-*-of-*.irpa"))) > 1
    assert _facts(tmp_path / "irpa" / "model.irpa.index.json") == original
    (tmp_path / "gguf").mkdir()
    reshard(tmp_path / "irpa" / "model.irpa.index.json", tmp_path / "gguf" / "model.gguf", max_shard_size=300)
    splits = sorted((tmp_path / "gguf").glob("model-*-of-*.gguf"))
    assert len(splits) > 1
    assert _facts(splits[0]) == original
    (tmp_path / "back").mkdir()
    reshard(splits[-1], tmp_path / "back" / "model.safetensors", max_shard_size=400)
    back = _facts(tmp_path / "back" / "model.safetensors.index.json")
    assert back == original
    meta = ParameterIndex.open(tmp_path / "back" / "model.safetensors.index.json").attributes["safetensors.metadata"]
    assert meta == {"format": "pt"}  # the file-level metadata survived IRPA and GGUF


def test_tp_set_to_gguf_split_to_tp_set(tmp_path: Path) -> None:
    src = _hf_set(tmp_path)
    original = _facts(src)
    paths = reshard(
        src, tmp_path / "tp" / "model.tp.json", tp=2, split=SPLIT, replicate=["*"], shard_format="safetensors"
    )
    assert paths is not None and Path(paths[-1]).name == "model.tp.json"
    reshard(tmp_path / "tp", tmp_path / "m.gguf", max_shard_size=500)
    again = reshard(
        sorted(tmp_path.glob("m-*-of-*.gguf"))[0],
        tmp_path / "tp2" / "model.tp.json",
        tp=2,
        split=SPLIT,
        replicate=["*"],
    )
    assert again is not None
    assert _facts(tmp_path / "tp2" / "model.tp.json") == original
    for f in ("model.rank0.safetensors", "model.rank1.safetensors"):
        a = ParameterIndex.open(tmp_path / "tp" / f)
        b = ParameterIndex.open(tmp_path / "tp2" / f.replace(".safetensors", ".irpa"))
        assert {k: a[k].read() for k in a.keys()} == {k: b[k].read() for k in b.keys()}


def test_tp_device_files_can_be_size_sharded_too(tmp_path: Path, st_model: Path) -> None:
    result = paramio.sharding.shard(st_model, tmp_path / "tp", tp=2, split=SPLIT, replicate=["*"], max_shard_size=200)
    names = sorted(p.name for p in (tmp_path / "tp").iterdir())
    assert "model.rank0.irpa.index.json" in names and "model.rank1.irpa.index.json" in names
    assert len([n for n in names if n.startswith("model.rank0-")]) > 1
    joined = ParameterIndex.open(result.manifest)
    for k, a in model_tensors().items():
        assert joined[k].to_numpy().tobytes() == a.tobytes()
    flags = expand_parameters([f"m={result.manifest}"])
    assert all(f.endswith(".irpa") and "-of-" in f for f in flags)
    assert {f.split("=", 1)[0] for f in flags} == {"m0", "m1"}
    assert sorted(Path(f.split("=", 1)[1]).name for f in flags) == sorted(n for n in names if n.endswith(".irpa"))


def test_reshard_needs_tp_for_a_tp_output(tmp_path: Path, st_model: Path) -> None:
    with pytest.raises(paramio.InvalidArgumentError, match="needs tp="):
        reshard(st_model, tmp_path / "x.tp.json")


def test_writing_a_tp_manifest_through_write_path(tmp_path: Path, st_model: Path) -> None:
    index = ParameterIndex.open(st_model)
    paramio.write_path(
        tmp_path / "tp" / "m.tp.json", index.values(), tp=2, split={"*.attn_q.weight": 0}, replicate=["*"]
    )
    assert np.array_equal(
        ParameterIndex.open(tmp_path / "tp" / "m.tp.json")["blk.0.attn_q.weight"].to_numpy(),
        model_tensors()["blk.0.attn_q.weight"],
    )
    with pytest.raises(TypeError, match="unexpected keyword argument 'tpp'"):
        paramio.write_path(tmp_path / "tp" / "m.tp.json", index.values(), tpp=2)


def test_convert_to_a_tp_manifest_says_to_use_shard(tmp_path: Path, st_model: Path, paramio_cli) -> None:  # type: ignore[no-untyped-def]
    code, _, err = paramio_cli("convert", f"--parameters={st_model}", f"--output={tmp_path / 'x.tp.json'}")
    assert code == 1
    assert err.endswith("writing a tensor-parallel set needs tp= and split rules; use paramio shard\n")
    code, _, err = paramio_cli("convert", f"--parameters={st_model}", f"--output={tmp_path / 'x.gguf'}")
    assert code == 0, err
    tp = paramio.sharding.shard(tmp_path / "x.gguf", tmp_path / "tp", tp=2, split=SPLIT, replicate=["*"])
    code, _, err = paramio_cli("convert", f"--parameters={tp.manifest}", f"--output={tmp_path / 'y.safetensors'}")
    assert code == 0, err  # a TP manifest is an input like any file
    assert _facts(tmp_path / "y.safetensors") == _facts(st_model)
