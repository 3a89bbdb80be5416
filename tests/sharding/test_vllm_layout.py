"""vLLM's ``sharded_state`` layout: ``paramio shard --layout=vllm`` writes it, ``paramio merge``
and `paramio.sharding.merge` read it back with the axes named, resharding works from it.

The oracle for the files is the ``safetensors`` library (each rank's file holds NumPy's slice
of the original); files "vLLM wrote" are made as ``ShardedStateLoader.save_model`` makes them
(``safetensors.torch.save_file`` per rank and part, no metadata, greedy parts, an empty part 0
when the first tensor passes ``max_size``), since vLLM itself does not install here.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from tp_models import SPLIT, model_tensors

import paramio
from paramio.core.errors import FormatError, InvalidArgumentError
from paramio.sharding import merge, reshard, shard
from paramio.sharding.vllm import find_set, read_set

RULES = [f"--split={p}={a}" for p, a in SPLIT.items()] + ["--replicate=*"]


def _slice(array: np.ndarray, axis: int, rank: int, tp: int) -> np.ndarray:
    step = array.shape[axis] // tp
    index = [slice(None)] * array.ndim
    index[axis] = slice(rank * step, (rank + 1) * step)
    return array[tuple(index)]


def _axis(key: str) -> int | None:
    import fnmatch

    return next((a for p, a in SPLIT.items() if fnmatch.fnmatchcase(key, p)), None)


def _vllm_save(folder: Path, tensors: dict[str, np.ndarray], tp: int, max_size: int | None = None) -> None:
    """What vLLM's ``save_model`` writes for `tensors` split by SPLIT, rank by rank."""
    import torch
    from safetensors.torch import save_file

    folder.mkdir(exist_ok=True)
    for rank in range(tp):
        state = {}
        for k, v in tensors.items():
            axis = _axis(k)
            state[k] = torch.from_numpy(np.ascontiguousarray(v if axis is None else _slice(v, axis, rank, tp)))
        part, total, current = 0, 0, {}
        for k, t in state.items():
            size = t.nelement() * t.element_size()
            if max_size is not None and total + size > max_size:  # vLLM writes the part even if empty
                save_file(current, str(folder / f"model-rank-{rank}-part-{part}.safetensors"))
                part, total, current = part + 1, 0, {}
            current[k] = t
            total += size
        if current:
            save_file(current, str(folder / f"model-rank-{rank}-part-{part}.safetensors"))


def test_files_hold_each_ranks_slice(st_model: Path, tmp_path: Path) -> None:
    from safetensors.numpy import load_file

    out = tmp_path / "v2"
    result = shard(st_model, out, tp=2, split=SPLIT, replicate=["*"], layout="vllm")
    assert sorted(os.listdir(out)) == ["model-rank-0-part-0.safetensors", "model-rank-1-part-0.safetensors"]
    assert result.paths == [str(out / f"model-rank-{r}-part-0.safetensors") for r in range(2)]
    original = model_tensors()
    for rank in range(2):
        got = load_file(str(out / f"model-rank-{rank}-part-0.safetensors"))
        assert sorted(got) == sorted(original)
        for k, v in original.items():
            axis = _axis(k)
            expected = v if axis is None else _slice(v, axis, rank, 2)
            assert got[k].dtype == expected.dtype and np.array_equal(got[k], expected), k


@pytest.mark.parametrize("tp", [1, 2, 4])
def test_merge_gives_the_original_bytes(st_model: Path, tmp_path: Path, tp: int) -> None:
    split = {p: a for p, a in SPLIT.items() if tp <= 2 or p != "*.conv"}  # conv's axis 1 has 4
    out = tmp_path / "v"
    shard(st_model, out, tp=tp, split=split, replicate=["*"], layout="vllm")
    merge(out, tmp_path / "back.safetensors", split=split)
    assert (tmp_path / "back.safetensors").read_bytes() == st_model.read_bytes()


