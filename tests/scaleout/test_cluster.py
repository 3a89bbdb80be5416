"""The local Ray cluster the scale-out tests run on (conftest.py): two nodes, one CPU each, tasks
placed on both, worker processes found by id, and a cluster of our own stopped without touching
another one running beside it."""

from __future__ import annotations

import os
import time

import pytest
from ray_cluster import RayCluster, run_ray_cluster

pytestmark = pytest.mark.slow


def test_two_nodes_run_tasks_and_their_workers_are_ours(ray_driver: RayCluster) -> None:
    import ray

    alive = [n for n in ray.nodes() if n["Alive"]]
    assert len(alive) == 2
    assert ray.cluster_resources()["CPU"] == 2

    @ray.remote(num_cpus=1)
    def where() -> tuple[str, int]:
        time.sleep(0.5)  # long enough that the two run at once, one per node
        return ray.get_runtime_context().get_node_id(), os.getpid()

    placed = ray.get([where.remote() for _ in range(2)])
    assert {node for node, _ in placed} == {n["NodeID"] for n in alive}
    workers = ray_driver.worker_ids()
    assert {pid for _, pid in placed} <= set(workers)
    assert os.getpid() not in ray_driver.process_ids()


def test_stopping_a_cluster_leaves_another_running(ray_driver: RayCluster) -> None:
    import ray

    before = set(ray_driver.process_ids())
    with run_ray_cluster(num_nodes=1) as other:
        theirs = set(other.process_ids())
        assert theirs and not theirs & before
        assert other.address != ray_driver.address
    assert not any(os.path.exists(f"/proc/{pid}") and _alive(pid) for pid in theirs)
    assert set(ray_driver.process_ids()) >= {p for p in before if _alive(p)}

    @ray.remote
    def one() -> int:
        return 1

    assert ray.get(one.remote()) == 1  # ours still answers


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
