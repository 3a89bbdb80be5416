"""Digest records computed while the engine converts (issues 26 and 28): each task hashes the
entries it copies, the driver merges the tasks' digests and patches the staged headers before it
publishes (an entry cut between byte-range tasks, and every entry of an uploaded set, hashed in a
digest job first): the files are the one-machine path's bytes (but for the set's stamp), verify,
and IREE reads them."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import numpy as np
import pytest
from ray_cluster import RayCluster
from safetensors.numpy import save_file
from scaleout_sets import files_in, safetensors_set, same_set
from test_engine_convert import objects, s3_options

import paramio
from paramio.core.errors import SourceError
from paramio.formats.inputs import input_options
from paramio.integrity.digest import verify_digests
from paramio.scaleout.convert import ConvertJob, convert_job
from paramio.scaleout.engine import Task, TaskContext, TaskResult
from paramio.scaleout.job import run_job
from paramio.scaleout.member import write_member

pytestmark = pytest.mark.slow

MiB = 1 << 20


def _both(
    source: str,
    base: Path,
    target: str,
    address: str,
    max_task_bytes: int | None = None,
    opened: str | None = None,
    **options: object,
) -> list[object]:
    """`source` converted with digests=True here (``one``) and on Ray (``ray``); the job's results."""
    (base / "one").mkdir()
    (base / "ray").mkdir()
    paramio.convert(source, str(base / "one" / target), digests=True, on_loss="ignore", **options)  # type: ignore[arg-type]
    _, report = convert_job(
        source,
        str(base / "ray" / target),
        engine="ray",
        address=address,
        digests=True,
        on_loss="ignore",
        max_task_bytes=max_task_bytes,
        **options,  # type: ignore[arg-type]
    )
    same_set(files_in(base / "one"), files_in(base / "ray"))  # and no staging file left
    record, problems = verify_digests(str(base / "ray" / (opened or target)))
    assert problems == [] and len(record.entries) == len(paramio.ParameterIndex.open(source).keys())
    return list(report.results)


@pytest.mark.parametrize(
    ("target", "shard", "opened"),
    [
        ("m.irpa.index.json", 200_000, None),
        ("m.safetensors.index.json", 200_000, None),
        ("m.gguf", None, None),
        ("m.gguf", 200_000, "m-00001-of-00005.gguf"),  # a GGUF split set: the record in its first file
    ],
)
def test_computed_digests_on_a_shared_path_are_the_one_machine_bytes(
    ray_driver: RayCluster, tmp_path: Path, target: str, shard: int | None, opened: str | None
) -> None:
    index = safetensors_set(tmp_path / "src", tensors=5, elements=30_000, max_shard_size=250_000)  # stores no digests
    options = {} if shard is None else {"max_shard_size": shard}
    results = _both(str(index), tmp_path, target, ray_driver.address, opened=opened, **options)
    hashed = [k for r in results for k in r.values["digests"]]  # type: ignore[attr-defined]
    assert sorted(hashed) == sorted(paramio.ParameterIndex.open(str(index)).keys())  # each once, by its task


