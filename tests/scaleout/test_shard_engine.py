"""``shard`` / ``reshard`` on the engine (`paramio.scaleout.shard`): one task per device file, the
files byte for byte those of the one-machine path (the save's stamp apart: a random id each save
writes), the manifest last; a failed job leaves no manifest and no staged file."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

import paramio
import paramio.sharding
from paramio.core.errors import InvalidArgumentError
from paramio.scaleout.job import run_job
from paramio.scaleout.shard import ShardJob, shard_on_engine

SPLIT = {"*.wq": 0, "*.wo": 1, "layers.1.w3": 2}
REPLICATE = ["*"]


def _model(path: Path) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(4)
    tensors = {
        "embed": rng.standard_normal((16, 8)).astype(np.float32),
        "layers.0.wq": rng.standard_normal((16, 12)).astype(np.float16),
        "layers.0.wo": rng.standard_normal((12, 16)).astype(np.float32),
        "layers.0.norm": rng.standard_normal(12).astype(np.float32),
        "layers.1.wq": rng.integers(-9, 9, (8, 6)).astype(np.int8),
        "layers.1.w3": rng.standard_normal((2, 3, 8)).astype(np.float32),
    }
    _save(tensors, path)
    return tensors


def _save(tensors: dict[str, np.ndarray], path: Path) -> None:
    index = paramio.ParameterIndex()
    for k, v in tensors.items():
        index.add_array(k, v)
    index.create_archive_file(str(path))


def _stamp(manifest: Path) -> str | None:
    doc = json.loads(manifest.read_text())
    from paramio.formats.sets import STAMP_KEY

    stamp = doc.get(STAMP_KEY)
    return stamp if isinstance(stamp, str) else None


def assert_same_set(mine: Path, theirs: Path) -> None:
    """Every file of the two sets is the same bytes once each save's stamp is swapped."""
    names = sorted(p.name for p in mine.iterdir())
    assert names == sorted(p.name for p in theirs.iterdir())
    (manifest,) = [n for n in names if n.endswith(".tp.json")]
    a, b = _stamp(mine / manifest), _stamp(theirs / manifest)
    assert (a is None) == (b is None)
    for n in names:
        got = (mine / n).read_bytes()
        if a is not None and b is not None:
            assert got.count(a.encode()) == (theirs / n).read_bytes().count(b.encode()) >= 1, n
            got = got.replace(a.encode(), b.encode())
        assert got == (theirs / n).read_bytes(), n


def _tp4(tmp_path: Path) -> tuple[Path, dict[str, np.ndarray]]:
    tensors = _model(tmp_path / "m.irpa")
    paramio.shard(str(tmp_path / "m.irpa"), str(tmp_path / "tp4"), tp=4, split=SPLIT, replicate=REPLICATE)
    return tmp_path / "tp4" / "m.tp.json", tensors


@pytest.mark.parametrize("layout", ["devices", "keys"])
def test_local_engine_reshards_4_to_2_as_the_one_machine_path(layout: str, tmp_path: Path) -> None:
    manifest4, tensors = _tp4(tmp_path)
    paramio.reshard(str(manifest4), str(tmp_path / "one"), tp=2, split=SPLIT, replicate=REPLICATE, layout=layout)
    plan, report = shard_on_engine(
        manifest4, tmp_path / "job", tp=2, split=SPLIT, replicate=REPLICATE, layout=layout, engine="local"
    )
    assert_same_set(tmp_path / "job", tmp_path / "one")
    assert report.tasks == (2 if layout == "devices" else 1)
    assert report.outputs[-1] == str(tmp_path / "job" / "m.tp.json")  # the manifest last
    assert plan.tp == 2
    merged = paramio.load(str(tmp_path / "job" / "m.tp.json"))
    for k, v in tensors.items():
        assert merged[k].tobytes() == v.tobytes() and merged[k].shape == v.shape, k


def test_replacing_a_set_removes_the_files_it_no_longer_has(tmp_path: Path) -> None:
    _model(tmp_path / "m.irpa")
    out = tmp_path / "out"
    shard_on_engine(tmp_path / "m.irpa", out, tp=4, split=SPLIT, replicate=REPLICATE, engine="local")
    assert sorted(p.name for p in out.iterdir()) == [f"m.rank{i}.irpa" for i in range(4)] + ["m.tp.json"]
    shard_on_engine(tmp_path / "m.irpa", out, tp=2, split=SPLIT, replicate=REPLICATE, engine="local")
    assert sorted(p.name for p in out.iterdir()) == ["m.rank0.irpa", "m.rank1.irpa", "m.tp.json"]


def test_a_permanent_task_failure_leaves_no_manifest_and_no_staged_file(tmp_path: Path) -> None:
    src = tmp_path / "m.irpa"
    _model(src)
    out = tmp_path / "out"
    job = ShardJob(str(src), str(out), tp=2, split=SPLIT, replicate=REPLICATE)
    staged: list[str] = []

    def meanwhile(snapshot: object) -> None:
        # While device file 0 is written, the source changes under the job: device file 1's
        # task then finds a tensor that no longer splits in 2, a permanent error.
        if not staged and job.leftovers():
            staged.extend(job.leftovers())
            _save({"embed": np.zeros((3, 8), np.float32)}, src)

    with pytest.raises(InvalidArgumentError):
        run_job(job, engine="local", progress=meanwhile)
    assert staged  # the first file had been staged
    assert not (out / "m.tp.json").exists()
    assert job.leftovers() == [] and sorted(os.listdir(out)) == []


