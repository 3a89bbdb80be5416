"""The one worker pool (issue 23, item 4): sized by the leases held, daemon threads, shut down at exit."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from paramio.sources.workers import THREAD_PREFIX, WorkerPool

SRC = str(Path(__file__).resolve().parents[2] / "src")


def _alive(prefix: str) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith(prefix + "-")]


def _settle(prefix: str, n: int) -> int:
    """Threads named `prefix` once their number has come down to `n` (retiring takes a moment)."""
    deadline = time.monotonic() + 10
    while len(_alive(prefix)) > n and time.monotonic() < deadline:
        time.sleep(0.01)
    return len(_alive(prefix))


def test_the_pool_follows_the_leases_and_keeps_the_last_size() -> None:
    prefix = "test-pool-follow"
    pool = WorkerPool(prefix=prefix)
    for n in (4, 32, 2):
        with pool.lease(n):
            assert pool.threads == n and len(_alive(prefix)) >= n
        assert _settle(prefix, n) == n  # kept for the next call with the same setting
    with pool.lease(3), pool.lease(5):  # two users at once get their threads together
        assert pool.threads == 8
    assert _settle(prefix, 3) == 3  # the last lease released (the outer one) asked for 3
    pool.shutdown()
    assert _settle(prefix, 0) == 0


def test_the_pool_is_bounded() -> None:
    prefix = "test-pool-bound"
    pool = WorkerPool(limit=4, prefix=prefix)
    done = threading.Event()
    results: list[int] = []
    lock = threading.Lock()

    def task(i: int) -> None:
        with lock:
            results.append(i)
            if len(results) == 20:
                done.set()

    with pool.lease(100):
        assert pool.threads == 4
        for i in range(20):
            pool.submit(lambda i=i: task(i))  # type: ignore[misc]
        assert done.wait(10)
    assert sorted(results) == list(range(20)) and len(_alive(prefix)) <= 4
    pool.shutdown()
    assert _settle(prefix, 0) == 0


def test_call_returns_results_and_errors_and_a_failing_task_keeps_the_worker() -> None:
    pool = WorkerPool(prefix="test-pool-call")
    with pool.lease(1):
        assert pool.call(lambda: 6 * 7).result(10) == 42
        with pytest.raises(ZeroDivisionError):
            pool.call(lambda: 1 // 0).result(10)
        pool.submit(lambda: 1 // 0)  # an escaped error is dropped; the one thread lives on
        assert pool.call(lambda: "still here").result(10) == "still here"
    pool.shutdown()


def test_workers_are_daemons_and_stop_at_exit() -> None:
    """A process that used the pool exits at once, its workers stopped by the exit handler."""
    code = """
import threading
from paramio.sources.workers import THREAD_PREFIX, pool
with pool().lease(8):
    assert pool().call(lambda: 1).result(10) == 1
ws = [t for t in threading.enumerate() if t.name.startswith(THREAD_PREFIX)]
assert len(ws) == 8 and all(t.daemon for t in ws), ws
print("ok", flush=True)
"""
    env = {**os.environ, "PYTHONPATH": SRC}
    t0 = time.monotonic()
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
    assert time.monotonic() - t0 < 30
    assert THREAD_PREFIX == "paramio-worker"


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork here")
def test_a_forked_child_starts_its_own_threads() -> None:
    code = """
import os
from paramio.sources.workers import pool
with pool().lease(2):
    pool().call(lambda: 1).result(10)
pid = os.fork()
if pid == 0:
    with pool().lease(2):
        ok = pool().call(lambda: 5).result(10) == 5
    os._exit(0 if ok else 1)
_, status = os.waitpid(pid, 0)
print(os.waitstatus_to_exitcode(status))
"""
    env = {**os.environ, "PYTHONPATH": SRC}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "0", out.stderr


def test_the_io_loop_runs_blocking_calls_on_the_pool() -> None:
    """``asyncio.to_thread`` on paramio's I/O loop (the cache's file reads, directory listings)
    runs on the one pool; before, asyncio's default executor started a second pool of
    non-daemon threads (``asyncio_0`` ...) that the interpreter joins at exit."""
    import asyncio

    from paramio.sources.aio import run_sync

    async def names() -> list[str]:
        calls = [asyncio.to_thread(lambda: threading.current_thread().name) for _ in range(6)]
        return list(await asyncio.gather(*calls))

    got = run_sync(names())
    assert got and all(n.startswith(THREAD_PREFIX + "-") for n in got), got
    assert not [t.name for t in threading.enumerate() if t.name.startswith("asyncio_")]
