"""A real local Ray cluster for the scale-out tests (issue 28; the fixtures are in conftest.py): a head started by ``ray start --head``
and a second node joining it, one CPU each, in a temporary folder of its own, with free ports, so
that several test sessions (and other people's clusters) can run on one machine at once.

Facts this fixture is built on (Ray 2.60):

- Ray enables token authentication by default; a second node then fails to join with
  ``InvalidAuthToken``. Every process of ours (the nodes, and the driver: this pytest process and
  the ``paramio`` subprocesses the tests start) runs with ``RAY_AUTH_MODE=disabled``
  (`RayCluster.env`).
- ``--node-ip-address=127.0.0.1`` is replaced by Ray with the machine's reachable address
  (``ray._private.services.resolve_ip_for_localhost``: a node must be reachable from the others),
  so the head registers as e.g. ``192.0.2.2``; the address to connect to is read back from the
  head's ``ray_current_cluster`` file rather than assumed.
- Fixed default ports (dashboard 8265, dashboard agent 52365, workers 10002-19999, Ray client
  10001) would collide with another cluster on the machine: each is chosen free or random here.
- A bare ``ray stop`` stops every Ray process on the machine: the teardown ends only the processes
  of this cluster, by id: those whose command line names our temporary folder, and their
  descendants (Ray's workers rename themselves ``ray::...``, so they are found as children).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

RAY = Path(sys.executable).parent / "ray"
#: The object store holds nothing of ours (tasks return small results); Ray's minimum is 75 MiB.
OBJECT_STORE_BYTES = 80 * 1024 * 1024
START_TIMEOUT_S = 120


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ray_env() -> dict[str, str]:
    """The environment every process of a test cluster runs with (nodes, drivers, CLI runs)."""
    env = dict(os.environ)
    env["RAY_AUTH_MODE"] = "disabled"
    env["RAY_USAGE_STATS_ENABLED"] = "0"
    env.pop("RAY_ADDRESS", None)
    return env


def _children() -> dict[int, list[int]]:
    """ppid -> pids, from /proc."""
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        tree.setdefault(ppid, []).append(int(entry))
    return tree


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


@dataclass
class RayCluster:
    """A running local cluster: `address` is what ``ray.init(address=...)`` and
    ``paramio ... --engine=ray --address=`` take."""

    address: str
    temp_dir: Path
    env: dict[str, str]
    num_cpus: int = 2
    logs: list[Path] = field(default_factory=list)

    def process_ids(self) -> list[int]:
        """Every process of this cluster: those naming our folder, and their descendants."""
        roots = [int(p) for p in os.listdir("/proc") if p.isdigit() and str(self.temp_dir) in _cmdline(int(p))]
        tree = _children()
        found: list[int] = []
        stack = list(roots)
        while stack:
            pid = stack.pop()
            if pid in found or pid == os.getpid():
                continue
            found.append(pid)
            stack.extend(tree.get(pid, []))
        return found

    def worker_ids(self) -> list[int]:
        """The Python worker processes of this cluster (``ray::IDLE``, ``ray::<task name>``), not
        its agents."""
        return [
            pid
            for pid in self.process_ids()
            if _cmdline(pid).startswith("ray::") and "Agent" not in _cmdline(pid) and "Dashboard" not in _cmdline(pid)
        ]

    def stop(self) -> None:
        """End this cluster's processes (TERM, then KILL after a grace period), no one else's."""
        pids = self.process_ids()
        for sig, grace in ((signal.SIGTERM, 2.0), (signal.SIGKILL, 5.0)):  # the GCS lingers on TERM
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, sig)
            deadline = time.monotonic() + grace
            while time.monotonic() < deadline:
                pids = [p for p in pids if Path(f"/proc/{p}").exists() and not _is_zombie(p)]
                if not pids:
                    return
                time.sleep(0.1)


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def _client_port() -> list[str]:
    """A free port for the Ray client server (``ray://``), where ``ray[client]`` is installed
    (without it ``ray start`` refuses the flag, and starts no such server)."""
    from ray._private.utils import get_ray_client_dependency_error

    return [] if get_ray_client_dependency_error() is not None else [f"--ray-client-server-port={_free_port()}"]


def _ray_start(args: list[str], env: dict[str, str], what: str) -> None:
    done = subprocess.run([str(RAY), "start", *args], env=env, capture_output=True, text=True, timeout=START_TIMEOUT_S)
    if done.returncode != 0:
        raise RuntimeError(f"ray start ({what}) failed with {done.returncode}:\n{done.stdout}\n{done.stderr}")


@contextlib.contextmanager
def run_ray_cluster(num_nodes: int = 2) -> Iterator[RayCluster]:
    """A head and `num_nodes` - 1 more nodes, one CPU each, stopped (by process id) on exit."""
    # Short: Ray's unix sockets live under it and a socket path has at most 107 bytes.
    temp_dir = Path(tempfile.mkdtemp(prefix="ray-", dir="/tmp"))
    env = ray_env()
    common = [
        "--num-cpus=1",
        f"--temp-dir={temp_dir}",
        f"--object-store-memory={OBJECT_STORE_BYTES}",
        "--min-worker-port=0",
        "--max-worker-port=0",
        "--dashboard-agent-listen-port=0",
        "--metrics-export-port=0",
        "--runtime-env-agent-port=0",
        "--disable-usage-stats",
    ]
    cluster = RayCluster(address="", temp_dir=temp_dir, env=env, num_cpus=num_nodes)
    try:
        port = _free_port()
        _ray_start(
            [
                "--head",
                "--node-ip-address=127.0.0.1",
                f"--port={port}",
                "--include-dashboard=false",
                f"--dashboard-port={_free_port()}",
                *_client_port(),
                *common,
            ],
            env,
            "head",
        )
        # Ray registers the head under the machine's reachable address, not 127.0.0.1 (see above).
        cluster.address = (temp_dir / "ray_current_cluster").read_text().strip()
        for n in range(1, num_nodes):
            _ray_start([f"--address={cluster.address}", *common], env, f"node {n}")
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(temp_dir, ignore_errors=True)
