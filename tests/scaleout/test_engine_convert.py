"""``convert`` on the Ray engine (issue 28): a safetensors set on S3 becomes an IRPA set on S3, and
local sets convert on a shared path, byte-identical to the one-machine path (but for the set's
random stamp); the job's summary; nothing of a job left beside the output."""

from __future__ import annotations

import os
import sys
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from ray_cluster import RayCluster
from safetensors.numpy import save_file
from scaleout_sets import files_in, safetensors_set, same_set

import paramio
from paramio.formats.inputs import input_options
from paramio.integrity.digest import verify_digests, write_digests
from paramio.scaleout.convert import convert_job
from paramio.sources import open_source

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "sources"))
from remote_servers import S3Server, put_object  # noqa: E402

pytestmark = pytest.mark.slow

MiB = 1 << 20


def s3_options(server: S3Server) -> dict[str, Any]:
    return {"config": server.config(), "client_options": {"allow_http": True}}


def objects(server: S3Server, prefix: str) -> dict[str, bytes]:
    """The objects under `prefix` (read signed, as paramio wrote them)."""
    out = {}
    for key in server.keys("models"):
        if key.startswith(prefix):
            src = open_source(f"s3://models/{key}", **s3_options(server))
            out[key[len(prefix) :]] = bytes(src.view(0, src.size))
            src.close()
    return out


def test_s3_safetensors_set_to_irpa_set_on_s3_is_the_one_machine_bytes(
    ray_driver: RayCluster, moto: S3Server, tmp_path: Path
) -> None:
    index = safetensors_set(tmp_path / "src", tensors=6, elements=40_000, max_shard_size=400_000)
    prefix = f"{uuid.uuid4().hex}/"
    for f in sorted(index.parent.iterdir()):
        put_object(moto, f"models/{prefix}src/{f.name}", f.read_bytes())
    source = f"s3://models/{prefix}src/{index.name}"
    options = s3_options(moto)
    with input_options(options):
        paramio.convert(source, f"s3://models/{prefix}one/model.irpa", max_shard_size=300_000)
    _, report = convert_job(
        source,
        f"s3://models/{prefix}ray/model.irpa",
        engine="ray",
        address=ray_driver.address,
        max_shard_size=300_000,
        source_options=options,
    )
    one, ray_made = objects(moto, prefix + "one/"), objects(moto, prefix + "ray/")
    assert len(one) >= 4 and "model.irpa.index.json" in one  # several members and the manifest
    same_set(one, ray_made)
    assert report.tasks == len(one) - 1
    assert sorted(report.outputs) == sorted(f"s3://models/{prefix}ray/{n}" for n in one)
    assert report.bytes_total == sum(e.length for e in paramio.ParameterIndex.open(str(index)).values())
    # Ray worker processes ran the tasks, not the driver. How many took tasks is Ray's scheduling:
    # six short tasks may all go to the worker already running (seen in a full suite run).
    pids = {int(name.rsplit(":", 1)[1]) for name in report.workers}
    assert 1 <= len(pids) <= 2 and os.getpid() not in pids
    assert moto.pending_uploads("models") == []


@pytest.mark.parametrize("target", ["model.irpa.index.json", "model.safetensors.index.json", "model.irpa"])
def test_local_sets_on_a_shared_path_are_the_one_machine_bytes(
    ray_driver: RayCluster, tmp_path: Path, target: str
) -> None:
    index = safetensors_set(tmp_path / "src", tensors=5, elements=30_000, max_shard_size=250_000)
    (tmp_path / "one").mkdir()
    (tmp_path / "ray").mkdir()
    paramio.convert(str(index), str(tmp_path / "one" / target), max_shard_size=200_000)
    plan, report = convert_job(
        str(index), str(tmp_path / "ray" / target), engine="ray", address=ray_driver.address, max_shard_size=200_000
    )
    same_set(files_in(tmp_path / "one"), files_in(tmp_path / "ray"))  # no staging file left either
    assert len(plan.entries) == 10
    assert report.engine == "ray" and report.tasks == len(os.listdir(tmp_path / "one")) - 1


def test_the_library_call_takes_engine_and_address(ray_driver: RayCluster, tmp_path: Path) -> None:
    index = safetensors_set(tmp_path / "src", tensors=3, elements=20_000, max_shard_size=150_000)
    (tmp_path / "one").mkdir()
    (tmp_path / "ray").mkdir()
    paramio.convert(str(index), str(tmp_path / "one" / "m.irpa"), max_shard_size=100_000)
    seen: list[int] = []
    plan = paramio.convert(
        str(index),
        str(tmp_path / "ray" / "m.irpa"),
        max_shard_size=100_000,
        engine="ray",
        address=ray_driver.address,
        progress=seen.append,
    )
    same_set(files_in(tmp_path / "one"), files_in(tmp_path / "ray"))
    assert sum(seen) == sum(e.length for e in plan.entries)


