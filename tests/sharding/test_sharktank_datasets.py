"""shark-ai/sharktank datasets: read (properties as attributes, split tensors joined), merged,
resharded.

The files are made as sharktank's ``Dataset.save`` makes them (``sharktank/types/theta.py``,
``ShardedArchiveBuilder``), but with IREE's own archive writer (`iree.runtime`): the root file
with the ``__SHARK_*`` JSON blobs and unsharded tensors, ``<stem>.rank<N>.irpa`` with
``<name>.shard.<i>`` pieces, turbine's ``PYTORCH:`` metadata. Where sharktank imports (it does
not install beside this project's pins with its dependencies; ``pip install --no-deps sharktank
iree-turbine einops decorator`` into a folder on ``PYTHONPATH`` is enough), the last tests check
those files against sharktank's loader and read files sharktank itself wrote.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import paramio
from paramio.core.errors import FormatError
from paramio.sharding import merge, shard
from paramio.sharding.api import open_source
from paramio.sharding.sharktank import read_dataset

PROPERTIES = {"hparams": {"llama.block_count": 1, "llama.embedding_length": 4}, "arch": "llama"}


def _tensors() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(3)
    return {
        "token_embd.weight": rng.standard_normal((8, 4)).astype(np.float32),
        "blk.0.attn_q.weight": rng.standard_normal((4, 6)).astype(np.float16),
        "blk.0.attn_norm.weight": rng.standard_normal(4).astype(np.float32),
        "output_norm.weight": rng.standard_normal(4).astype(np.float32),
    }


#: name -> axis for split tensors; "replicated" and "plain" for the others.
KINDS: dict[str, int | str] = {
    "token_embd.weight": 0,
    "blk.0.attn_q.weight": 1,
    "blk.0.attn_norm.weight": "replicated",
    "output_norm.weight": "plain",
}


def _meta(a: np.ndarray) -> str:
    desc = {"class_name": "dtype", "is_complex": False, "is_floating_point": True, "is_signed": True}
    return "PYTORCH:" + json.dumps(
        {"type": "Tensor", "dtype": str(a.dtype), "shape": list(a.shape), "dtype_desc": desc | {"itemsize": a.itemsize}}
    )


def _archive(path: Path, items: list[tuple[str, object, str | None]]) -> None:
    import iree.runtime as rt

    index = rt.ParameterIndex()
    for key, data, metadata in items:
        index.add_buffer(key, data, metadata=metadata)
    index.create_archive_file(str(path))


def shark_save(path: Path, tensors: dict[str, np.ndarray], kinds: dict[str, int | str], tp: int) -> None:
    """What sharktank's ``Dataset(PROPERTIES, theta).save(path)`` writes."""
    root: list[tuple[str, object, str | None]] = []
    ranks: dict[int, list[tuple[str, object, str | None]]] = {}
    described: dict[str, dict[str, object]] = {}
    for name, a in tensors.items():
        kind = kinds[name]
        if kind == "plain":
            root.append((name, a, _meta(a)))
            described[name] = {"type_name": "PrimitiveTensor", "raw_tensors": {"": name}}
        elif kind == "replicated":
            ranks.setdefault(0, []).append((f"{name}.shard.0", a, _meta(a)))
            described[name] = {
                "type_name": "ReplicatedTensor",
                "raw_tensors": {"": f"{name}.shard.0"},
                "shard_count": tp,
            }
        else:
            assert isinstance(kind, int)
            pieces = np.split(a, tp, axis=kind)
            for i, piece in enumerate(pieces):
                piece = np.ascontiguousarray(piece)
                ranks.setdefault(i, []).append((f"{name}.shard.{i}", piece, _meta(piece)))
            described[name] = {
                "type_name": "SplitPrimitiveTensor",
                "raw_tensors": {str(i): f"{name}.shard.{i}" for i in range(tp)},
                "shard_count": tp,
                "shape": list(a.shape),
                "shard_dim": kind,
            }
    blobs = [
        ("__SHARK_DATASET__", json.dumps(PROPERTIES | {"SHARK_DATASET_VERSION": 1}, indent=2).encode(), None),
        ("__SHARK_SHARD_RANKS__", json.dumps(sorted(ranks)).encode(), None),
        ("__SHARK_INFERENCE_TENSORS__", json.dumps(described, indent=2).encode(), None),
    ]
    _archive(path, root + blobs)
    for r, items in ranks.items():
        _archive(path.with_suffix(f".rank{r}.irpa"), items)


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    path = tmp_path / "model.irpa"
    shark_save(path, _tensors(), KINDS, 2)
    return path