def test_a_member_in_byte_ranges_gets_the_record_and_iree_reads_it(
    ray_driver: RayCluster, tmp_path: Path, run_tool, iree_tool
) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(3)
    src = tmp_path / "src.safetensors"
    save_file(
        {
            "small.a": rng.standard_normal(1000, dtype=np.float32),
            "huge": rng.standard_normal(5 * MiB // 4, dtype=np.float32),  # cut in 2 MiB ranges: hashed apart
            "mid": rng.standard_normal(MiB // 4, dtype=np.float32),
        },
        str(src),
    )
    (tmp_path / "base").mkdir()
    results = _both(str(src), tmp_path / "base", "big.irpa", ray_driver.address, max_task_bytes=2 * MiB)
    assert len(results) > 1  # one file, several tasks
    hashed = [k for r in results for k in r.values["digests"]]  # type: ignore[attr-defined]
    assert sorted(hashed) == ["mid", "small.a"]  # copied whole by a task; "huge" by the digest job
    assert {r.values["head"] for r in results} != {None}  # type: ignore[attr-defined]
    dump = run_tool([iree_tool("iree-dump-parameters"), f"--parameters={tmp_path / 'base' / 'ray' / 'big.irpa'}"])
    assert "paramio" not in dump.stdout and "(3 entries" in dump.stdout


def test_computed_digests_on_s3_are_the_one_machine_bytes(ray_driver: RayCluster, moto, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    index = safetensors_set(tmp_path / "src", tensors=4, elements=30_000, max_shard_size=250_000)
    prefix = f"{uuid.uuid4().hex}/"
    options = s3_options(moto)
    for name, shard in (("m.irpa", 200_000), ("single.safetensors", None)):  # a set, and one file
        sizing = {} if shard is None else {"max_shard_size": shard}
        with input_options(options):
            paramio.convert(str(index), f"s3://models/{prefix}one/{name}", digests=True, **sizing)  # type: ignore[arg-type]
        convert_job(
            str(index),
            f"s3://models/{prefix}ray/{name}",
            engine="ray",
            address=ray_driver.address,
            digests=True,
            source_options=options,
            **sizing,  # type: ignore[arg-type]
        )
    one, ray_made = objects(moto, prefix + "one/"), objects(moto, prefix + "ray/")
    assert "m.irpa.index.json" in one and "single.safetensors" in one
    same_set(
        {k: v for k, v in one.items() if k.startswith("m")}, {k: v for k, v in ray_made.items() if k.startswith("m")}
    )
    assert one["single.safetensors"] == ray_made["single.safetensors"]
    local = tmp_path / "single.safetensors"
    local.write_bytes(ray_made["single.safetensors"])
    _, problems = verify_digests(str(local))
    assert problems == []
    assert moto.pending_uploads("models") == []


def test_the_cli_converts_with_digests_on_ray(ray_driver: RayCluster, tmp_path: Path, paramio_cli) -> None:  # type: ignore[no-untyped-def]
    index = safetensors_set(tmp_path / "src", tensors=3, elements=20_000, max_shard_size=150_000)
    for folder, engine in (("one", []), ("ray", ["--engine=ray", f"--address={ray_driver.address}"])):
        os.mkdir(tmp_path / folder)
        code, _, err = paramio_cli(
            "convert", f"--parameters={index}", f"--output={tmp_path / folder / 'm.irpa'}", "--digests", *engine
        )
        assert code == 0, err
    same_set(files_in(tmp_path / "one"), files_in(tmp_path / "ray"))
    code, _, err = paramio_cli("verify", str(tmp_path / "ray" / "m.irpa"), "--digests")
    assert code == 0, err


def test_a_set_storing_digests_merges_on_ray_with_a_new_record(ray_driver: RayCluster, tmp_path: Path) -> None:
    from test_merge_engine import assert_same_files
    from test_shard_engine import REPLICATE, SPLIT, _model

    from paramio.integrity.digest import write_digests
    from paramio.scaleout.merge import merge_on_engine

    _model(tmp_path / "m.irpa")
    write_digests(str(tmp_path / "m.irpa"))  # the ranks carry a record: the merged file gets one anew
    paramio.shard(str(tmp_path / "m.irpa"), str(tmp_path / "tp4"), tp=4, split=SPLIT, replicate=REPLICATE)
    manifest = tmp_path / "tp4" / "m.tp.json"
    for d in ("one", "ray"):
        (tmp_path / d).mkdir()
    paramio.merge(str(manifest), str(tmp_path / "one" / "m.irpa"), max_shard_size=700)
    report = merge_on_engine(
        manifest, tmp_path / "ray" / "m.irpa", max_shard_size=700, engine="ray", address=ray_driver.address
    )
    assert_same_files(tmp_path / "ray", tmp_path / "one")
    record, problems = verify_digests(str(tmp_path / "ray" / "m.irpa.index.json"))
    assert problems == [] and sorted(record.entries) == sorted(
        paramio.ParameterIndex.open(str(tmp_path / "m.irpa")).keys()
    )
    assert sorted(k for r in report.results for k in r.values["digests"]) == sorted(record.entries)


def test_an_uploaded_merged_set_that_needs_digests_first_is_refused(moto, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from test_shard_engine import REPLICATE, SPLIT, _model

    from paramio.integrity.digest import write_digests
    from paramio.scaleout.merge import merge_on_engine

    _model(tmp_path / "m.irpa")
    write_digests(str(tmp_path / "m.irpa"))
    paramio.shard(str(tmp_path / "m.irpa"), str(tmp_path / "tp4"), tp=4, split=SPLIT, replicate=REPLICATE)
    prefix = f"{uuid.uuid4().hex}/"
    with pytest.raises(paramio.InvalidArgumentError, match="joined from a set are hashed only as a task copies"):
        merge_on_engine(
            tmp_path / "tp4" / "m.tp.json",
            f"s3://models/{prefix}m.irpa",
            max_shard_size=700,
            engine="local",
            source_options=s3_options(moto),
        )
    assert objects(moto, prefix) == {}


@pytest.mark.parametrize("layout", ["devices", "keys"])
def test_a_source_storing_digests_shards_on_the_engine_with_each_files_record(tmp_path: Path, layout: str) -> None:
    from test_shard_engine import REPLICATE, SPLIT, _model, assert_same_set

    from paramio.integrity.digest import write_digests
    from paramio.scaleout.shard import shard_on_engine

    _model(tmp_path / "m.irpa")
    write_digests(str(tmp_path / "m.irpa"))  # each device file gets a record of its own pieces
    paramio.shard(
        str(tmp_path / "m.irpa"), str(tmp_path / "one"), tp=2, split=SPLIT, replicate=REPLICATE, layout=layout
    )
    shard_on_engine(
        tmp_path / "m.irpa", tmp_path / "job", tp=2, split=SPLIT, replicate=REPLICATE, layout=layout, engine="local"
    )
    assert_same_set(tmp_path / "job", tmp_path / "one")
    files = sorted(p for p in (tmp_path / "job").iterdir() if p.suffix == ".irpa")
    assert len(files) == (2 if layout == "devices" else 1)
    for path in files:
        record, problems = verify_digests(str(path))
        assert problems == [] and record.entries


@pytest.fixture(scope="module")
def by_value(ray_driver: RayCluster) -> RayCluster:
    """This module's task bodies travel to the workers by value (they cannot import tests/)."""
    import sys

    import ray

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    return ray_driver


def flaky_after_writing(task: Task, context: TaskContext) -> TaskResult:
    """The second part's first attempt writes its bytes (its header's placeholders too), then
    hits an I/O error; its retry succeeds: the record comes from the attempts that succeeded."""
    log = Path(task.args["final"]).parent.parent / "attempts"
    tries = log.read_text().split().count(task.id) if log.exists() else 0
    with open(log, "a") as f:
        f.write(task.id + "\n")
    result = write_member(task, context)
    if task.id.endswith("part-00002") and tries == 0:
        raise SourceError("connection reset (planted by the test)", path=task.args["final"])
    return result


def test_a_retried_part_leaves_the_same_record(by_value: RayCluster, tmp_path: Path) -> None:
    from paramio.formats.registry import prepare_write
    from paramio.index.convert import plan_conversion

    rng = np.random.default_rng(11)
    src = tmp_path / "src.safetensors"
    save_file({f"t{i}": rng.standard_normal(MiB // 4, dtype=np.float32) for i in range(4)}, str(src))
    (tmp_path / "one").mkdir()
    (tmp_path / "out").mkdir()
    paramio.convert(str(src), str(tmp_path / "one" / "m.irpa"), digests=True)
    plan = plan_conversion(str(src))
    fmt, path, prepared, sink = prepare_write(
        str(tmp_path / "out" / "m.irpa"), plan.entries, attributes=plan.attributes, digests=True
    )
    job = ConvertJob(
        path,
        prepared.entries,
        format=fmt.name,
        attributes=prepared.attributes,
        writer_options={},
        source_options={},
        max_task_bytes=2 * MiB,
        digests=sink,
        engine="ray",
        address=by_value.address,
    )
    job.body = flaky_after_writing
    report = run_job(job, engine="ray", address=by_value.address)
    assert report.retries >= 1 and report.tasks == 2
    assert (tmp_path / "out" / "m.irpa").read_bytes() == (tmp_path / "one" / "m.irpa").read_bytes()
    assert os.listdir(tmp_path / "out") == ["m.irpa"]
    _, problems = verify_digests(str(tmp_path / "out" / "m.irpa"))
    assert problems == []