def test_the_local_engine_runs_the_same_tasks_here(tmp_path: Path) -> None:
    index = safetensors_set(tmp_path / "src", tensors=4, elements=20_000, max_shard_size=150_000)
    (tmp_path / "one").mkdir()
    (tmp_path / "here").mkdir()
    paramio.convert(str(index), str(tmp_path / "one" / "m.irpa"), max_shard_size=100_000)
    _, report = convert_job(str(index), str(tmp_path / "here" / "m.irpa"), engine="local", max_shard_size=100_000)
    same_set(files_in(tmp_path / "one"), files_in(tmp_path / "here"))
    assert report.engine == "local" and len(report.workers) == 1
    doc = report.to_dict()
    assert doc["tasks"] == report.tasks and doc["bytes"] == report.bytes_total


@pytest.mark.parametrize("target", ["big.irpa", "big.safetensors", "big.irpa.index.json"])
def test_a_member_larger_than_a_task_is_written_in_byte_ranges(
    ray_driver: RayCluster, tmp_path: Path, target: str
) -> None:
    rng = np.random.default_rng(5)
    arrays = {
        "small.a": rng.standard_normal(1000, dtype=np.float32),
        "huge": rng.standard_normal(5 * MiB // 4, dtype=np.float32),  # 5 MiB: cut in 2 MiB ranges
        "small.b": rng.integers(0, 9, 3000, dtype=np.int8),
        "mid": rng.standard_normal(MiB // 4, dtype=np.float32),
        "zeros": np.zeros(MiB // 4, np.float32),
    }
    src = tmp_path / "src.safetensors"
    save_file(arrays, str(src))
    rules = {"splat": {"zeros": "f32=0"}}  # a splat: IRPA keeps it, safetensors writes it out (never cut)
    (tmp_path / "one").mkdir()
    (tmp_path / "ray").mkdir()
    shard = {"max_shard_size": 4 * MiB} if target.endswith(".json") else {}
    paramio.convert(str(src), str(tmp_path / "one" / target), on_loss="ignore", **rules, **shard)  # type: ignore[arg-type]
    _, report = convert_job(
        str(src),
        str(tmp_path / "ray" / target),
        engine="ray",
        address=ray_driver.address,
        max_task_bytes=2 * MiB,
        on_loss="ignore",
        **rules,  # type: ignore[arg-type]
        **shard,  # type: ignore[arg-type]
    )
    same_set(files_in(tmp_path / "one"), files_in(tmp_path / "ray"))
    members = len(os.listdir(tmp_path / "one")) - (1 if target.endswith(".json") else 0)
    assert report.tasks > members  # more tasks than files: a member was written in parts
    assert len({r.output for r in report.results}) == members
    assert report.bytes_total == sum(r.bytes_read for r in report.results)


def test_an_address_of_another_cluster_is_refused(ray_driver: RayCluster, tmp_path: Path) -> None:
    index = safetensors_set(tmp_path / "src", tensors=1, elements=1024, max_shard_size=10**9)
    host = ray_driver.address.rpartition(":")[0]
    with pytest.raises(paramio.InvalidArgumentError, match="connected to the Ray cluster at"):
        convert_job(str(index), str(tmp_path / "m.irpa"), engine="ray", address=f"{host}:1")
    assert not (tmp_path / "m.irpa").exists()


def test_digests_carried_from_the_input_ride_along_and_the_rest_are_computed(
    ray_driver: RayCluster, tmp_path: Path
) -> None:
    rng = np.random.default_rng(9)
    src = tmp_path / "src.safetensors"
    save_file({f"w{i}": rng.standard_normal(20_000, dtype=np.float32) for i in range(4)}, str(src))
    write_digests(str(src))  # the input stores blake3 digests
    other = tmp_path / "other.safetensors"
    save_file({"extra": rng.standard_normal(30_000, dtype=np.float32)}, str(other))  # stores none
    for folder, engine in (("one", "local"), ("ray", "ray")):
        (tmp_path / folder).mkdir()
        paramio.convert(  # the record covers every entry: those of `other` are hashed as they are copied
            [str(src), str(other)],
            str(tmp_path / folder / "m.irpa"),
            max_shard_size=100_000,
            engine=engine,
            address=ray_driver.address if engine == "ray" else None,
        )
    same_set(files_in(tmp_path / "one"), files_in(tmp_path / "ray"))
    record, problems = verify_digests(str(tmp_path / "ray" / "m.irpa.index.json"))
    assert problems == [] and record is not None and len(record.entries) == 5
    assert record.algorithm == verify_digests(str(src))[0].algorithm  # the input's, carried