def test_reads_tensors_joined_and_properties_as_attributes(dataset: Path) -> None:
    contents = read_dataset(str(dataset))
    assert contents.attributes == PROPERTIES  # SHARK_DATASET_VERSION is the format's
    assert [e.key for e in contents.entries] == list(_tensors())  # no __SHARK_* entry, no .shard.<i>
    for e in contents.entries:
        expected = _tensors()[e.key]
        got = e.to_numpy()
        assert got.dtype == expected.dtype and np.array_equal(got, expected), e.key
    for given in (dataset, dataset.with_suffix(".rank1.irpa")):  # the root or any rank file
        again, _ = open_source(str(given))
        assert [e.key for e in again.entries] == list(_tensors()) and again.attributes == contents.attributes


def test_merge_keeps_the_properties(dataset: Path, tmp_path: Path, paramio_cli) -> None:  # type: ignore[no-untyped-def]
    merge(dataset, tmp_path / "merged.irpa")
    merged = paramio.ParameterIndex.open(tmp_path / "merged.irpa")
    assert merged.attributes == PROPERTIES
    assert list(merged.keys()) == list(_tensors())
    code, out, err = paramio_cli(
        "merge", f"--parameters={dataset.with_suffix('.rank0.irpa')}", f"--output={tmp_path / 'm.safetensors'}"
    )
    assert code == 0, err
    from safetensors.numpy import load_file

    got = load_file(str(tmp_path / "m.safetensors"))
    assert sorted(got) == sorted(_tensors()) and all(np.array_equal(got[k], v) for k, v in _tensors().items())


def test_reshard_to_four_ranks_and_back(dataset: Path, tmp_path: Path) -> None:
    split = {"token_embd.weight": 0, "blk.0.attn_q.weight": 0}
    shard(dataset, tmp_path / "tp4", tp=4, split=split, replicate=["*"])
    merge(tmp_path / "tp4", tmp_path / "back.irpa")
    back = paramio.ParameterIndex.open(tmp_path / "back.irpa")
    for k, v in _tensors().items():
        assert np.array_equal(back[k].to_numpy(), v), k
    assert back.attributes["hparams"] == PROPERTIES["hparams"]


def _rewrite_description(dataset: Path, change: dict[str, object]) -> None:
    import iree.runtime as rt

    index = rt.ParameterIndex()
    index.load(str(dataset))
    items = []
    for key, entry in index.items():
        data = bytes(entry.file_view)
        if key == "__SHARK_INFERENCE_TENSORS__":
            data = json.dumps(json.loads(data) | change).encode()
        items.append((key, np.frombuffer(data, np.uint8) if data else b"", entry.metadata.decode() or None))
    _archive(dataset, items)


def test_bad_datasets_name_the_file_and_tensor(dataset: Path) -> None:
    _rewrite_description(dataset, {"x": {"type_name": "BlockScaledI4Layout", "raw_tensors": {}}})
    with pytest.raises(FormatError, match="'x'.*sharktank tensor type 'BlockScaledI4Layout' is not supported"):
        read_dataset(str(dataset))
    uneven = {
        "type_name": "SplitPrimitiveTensor",
        "raw_tensors": {"0": "token_embd.weight.shard.0", "1": "token_embd.weight.shard.1"},
        "shard_count": 2,
        "shape": [7, 4],
        "shard_dim": 0,
    }
    _rewrite_description(dataset, {"x": uneven})
    with pytest.raises(FormatError, match="'x'.*uneven"):
        read_dataset(str(dataset))
    _rewrite_description(dataset, {"x": {"type_name": "PrimitiveTensor", "raw_tensors": {"": "nowhere"}}})
    with pytest.raises(FormatError, match="'x'.*entry 'nowhere' is in none of the dataset's files"):
        read_dataset(str(dataset))
    _rewrite_description(dataset, {"x": {"type_name": "PrimitiveTensor", "raw_tensors": {"": "output_norm.weight"}}})
    assert read_dataset(str(dataset)).entries[-1].key == "x"
    dataset.with_suffix(".rank1.irpa").unlink()
    with pytest.raises(paramio.ParamioError, match="model.rank1.irpa"):
        read_dataset(str(dataset))