def test_cli_round_trip_from_the_folder_or_any_member(st_model: Path, tmp_path: Path, paramio_cli) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "v2"
    code, stdout, err = paramio_cli(
        "shard", f"--parameters={st_model}", "--tp=2", *RULES, "--layout=vllm", f"--output={out}"
    )
    assert code == 0, err
    assert stdout.split() == ["wrote", str(out / "model-rank-0-part-0.safetensors")] + [
        "wrote",
        str(out / "model-rank-1-part-0.safetensors"),
    ]
    for given in (out, out / "model-rank-1-part-0.safetensors"):
        back = tmp_path / "back.safetensors"
        code, _, err = paramio_cli("merge", f"--parameters={given}", *RULES[:-1], f"--output={back}")
        assert code == 0, err
        assert back.read_bytes() == st_model.read_bytes()
        back.unlink()


def test_merge_reads_what_vllm_writes(tmp_path: Path) -> None:
    tensors = model_tensors()
    _vllm_save(tmp_path / "vllm", tensors, 2, max_size=200)
    names = sorted(os.listdir(tmp_path / "vllm"))
    assert "model-rank-0-part-0.safetensors" in names and "model-rank-0-part-2.safetensors" in names
    merge(tmp_path / "vllm", tmp_path / "back.safetensors", split=SPLIT)
    back = paramio.ParameterIndex.open(tmp_path / "back.safetensors")
    assert sorted(back.keys()) == sorted(tensors)
    for k, v in tensors.items():
        assert np.array_equal(back[k].to_numpy(), v), k


def test_first_tensor_over_the_limit_leaves_vllm_an_empty_part(tmp_path: Path) -> None:
    tensors = model_tensors()
    _vllm_save(tmp_path / "vllm", tensors, 2, max_size=64)  # token_embd (256 bytes) comes first
    from safetensors.numpy import load_file

    assert load_file(str(tmp_path / "vllm" / "model-rank-0-part-0.safetensors")) == {}
    contents = read_set(tmp_path / "vllm" / "model-rank-1-part-3.safetensors", split=SPLIT)
    assert [e.key for e in contents.entries] == list(tensors)
    for e in contents.entries:
        assert np.array_equal(e.to_numpy(), tensors[e.key])


def test_parts_split_each_rank_as_vllm_does(st_model: Path, tmp_path: Path) -> None:
    from safetensors.numpy import load_file

    out = tmp_path / "v2"
    shard(st_model, out, tp=2, split=SPLIT, replicate=["*"], layout="vllm", max_shard_size=200)
    ours = sorted(os.listdir(out))
    # vLLM fills parts in its state dict's order: here, the order the input holds its tensors.
    order = list(paramio.ParameterIndex.open(st_model).keys())
    tensors = model_tensors()
    _vllm_save(tmp_path / "theirs", {k: tensors[k] for k in order}, 2, max_size=200)
    theirs = sorted(os.listdir(tmp_path / "theirs"))
    assert ours == theirs
    for name in ours:
        a, b = load_file(str(out / name)), load_file(str(tmp_path / "theirs" / name))
        assert sorted(a) == sorted(b) and all(np.array_equal(a[k], b[k]) for k in a), name
    merge(out, tmp_path / "back.safetensors", split=SPLIT)
    assert (tmp_path / "back.safetensors").read_bytes() == st_model.read_bytes()


def test_reshard_to_another_size_in_place_and_to_a_tp_set(st_model: Path, tmp_path: Path, paramio_cli) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "v"
    split = {p: a for p, a in SPLIT.items() if p != "*.conv"}
    rules = [f"--split={p}={a}" for p, a in split.items()] + ["--replicate=*"]
    shard(st_model, out, tp=2, split=split, replicate=["*"], layout="vllm")
    code, _, err = paramio_cli("shard", f"--parameters={out}", "--tp=4", *rules, "--layout=vllm", f"--output={out}")
    assert code == 0, err
    assert len(os.listdir(out)) == 4
    shard(out, out, tp=2, split=split, replicate=["*"], layout="vllm")  # 4 -> 2 removes ranks 2 and 3
    assert sorted(os.listdir(out)) == ["model-rank-0-part-0.safetensors", "model-rank-1-part-0.safetensors"]
    reshard(out, tmp_path / "tp" / "model.tp.json", tp=2, split=split, replicate=["*"])
    merge(tmp_path / "tp", tmp_path / "back.safetensors")
    assert (tmp_path / "back.safetensors").read_bytes() == st_model.read_bytes()
    reshard(out, tmp_path / "one.safetensors", split=split)  # no tp: the rules name the input's axes
    assert (tmp_path / "one.safetensors").read_bytes() == st_model.read_bytes()


