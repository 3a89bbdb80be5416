"""``digest`` and ``verify_digests`` on the Ray engine (issue 28): the same digests as the
one-machine path for a set on S3 and on a shared path, entries split into tasks of bounded bytes;
verify names the entry whose bytes changed."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from ray_cluster import RayCluster
from remote_servers import S3Server, put_object
from scaleout_sets import safetensors_set
from test_engine_convert import s3_options

import paramio
from paramio.formats.inputs import input_options
from paramio.integrity import digest
from paramio.integrity.digest import verify_digests, write_digests
from paramio.loading.api import resolve
from paramio.scaleout.digest import digest_job

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("algorithm", ["blake3", "sha256"])
def test_digests_of_a_set_on_s3_are_the_one_machine_ones(
    ray_driver: RayCluster, moto: S3Server, tmp_path: Path, algorithm: str
) -> None:
    index = safetensors_set(tmp_path / "src", tensors=6, elements=30_000, max_shard_size=300_000)
    prefix = f"{uuid.uuid4().hex}/"
    for f in sorted(index.parent.iterdir()):
        put_object(moto, f"models/{prefix}{f.name}", f.read_bytes())
    url = f"s3://models/{prefix}{index.name}"
    with input_options(s3_options(moto)):
        one = digest(url, algorithm)
        pairs = resolve(url)
        got, report = digest_job(pairs, algorithm, engine="ray", address=ray_driver.address, task_bytes=250_000)
    assert list(got.items()) == list(one.entries.items())  # same digests, same order
    assert one.entries == digest(str(index), algorithm).entries
    assert report.tasks == 3  # two 120 kB weights (and their biases) a task
    assert all(r.bytes_read <= 250_000 or len(r.values["digests"]) == 1 for r in report.results)


def test_the_library_calls_take_engine_and_verify_finds_a_changed_entry(ray_driver: RayCluster, tmp_path: Path) -> None:
    path = tmp_path / "m.irpa"
    paramio.convert(str(safetensors_set(tmp_path / "src", tensors=3, elements=20_000, max_shard_size=10**9)), str(path))
    write_digests(path)
    assert digest(path, engine="ray", address=ray_driver.address).entries == digest(path).entries
    record, problems = verify_digests(path, engine="ray", address=ray_driver.address)
    assert problems == [] and len(record.entries) == 6
    entry = paramio.ParameterIndex.open(str(path))["layers.1.weight"]
    with open(path, "r+b") as f:  # one byte of one tensor changes
        f.seek(entry.offset + 100)
        old = f.read(1)
        f.seek(entry.offset + 100)
        f.write(bytes([old[0] ^ 0xFF]))
    _, problems = verify_digests(path, engine="ray", address=ray_driver.address)
    assert [p.key for p in problems] == ["layers.1.weight"]
    assert problems == verify_digests(path)[1]