def test_paramio_device_files_are_not_taken_for_a_dataset(tmp_path: Path) -> None:
    src = tmp_path / "model.safetensors"
    from safetensors.numpy import save_file

    save_file(_tensors(), str(src))
    shard(src, tmp_path / "tp2", tp=2, split={"token_embd.weight": 0}, replicate=["*"])
    paramio.write_path(tmp_path / "tp2" / "model.irpa", paramio.ParameterIndex.open(src).values())  # a plain root
    contents, _ = open_source(str(tmp_path / "tp2" / "model.rank0.irpa"))  # one device file, as before
    assert {e.key: e.shape for e in contents.entries}["token_embd.weight"] == (4, 4)


def test_sharktank_loads_what_the_helper_writes(dataset: Path) -> None:
    st = pytest.importorskip("sharktank.types")
    ds = st.Dataset.load(dataset)
    assert ds.properties == PROPERTIES | {"SHARK_DATASET_VERSION": 1}
    flat = ds.root_theta.flatten()
    assert list(flat) == list(_tensors())
    shards = flat["token_embd.weight"].shards
    assert np.array_equal(np.concatenate([s.as_torch().numpy() for s in shards]), _tensors()["token_embd.weight"])


def test_reads_what_sharktank_writes(tmp_path: Path) -> None:
    st = pytest.importorskip("sharktank.types")
    import torch

    t = {k: torch.from_numpy(v) for k, v in _tensors().items()}
    theta = st.Theta(
        {
            "token_embd": {
                "weight": st.SplitPrimitiveTensor(
                    ts=list(t["token_embd.weight"].split(4)), shard_dim=0, name="token_embd.weight"
                )
            },
            "blk": {
                "0": {
                    "attn_q": {
                        "weight": st.SplitPrimitiveTensor(
                            ts=list(t["blk.0.attn_q.weight"].split(3, dim=1)), shard_dim=1, name="blk.0.attn_q.weight"
                        )
                    },
                    "attn_norm": {
                        "weight": st.ReplicatedTensor(
                            ts=[t["blk.0.attn_norm.weight"]] * 2, name="blk.0.attn_norm.weight"
                        )
                    },
                }
            },
            "output_norm": {
                "weight": st.DefaultPrimitiveTensor(data=t["output_norm.weight"], name="output_norm.weight")
            },
        }
    )
    st.Dataset(dict(PROPERTIES), theta).save(tmp_path / "real.irpa")
    merge(tmp_path / "real.irpa", tmp_path / "merged.irpa")
    merged = paramio.ParameterIndex.open(tmp_path / "merged.irpa")
    assert merged.attributes == PROPERTIES
    assert sorted(merged.keys()) == sorted(_tensors())
    for k, v in _tensors().items():
        assert np.array_equal(merged[k].to_numpy(), v), k


