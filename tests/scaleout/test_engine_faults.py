"""Faults on the Ray engine (issue 28): a worker killed mid-task is survived (Ray runs the task
again) and the output is still the one-machine bytes; a task that fails for good (a paramio
`FormatError`) is not retried, fails the job, and leaves no manifest and no member; an I/O
error is retried."""

from __future__ import annotations

import os
import signal
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from ray_cluster import RayCluster
from remote_servers import FaultServer, S3Server, put_object
from safetensors.numpy import save_file
from scaleout_sets import files_in, same_set

import paramio
from paramio.core.errors import FormatError, SourceError
from paramio.scaleout import ProgressSnapshot, Task, TaskContext, TaskResult, run_job
from paramio.scaleout.convert import ConvertJob, convert_job
from paramio.scaleout.member import write_member

pytestmark = pytest.mark.slow

MiB = 1 << 20


@pytest.fixture(scope="module")
def by_value(ray_driver: RayCluster) -> RayCluster:
    """This module's task bodies travel to the workers by value (they cannot import tests/)."""
    import sys

    import ray

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    return ray_driver


def _model(path: Path, tensors: int, mib_each: int) -> Path:
    rng = np.random.default_rng(7)
    save_file({f"t{i}": rng.standard_normal(mib_each * MiB // 4, dtype=np.float32) for i in range(tensors)}, str(path))
    return path


def test_a_worker_killed_mid_task_is_survived_and_the_bytes_are_the_same(
    by_value: RayCluster, fault_server: FaultServer, tmp_path: Path
) -> None:
    model = _model(tmp_path / "m.safetensors", tensors=4, mib_each=4)
    fault_server.files["m.safetensors"] = model.read_bytes()
    fault_server.slow_seconds = 0.4  # every request of the source waits: a task takes seconds
    (tmp_path / "one").mkdir()
    (tmp_path / "ray").mkdir()
    paramio.convert(f"{fault_server.url}/ok/m.safetensors", str(tmp_path / "one" / "m.irpa"), max_shard_size=8 * MiB)

    killed: list[int] = []

    def kill_one(snap: ProgressSnapshot) -> None:
        if killed:
            return
        for worker, done, finished in snap.running.values():
            if done > 0 and not finished:  # mid-copy: kill its process, as a node lost would
                pid = int(worker.rsplit(":", 1)[1])
                assert pid in by_value.worker_ids()  # one of our cluster's workers, found by the id it reported
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
                return

    _, report = convert_job(
        f"{fault_server.url}/slow/m.safetensors",
        str(tmp_path / "ray" / "m.irpa"),
        engine="ray",
        address=by_value.address,
        max_shard_size=8 * MiB,
        memory_bound=24 * MiB,  # 3 MiB reads: each tensor takes several slow requests
        progress=kill_one,
    )
    assert killed, "no task was seen mid-copy"
    assert report.retries >= 1
    assert all(not r.worker.endswith(f":{killed[0]}") for r in report.results)  # finished elsewhere
    same_set(files_in(tmp_path / "one"), files_in(tmp_path / "ray"))  # and nothing of the dead attempt left


def _attempts(task: Task) -> Path:
    return Path(task.args["final"]).parent.parent / "attempts"


def failing_member(task: Task, context: TaskContext) -> TaskResult:
    """The second member fails for good (a corrupt input), every time; the others are written."""
    with open(_attempts(task), "a") as f:
        f.write(task.id + "\n")
    if task.id == "member-00002":
        raise FormatError("bad header (planted by the test)", path=task.args["final"])
    return write_member(task, context)


def flaky_member(task: Task, context: TaskContext) -> TaskResult:
    """The second member's first attempt hits an I/O error; its retry succeeds."""
    log = _attempts(task)
    tries = log.read_text().split().count(task.id) if log.exists() else 0
    with open(log, "a") as f:
        f.write(task.id + "\n")
    if task.id == "member-00002" and tries == 0:
        raise SourceError("connection reset (planted by the test)", path=task.args["final"])
    return write_member(task, context)


def _job(source: Path, output: Path, body: Any) -> ConvertJob:
    from paramio.formats.registry import prepare_write
    from paramio.index.convert import plan_conversion

    plan = plan_conversion(str(source))
    fmt, path, prepared, _ = prepare_write(str(output), plan.entries, attributes=plan.attributes, max_shard_size=MiB)
    job = ConvertJob(
        path,
        prepared.entries,
        format=fmt.name,
        attributes=prepared.attributes,
        writer_options={"max_shard_size": MiB},
        source_options={},
    )
    job.body = body
    return job


def test_a_permanent_error_is_not_retried_and_the_job_leaves_nothing(by_value: RayCluster, tmp_path: Path) -> None:
    model = _model(tmp_path / "m.safetensors", tensors=3, mib_each=1)
    out = tmp_path / "out"
    out.mkdir()
    job = _job(model, out / "m.irpa", failing_member)
    with pytest.raises(FormatError, match="planted by the test"):
        run_job(job, engine="ray", address=by_value.address)
    assert (tmp_path / "attempts").read_text().split().count("member-00002") == 1  # not retried
    assert os.listdir(out) == []  # no manifest, no member, no staging file
    assert job.leftovers() == []


def test_an_io_error_is_retried(by_value: RayCluster, tmp_path: Path) -> None:
    model = _model(tmp_path / "m.safetensors", tensors=3, mib_each=1)
    (tmp_path / "one").mkdir()
    (tmp_path / "out").mkdir()
    paramio.convert(str(model), str(tmp_path / "one" / "m.irpa"), max_shard_size=MiB)
    report = run_job(_job(model, tmp_path / "out" / "m.irpa", flaky_member), engine="ray", address=by_value.address)
    assert (tmp_path / "attempts").read_text().split().count("member-00002") == 2
    assert report.tasks == 3
    same_set(files_in(tmp_path / "one"), files_in(tmp_path / "out"))


def test_the_local_engine_undoes_a_failed_job_too(tmp_path: Path) -> None:
    model = _model(tmp_path / "m.safetensors", tensors=3, mib_each=1)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(FormatError, match="planted by the test"):
        run_job(_job(model, out / "m.irpa", failing_member), engine="local")
    assert os.listdir(out) == []


def failing_upload(task: Task, context: TaskContext) -> TaskResult:
    """The second member fails for good; the others are uploaded."""
    if task.id == "member-00002":
        raise FormatError("bad header (planted by the test)", path=task.args["final"])
    return write_member(task, context)


def test_a_failed_job_on_s3_removes_the_members_it_uploaded(
    by_value: RayCluster, moto: S3Server, tmp_path: Path
) -> None:
    from paramio.formats.registry import prepare_write
    from paramio.index.convert import plan_conversion

    model = _model(tmp_path / "m.safetensors", tensors=3, mib_each=1)
    prefix = f"{uuid.uuid4().hex}/"
    url = f"s3://models/{prefix}m.irpa"
    options = {"config": moto.config(), "client_options": {"allow_http": True}}
    plan = plan_conversion(str(model))
    fmt, path, prepared, _ = prepare_write(url, plan.entries, attributes=plan.attributes, max_shard_size=MiB)
    job = ConvertJob(
        path,
        prepared.entries,
        format=fmt.name,
        attributes=prepared.attributes,
        writer_options={"max_shard_size": MiB},
        source_options=options,
    )
    job.body = failing_upload
    with pytest.raises(FormatError, match="planted by the test") as info:
        run_job(job, engine="ray", address=by_value.address)
    assert "left" not in str(info.value)  # nothing it could not remove
    assert [k for k in moto.keys("models") if k.startswith(prefix)] == []  # members 1 and 3 deleted, no manifest
    assert moto.pending_uploads("models") == []


def test_a_source_replaced_after_planning_fails_the_job(moto: S3Server, tmp_path: Path) -> None:
    """A worker reopens each object by name: if it is another version than the plan read (its
    offsets no longer hold), the job fails for good, writing nothing."""
    model = _model(tmp_path / "m.safetensors", tensors=2, mib_each=1)
    prefix = f"{uuid.uuid4().hex}/"
    put_object(moto, f"models/{prefix}m.safetensors", model.read_bytes())
    replaced: list[bool] = []
    options = {"config": moto.config(), "client_options": {"allow_http": True}}

    def replace_once(snap: ProgressSnapshot) -> None:  # the first task has started, its entries not opened
        if not replaced:
            from paramio.sources.upload import open_upload

            with open_upload(f"s3://models/{prefix}m.safetensors", **options) as up:  # a new version
                up.write(model.read_bytes()[::-1])
            replaced.append(True)

    (tmp_path / "out").mkdir()
    with pytest.raises(FormatError, match="changed since the job was planned"):
        convert_job(
            f"s3://models/{prefix}m.safetensors",
            str(tmp_path / "out" / "m.irpa"),
            engine="local",
            source_options=options,
            progress=replace_once,
        )
    assert replaced and os.listdir(tmp_path / "out") == []
