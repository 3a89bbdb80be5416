"""Each task keeps within its memory bound (issue 28): a set on S3 whose members are larger than
the bound converts to an IRPA set on S3, every task's peak (its worker's resident set above what
the process held when the task began, measured in the task) under the bound, and the bytes those
of the one-machine path."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from ray_cluster import RayCluster
from remote_servers import S3Server, put_object
from scaleout_sets import safetensors_set, same_set
from test_engine_convert import objects, s3_options

import paramio
from paramio.formats.inputs import input_options
from paramio.scaleout.convert import convert_job

pytestmark = pytest.mark.slow

MiB = 1 << 20


def test_each_task_stays_within_its_bound_on_members_larger_than_it(
    ray_driver: RayCluster, moto: S3Server, tmp_path: Path
) -> None:
    bound = 24 * MiB
    member = 40 * MiB
    # 4 tensors of 20 MiB (+ small biases): two members of 40 MiB each out.
    index = safetensors_set(tmp_path / "src", tensors=4, elements=5 * MiB, max_shard_size=member + MiB)
    prefix = f"{uuid.uuid4().hex}/"
    for f in sorted(index.parent.iterdir()):
        put_object(moto, f"models/{prefix}src/{f.name}", f.read_bytes())
    source = f"s3://models/{prefix}src/{index.name}"
    options = s3_options(moto)
    _, report = convert_job(
        source,
        f"s3://models/{prefix}ray/model.irpa",
        engine="ray",
        address=ray_driver.address,
        max_shard_size=member + MiB,
        memory_bound=bound,
        source_options=options,
    )
    assert report.tasks == 2
    for r in report.results:
        assert r.size > bound  # each member is larger than the bound ...
        assert r.peak_bytes is not None and 0 < r.peak_bytes <= bound, (r.task_id, r.peak_bytes)  # ... its task is not
    assert report.to_dict()["peak_task_bytes"] == max(r.peak_bytes or 0 for r in report.results)
    with input_options(options):
        paramio.convert(source, f"s3://models/{prefix}one/model.irpa", max_shard_size=member + MiB)
    same_set(objects(moto, prefix + "one/"), objects(moto, prefix + "ray/"))