def test_a_split_tensor_no_rule_names_is_refused(st_model: Path, tmp_path: Path, paramio_cli) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "v2"
    shard(st_model, out, tp=2, split=SPLIT, replicate=["*"], layout="vllm")
    rules = {p: a for p, a in SPLIT.items() if p != "*.ffn_up.weight"}
    with pytest.raises(FormatError, match="ffn_up.weight.*differs between rank 0 and rank 1"):
        merge(out, tmp_path / "x.safetensors", split=rules)
    code, _, err = paramio_cli("merge", f"--parameters={out}", f"--output={tmp_path / 'x.safetensors'}")
    assert code != 0 and "differs between rank 0 and rank 1" in err
    assert not (tmp_path / "x.safetensors").exists()
    # --replicate patterns, when given, bound what may be replicated.
    with pytest.raises(FormatError, match="output_norm.weight.*matches no split or replicate rule"):
        read_set(out, split=SPLIT, replicate=["token_embd.*"])


def test_a_broken_set_names_the_file_and_key(st_model: Path, tmp_path: Path) -> None:
    from safetensors.numpy import load_file, save_file

    out = tmp_path / "v3"
    split = {p: a for p, a in SPLIT.items() if p not in ("*.conv", "*.attn_q.weight", "*.attn_k.weight")}
    shard(st_model, out, tp=2, split=split, replicate=["*"], layout="vllm", max_shard_size=300)
    last = max(n for n in os.listdir(out) if n.startswith("model-rank-1-"))
    assert last != "model-rank-1-part-0.safetensors"
    # A key missing from one rank.
    one = out / "model-rank-1-part-0.safetensors"
    kept = load_file(str(one))
    dropped = sorted(kept)[0]
    save_file({k: v for k, v in kept.items() if k != dropped}, str(one))
    with pytest.raises(FormatError, match=f"{dropped}.*in rank 0 and not in rank 1"):
        read_set(out, split=split)
    save_file(kept, str(one))
    read_set(out, split=split)
    # A part missing in the middle of a rank.
    (out / "model-rank-1-part-0.safetensors").unlink()
    with pytest.raises(FormatError, match="model-rank-1-part-0.safetensors.*part 0 of rank 1 is missing"):
        read_set(out, split=split)
    # A split axis the slices do not have.
    shard(st_model, out, tp=2, split=split, replicate=["*"], layout="vllm")
    with pytest.raises(FormatError, match="output_norm.weight.*axis 3 is out of range"):
        read_set(out, split={**split, "output_norm.weight": 3})


def test_options_the_layout_cannot_take(st_model: Path, tmp_path: Path, paramio_cli) -> None:  # type: ignore[no-untyped-def]
    for extra, message in (
        (("--format=irpa",), "--format=irpa: the vllm layout writes safetensors files"),
        ((f"--output={tmp_path / 'm.tp.json'}",), "the vllm layout writes a folder of files and no manifest"),
    ):
        args = ["shard", f"--parameters={st_model}", "--tp=2", *RULES, "--layout=vllm"]
        if not any(a.startswith("--output") for a in extra):
            args.append(f"--output={tmp_path / 'o'}")
        code, _, err = paramio_cli(*args, *extra)
        assert code != 0 and message in err, err
    with pytest.raises(InvalidArgumentError, match="safetensors files, not gguf"):
        shard(st_model, tmp_path / "o", tp=2, split=SPLIT, replicate=["*"], layout="vllm", format="gguf")
    assert not (tmp_path / "o").exists()
    assert find_set(st_model) is None and find_set(tmp_path) is None
