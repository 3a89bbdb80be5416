"""``--engine=ray --address=...`` on the commands (issue 28): convert writes the one-machine bytes
and prints the job's summary with --json (a separate driver process joining the cluster by its
address); digest and verify --digests give the local results; a bad engine is a usage error."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from ray_cluster import RayCluster
from scaleout_sets import files_in, safetensors_set, same_set

import paramio

pytestmark = pytest.mark.slow

Cli = Callable[..., tuple[int, str, str]]


def test_convert_on_ray_from_the_command_line(ray_cluster: RayCluster, tmp_path: Path) -> None:
    index = safetensors_set(tmp_path / "src", tensors=4, elements=20_000, max_shard_size=150_000)
    (tmp_path / "one").mkdir()
    (tmp_path / "ray").mkdir()
    paramio.convert(str(index), str(tmp_path / "one" / "m.irpa"), max_shard_size=100_000)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "paramio",
            "convert",
            f"--parameters={index}",
            f"--output={tmp_path / 'ray' / 'm.irpa'}",
            "--max_shard_size=100000",
            "--engine=ray",
            f"--address={ray_cluster.address}",
            "--memory_bound=64MiB",
            "--json",
        ],
        env=ray_cluster.env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert list(doc)[0] == "version" and doc["engine"] == "ray" and doc["entries"] == 8
    job = doc["job"]
    assert job["operation"] == "convert" and job["address"] == ray_cluster.address
    assert job["memory_bound"] == 64 << 20 and 0 < job["peak_task_bytes"] <= 64 << 20
    assert job["tasks"] == len(job["outputs"]) - 1 == 4
    assert job["bytes"] == doc["bytes"] == sum(w["bytes"] for w in job["workers"])
    assert all(w["bytes_per_second"] > 0 for w in job["workers"])
    same_set(files_in(tmp_path / "one"), files_in(tmp_path / "ray"))


def test_digest_and_verify_on_ray(ray_driver: RayCluster, tmp_path: Path, paramio_cli: Cli) -> None:
    path = tmp_path / "m.irpa"
    paramio.convert(str(safetensors_set(tmp_path / "src", tensors=2, elements=20_000, max_shard_size=10**9)), str(path))
    code, local, err = paramio_cli("digest", str(path), "--json")
    assert code == 0, err
    code, ray_out, err = paramio_cli("digest", str(path), "--json", "--engine=ray", f"--address={ray_driver.address}")
    assert code == 0, err
    assert json.loads(ray_out)["files"] == json.loads(local)["files"]
    code, _, err = paramio_cli("digest", str(path), "--write")
    assert code == 0, err
    code, out, err = paramio_cli(
        "verify", str(path), "--digests", "--json", "--engine=ray", f"--address={ray_driver.address}"
    )
    assert code == 0, err
    doc = json.loads(out)
    assert doc["files"][0]["digests"]["ok"] and doc["files"][0]["digests"]["checked"] == 4


def test_a_bad_engine_or_address_is_a_usage_error(paramio_cli: Cli, tmp_path: Path) -> None:
    src = tmp_path / "m.irpa"
    paramio.save_archive_file({"w": b"\0" * 8}, str(src))  # type: ignore[dict-item]
    code, _, err = paramio_cli("convert", f"--parameters={src}", f"--output={tmp_path / 'o.irpa'}", "--engine=spark")
    assert code == 2 and "--engine=spark: expected one of local, ray" in err
    code, _, err = paramio_cli("convert", str(src), "--output=-", "--engine=ray")
    assert code == 2 and "--engine=ray writes files or objects; --output=- is a stream" in err
    code, _, err = paramio_cli("digest", str(src), "--address=auto")
    assert code == 2 and "--address=auto is for --engine=ray" in err
    code, _, err = paramio_cli("verify", str(src), "--engine=ray")
    assert code == 2 and "give --digests too" in err
    code, _, err = paramio_cli("convert", str(src), f"--output={tmp_path / 'o.irpa'}", "--memory_bound=64MiB")
    assert code == 2 and "bounds the tasks of --engine=ray" in err
    code, _, err = paramio_cli(
        "convert", str(src), f"--output={tmp_path / 'o.irpa'}", "--engine=ray", "--address=auto", "--memory_bound=1MiB"
    )
    assert code != 0 and "memory_bound=1048576: a task needs at least" in err
    assert not (tmp_path / "o.irpa").exists()