def test_the_engine_refuses_what_it_does_not_write(tmp_path: Path) -> None:
    _model(tmp_path / "m.irpa")
    with pytest.raises(InvalidArgumentError, match="devices and keys layouts; vllm"):
        shard_on_engine(tmp_path / "m.irpa", tmp_path / "v", tp=2, split=SPLIT, replicate=REPLICATE, layout="vllm")
    with pytest.raises(InvalidArgumentError, match="reopens the source on every worker"):
        shard_on_engine([], tmp_path / "v", tp=2)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="entry 'embed'.*not a multiple of 3"):
        shard_on_engine(tmp_path / "m.irpa", tmp_path / "v", tp=3, split={"embed": 0}, replicate=REPLICATE)
    assert not (tmp_path / "v").exists() or not any((tmp_path / "v").iterdir())


@pytest.mark.slow
def test_ray_reshards_4_to_2_as_the_one_machine_path(ray_driver: object, tmp_path: Path) -> None:
    manifest4, tensors = _tp4(tmp_path)
    paramio.reshard(str(manifest4), str(tmp_path / "one"), tp=2, split=SPLIT, replicate=REPLICATE)
    _, report = shard_on_engine(manifest4, tmp_path / "ray", tp=2, split=SPLIT, replicate=REPLICATE, engine="ray")
    assert_same_set(tmp_path / "ray", tmp_path / "one")
    assert report.engine == "ray" and report.tasks == 2
    assert len({r.worker for r in report.results}) >= 1
    replicated = sum(v.nbytes for k, v in tensors.items() if k in ("embed", "layers.0.norm"))
    split = sum(v.nbytes for v in tensors.values()) - replicated
    assert sum(r.bytes_read for r in report.results) == split + 2 * replicated  # each piece once


@pytest.mark.slow
def test_paramio_shard_and_reshard_take_the_engine(ray_driver: object, tmp_path: Path) -> None:
    manifest4, _ = _tp4(tmp_path)
    ticks: list[int] = []
    result = paramio.shard(
        str(tmp_path / "m.irpa"),
        str(tmp_path / "s"),
        tp=2,
        split=SPLIT,
        replicate=REPLICATE,
        engine="ray",
        progress=ticks.append,
    )
    assert result.paths == [str(tmp_path / "s" / n) for n in ("m.rank0.irpa", "m.rank1.irpa", "m.tp.json")]
    report = result.job
    assert report is not None and report.tasks == 2  # type: ignore[attr-defined]
    assert sum(ticks) == sum(r.bytes_read for r in report.results) > 0  # type: ignore[attr-defined]
    paths = paramio.reshard(str(manifest4), str(tmp_path / "r"), tp=2, split=SPLIT, replicate=REPLICATE, engine="ray")
    assert paths == [str(tmp_path / "r" / n) for n in ("m.rank0.irpa", "m.rank1.irpa", "m.tp.json")]
    assert_same_set(tmp_path / "r", tmp_path / "s")


def test_engine_arguments_are_checked_before_anything_runs(tmp_path: Path) -> None:
    _model(tmp_path / "m.irpa")
    common = {"tp": 2, "split": SPLIT, "replicate": REPLICATE}
    with pytest.raises(InvalidArgumentError, match="max_shard_size is written by the one-machine path"):
        paramio.shard(str(tmp_path / "m.irpa"), str(tmp_path / "x"), max_shard_size=100, engine="ray", **common)
    with pytest.raises(InvalidArgumentError, match="engine='nope'"):
        paramio.shard(str(tmp_path / "m.irpa"), str(tmp_path / "x"), engine="nope", **common)
    with pytest.raises(InvalidArgumentError, match="address='auto' is for engine='ray'"):
        paramio.shard(str(tmp_path / "m.irpa"), str(tmp_path / "x"), engine="local", address="auto", **common)
    assert not (tmp_path / "x").exists()


@pytest.mark.slow
def test_ray_reshards_a_set_on_s3_reading_it_from_the_workers(ray_driver: object, moto: object, tmp_path: Path) -> None:
    import sys
    import uuid

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "sources"))
    from remote_servers import S3Server, put_object

    assert isinstance(moto, S3Server)
    manifest4, _ = _tp4(tmp_path)
    prefix = f"models/{uuid.uuid4().hex}"
    for f in sorted(manifest4.parent.iterdir()):
        put_object(moto, f"{prefix}/{f.name}", f.read_bytes())
    paramio.reshard(str(manifest4), str(tmp_path / "one"), tp=2, split=SPLIT, replicate=REPLICATE)
    options = {"config": moto.config(), "client_options": {"allow_http": True}}
    _, report = shard_on_engine(
        f"s3://{prefix}/m.tp.json",
        tmp_path / "ray",
        tp=2,
        split=SPLIT,
        replicate=REPLICATE,
        engine="ray",
        source_options=options,  # given to the call, not the environment: the workers get them with the tasks
    )
    assert_same_set(tmp_path / "ray", tmp_path / "one")
    assert report.tasks == 2