def test_shard_writes_a_dataset_and_merge_gives_the_original_bytes(st_model: Path, tmp_path: Path, paramio_cli) -> None:  # type: ignore[no-untyped-def]
    from tp_models import SPLIT

    rules = [f"--split={p}={a}" for p, a in SPLIT.items()] + ["--replicate=*"]
    code, out, err = paramio_cli(
        "shard", f"--parameters={st_model}", "--tp=2", *rules, "--layout=sharktank", f"--output={tmp_path / 'ds'}"
    )
    assert code == 0, err
    root = tmp_path / "ds" / "model.irpa"
    assert out.split() == [
        "wrote",
        str(root.with_suffix(".rank0.irpa")),
        "wrote",
        str(root.with_suffix(".rank1.irpa")),
        "wrote",
        str(root),
    ]
    contents = read_dataset(str(root))
    assert contents.attributes == {"safetensors.metadata": {"format": "np"}}  # the attributes, as properties
    keys = {e.key for e in paramio.ParameterIndex.open(root.with_suffix(".rank1.irpa")).values()}
    assert keys == {f"{p.replace('*', 'blk.0')}.shard.1" for p in SPLIT}  # replicated ones only in rank 0
    code, _, err = paramio_cli("merge", f"--parameters={root}", f"--output={tmp_path / 'back.safetensors'}")
    assert code == 0, err
    assert (tmp_path / "back.safetensors").read_bytes() == st_model.read_bytes()
    # Re-saved for one rank at the same root: plain tensors in the root, the rank files go.
    shard(root, root, tp=1, replicate=["*"], layout="sharktank")
    assert sorted(p.name for p in (tmp_path / "ds").iterdir()) == ["model.irpa"]
    merge(root, tmp_path / "back1.safetensors")
    assert (tmp_path / "back1.safetensors").read_bytes() == st_model.read_bytes()


def test_what_a_dataset_cannot_hold_is_refused_before_writing(tmp_path: Path) -> None:
    from paramio.core.errors import InvalidArgumentError

    entries = [paramio.ParameterEntry.splat("x", b"\0", 4)]  # no dtype: not a PrimitiveTensor
    with pytest.raises(InvalidArgumentError, match="'x'.*cannot hold no dtype and shape"):
        shard(entries, tmp_path / "ds", tp=2, replicate=["*"], layout="sharktank")
    assert not (tmp_path / "ds" / "model.irpa").exists()


def test_sharktank_loads_what_paramio_writes(st_model: Path, tmp_path: Path) -> None:
    st = pytest.importorskip("sharktank.types")
    from tp_models import SPLIT, model_tensors

    shard(st_model, tmp_path / "ds", tp=2, split=SPLIT, replicate=["*"], layout="sharktank")
    ds = st.Dataset.load(tmp_path / "ds" / "model.irpa")
    assert ds.properties == {"safetensors.metadata": {"format": "np"}, "SHARK_DATASET_VERSION": 1}
    flat = ds.root_theta.flatten()
    assert sorted(flat) == sorted(model_tensors())
    for k, v in model_tensors().items():
        t = flat[k]
        pieces = [s.as_torch().numpy() for s in t.shards]
        if type(t).__name__ == "SplitPrimitiveTensor":
            assert t.shard_dim == SPLIT[next(p for p in SPLIT if __import__("fnmatch").fnmatchcase(k, p))]
            whole = np.concatenate(pieces, axis=t.shard_dim)
        else:
            assert type(t).__name__ == "ReplicatedTensor" and len(pieces) == 2
            whole = pieces[0]
        assert whole.dtype == v.dtype and np.array_equal(whole, v), k


def test_cli_plan_and_options_the_layout_cannot_take(st_model: Path, tmp_path: Path, paramio_cli) -> None:  # type: ignore[no-untyped-def]
    base = ("shard", f"--parameters={st_model}", "--tp=2", "--split=token_embd.weight=0", "--replicate=*")
    code, out, err = paramio_cli(*base, "--layout=sharktank", "--plan")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == "tp=2 layout=sharktank"
    assert any(line.split()[:3] == ["output_norm.weight", "replicate", "once:"] for line in lines)
    # Replicated tensors count once (rank 0's file), split ones half on each rank.
    plan = paramio.sharding.plan(st_model, 2, split={"token_embd.weight": 0}, replicate=["*"], layout="sharktank")
    total = sum(e.length for e in paramio.ParameterIndex.open(st_model).values())
    assert plan.device_bytes() == [total - 256, 256]
    for extra in ("--format=gguf", "--max_shard_size=1KB"):
        code, _, err = paramio_cli(*base, "--layout=sharktank", extra, f"--output={tmp_path / 'ds'}")
        assert code == 2 and "--layout=sharktank writes one IRPA file per rank" in err, err
    assert not (tmp_path / "ds").exists()
