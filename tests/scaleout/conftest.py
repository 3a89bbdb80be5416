"""The scale-out tests' fixtures: a real two-node local Ray cluster (`ray_cluster.py` says how it is
started and stopped), and this process as its driver."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ray_cluster import START_TIMEOUT_S, RayCluster, run_ray_cluster  # noqa: E402


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[RayCluster]:
    """A two-node local Ray cluster (2 CPUs), shared by the session's scale-out tests."""
    try:
        import ray  # noqa: F401
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("ray is missing in CI: the test extra must install it (pip install 'paramio[ray]')")
        pytest.skip("ray is not installed (pip install 'paramio[ray]')")
    with run_ray_cluster() as cluster:
        yield cluster


@pytest.fixture(scope="session")
def ray_driver(ray_cluster: RayCluster) -> Iterator[RayCluster]:
    """This process connected to `ray_cluster` as its driver (``ray.init``), once per session,
    with both nodes up."""
    import ray

    saved = {k: os.environ.get(k) for k in ("RAY_AUTH_MODE", "RAY_USAGE_STATS_ENABLED")}
    os.environ.update({k: ray_cluster.env[k] for k in saved})
    ray.init(address=ray_cluster.address, logging_level="ERROR", log_to_driver=False)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while ray.cluster_resources().get("CPU", 0) < ray_cluster.num_cpus:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the cluster has {ray.cluster_resources()} after {START_TIMEOUT_S} s")
            time.sleep(0.2)
        yield ray_cluster
    finally:
        ray.shutdown()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
