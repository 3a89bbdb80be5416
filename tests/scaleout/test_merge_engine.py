"""``merge`` (and ``reshard`` into a plain file or set) on the engine (`paramio.scaleout.merge`):
each worker reopens the set and writes its member from the joined tensors; the output is byte
for byte `paramio.merge`'s (a size-sharded set's random save stamp apart)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_shard_engine import REPLICATE, SPLIT, _model, _tp4

import paramio
from paramio.core.errors import FormatError, InvalidArgumentError
from paramio.formats.sets import STAMP_KEY
from paramio.scaleout.merge import merge_on_engine


def _stamps(folder: Path) -> set[str]:
    found: set[str] = set()

    def walk(x: object) -> None:
        if isinstance(x, dict):
            for k, v in x.items():
                if k == STAMP_KEY and isinstance(v, str):
                    found.add(v)
                walk(v)

    for p in folder.glob("*.json"):
        walk(json.loads(p.read_text()))
    return found


def assert_same_files(mine: Path, theirs: Path) -> None:
    names = sorted(p.name for p in mine.iterdir())
    assert names == sorted(p.name for p in theirs.iterdir())
    a, b = _stamps(mine), _stamps(theirs)
    assert len(a) == len(b) <= 1
    for n in names:
        got = (mine / n).read_bytes()
        if a:
            got = got.replace(next(iter(a)).encode(), next(iter(b)).encode())
        assert got == (theirs / n).read_bytes(), n


@pytest.mark.parametrize(("name", "size"), [("m.safetensors", None), ("m.irpa", 700)])
def test_local_engine_merges_as_the_one_machine_path(name: str, size: int | None, tmp_path: Path) -> None:
    manifest4, tensors = _tp4(tmp_path)
    (tmp_path / "one").mkdir()
    (tmp_path / "job").mkdir()
    paramio.merge(str(manifest4), str(tmp_path / "one" / name), max_shard_size=size)
    report = merge_on_engine(manifest4, tmp_path / "job" / name, max_shard_size=size, engine="local")
    assert_same_files(tmp_path / "job", tmp_path / "one")
    assert report.operation == "merge" and report.tasks == len(
        [p for p in (tmp_path / "one").iterdir() if "json" not in p.name]
    )
    got = paramio.load(str(tmp_path / "job" / (name if size is None else "m.irpa.index.json")))
    for k, v in tensors.items():
        assert got[k].tobytes() == v.tobytes(), k


def test_a_vllm_set_merges_with_its_axes(tmp_path: Path) -> None:
    tensors = _model(tmp_path / "m.irpa")
    paramio.shard(str(tmp_path / "m.irpa"), str(tmp_path / "v"), tp=2, split=SPLIT, replicate=REPLICATE, layout="vllm")
    (tmp_path / "one").mkdir()
    (tmp_path / "job").mkdir()
    paramio.merge(str(tmp_path / "v"), str(tmp_path / "one" / "m.safetensors"), split=SPLIT)
    merge_on_engine(tmp_path / "v", tmp_path / "job" / "m.safetensors", split=SPLIT, engine="local")
    assert_same_files(tmp_path / "job", tmp_path / "one")
    got = paramio.load(str(tmp_path / "job" / "m.safetensors"))
    assert all(got[k].tobytes() == v.tobytes() for k, v in tensors.items())


def test_a_set_changed_since_the_plan_fails_the_job_and_leaves_nothing(tmp_path: Path) -> None:
    manifest4, _ = _tp4(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    calls: list[int] = []

    def meanwhile(snapshot: object) -> None:
        if not calls:  # before the task reads: the set is saved again with other tensors
            calls.append(1)
            _model(tmp_path / "x.irpa")  # the same tensors' layout: only the save differs
            paramio.shard(
                str(tmp_path / "x.irpa"), str(tmp_path / "tp4"), tp=4, split={"*.wq": 0}, replicate=["*"], stem="m"
            )

    with pytest.raises(FormatError, match=r"changed since the job was planned \(saved again\)"):
        merge_on_engine(manifest4, out / "m.irpa", engine="local", progress=meanwhile)
    assert calls and sorted(p.name for p in out.iterdir()) == []


def test_merge_and_reshard_route_to_the_engine(tmp_path: Path) -> None:
    manifest4, _ = _tp4(tmp_path)
    with pytest.raises(InvalidArgumentError, match="engine='nope'"):
        paramio.merge(str(manifest4), str(tmp_path / "x.irpa"), engine="nope")
    with pytest.raises(InvalidArgumentError, match="engine='nope'"):
        paramio.reshard(str(manifest4), str(tmp_path / "x.irpa"), engine="nope")
    with pytest.raises(InvalidArgumentError, match="reopens the set on every worker"):
        paramio.reshard(paramio.ParameterIndex.open(str(manifest4)).entries, str(tmp_path / "x.irpa"), engine="ray")  # type: ignore[arg-type]
    assert not (tmp_path / "x.irpa").exists()


@pytest.mark.slow
def test_ray_merges_as_the_one_machine_path(ray_driver: object, tmp_path: Path) -> None:
    manifest4, tensors = _tp4(tmp_path)
    for d in ("one", "ray"):
        (tmp_path / d).mkdir()
    paramio.merge(str(manifest4), str(tmp_path / "one" / "m.irpa"), max_shard_size=700)
    ticks: list[int] = []
    paramio.merge(
        str(manifest4), str(tmp_path / "ray" / "m.irpa"), max_shard_size=700, engine="ray", progress=ticks.append
    )
    assert_same_files(tmp_path / "ray", tmp_path / "one")
    assert sum(ticks) == sum(v.nbytes for v in tensors.values())  # every byte read once, across the workers


def test_a_sharktank_dataset_merges_from_its_root(tmp_path: Path) -> None:
    tensors = _model(tmp_path / "m.irpa")
    (tmp_path / "st").mkdir()
    paramio.shard(
        str(tmp_path / "m.irpa"),
        str(tmp_path / "st" / "ds.irpa"),
        tp=2,
        split=SPLIT,
        replicate=REPLICATE,
        layout="sharktank",
    )
    for d in ("one", "job"):
        (tmp_path / d).mkdir()
    paramio.merge(str(tmp_path / "st" / "ds.rank1.irpa"), str(tmp_path / "one" / "m.irpa"))
    paramio.merge(
        str(tmp_path / "st" / "ds.rank1.irpa"), str(tmp_path / "job" / "m.irpa"), engine="local", address=None
    )
    merge_on_engine(tmp_path / "st" / "ds.irpa", tmp_path / "job" / "m.irpa", engine="local")
    assert_same_files(tmp_path / "job", tmp_path / "one")
    got = paramio.load(str(tmp_path / "job" / "m.irpa"))
    assert all(got[k].tobytes() == v.tobytes() for k, v in tensors.items())
