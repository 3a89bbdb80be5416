"""Loads and writes share one bounded worker pool (issue 23, item 4).

Before: each ``concurrency`` setting started its own pool for good (529 threads after loads with
1..32), writes kept a second pool of non-daemon `ThreadPoolExecutor` threads (which the
interpreter joins at exit: a Ctrl-C at the wrong moment hung it), and cancelling an async load
blocked the event loop until the reads in flight were done.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from loadhelp import StagedNumpy, loader_threads

from paramio import ParameterIndex
from paramio.loading import load
from paramio.loading.engine import LoadJob, run_async
from paramio.sources.workers import THREAD_PREFIX, pool

SRC = str(Path(__file__).resolve().parents[2] / "src")


def _workers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith(THREAD_PREFIX)]


def _settled_count(n: int) -> int:
    deadline = time.monotonic() + 10
    while len(_workers()) > n and time.monotonic() < deadline:
        time.sleep(0.01)
    return len(_workers())


def test_loads_of_every_concurrency_leave_one_pool(st_file: tuple[Path, dict[str, np.ndarray]]) -> None:
    path, a = st_file
    index = ParameterIndex.open(path)
    others = {t for t in threading.enumerate() if not t.name.startswith(THREAD_PREFIX)}
    for c in range(1, 33):
        got = load(index, budget="64KiB", concurrency=c)
        assert got["embed"].tobytes() == a["embed"].tobytes()
    grown = {t for t in threading.enumerate() if not t.name.startswith(THREAD_PREFIX)} - others
    assert not grown  # no thread of another kind either
    assert _settled_count(32) <= 32  # the largest pool, not the sum of all (528)
    load(index, budget="64KiB", concurrency=2)
    assert _settled_count(2) == 2  # a smaller request retires the rest
    assert pool().threads == 2


def test_a_write_and_a_load_share_the_pool_and_its_threads_are_daemons(tmp_path: Path) -> None:
    import paramio

    data = np.arange((16 << 20) // 4, dtype=np.float32)  # above the pipelining threshold
    src = tmp_path / "a.irpa"
    paramio.save_archive_file({"w": data}, str(src))
    for _ in range(3):
        paramio.write_path(tmp_path / "b.safetensors", ParameterIndex.open(src).values())
        load(tmp_path / "b.safetensors", concurrency=4)
    assert load(tmp_path / "b.safetensors")["w"].tobytes() == data.tobytes()
    named = [t for t in threading.enumerate() if t.name.startswith("paramio")]
    assert all(t.daemon for t in named), [t.name for t in named if not t.daemon]
    assert not [t for t in named if "copy" in t.name]  # no second pool
    assert _settled_count(4) <= 4


def test_cancelling_an_async_load_does_not_block_the_event_loop(st_file: tuple[Path, dict[str, np.ndarray]]) -> None:
    """While the cancelled load waits for its reads in flight, other tasks on the loop run."""
    path, _ = st_file
    gate = threading.Event()
    target = StagedNumpy(gate)
    job = LoadJob(ParameterIndex.open(path).items(), target, budget=64 << 10, concurrency=2)

    async def consume() -> list[str]:
        return [k async for k, _ in run_async(job)]

    async def main() -> tuple[int, float]:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.005)

        task = asyncio.create_task(consume())
        deadline = time.monotonic() + 10
        while target.uploading < 2 and time.monotonic() < deadline:  # both workers mid-piece
            await asyncio.sleep(0.005)
        assert target.uploading == 2
        tick_task = asyncio.create_task(ticker())
        threading.Timer(0.5, gate.set).start()  # the reads in flight end half a second later
        t0 = time.monotonic()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        waited = time.monotonic() - t0
        before = ticks
        tick_task.cancel()
        return before, waited

    ticks, waited = asyncio.run(main())
    assert waited >= 0.4  # the cancelled load did wait for its reads in flight ...
    assert ticks >= 10  # ... without stopping the loop (before: 0 or 1 tick in that half second)
    assert job.reading == 0 and not loader_threads()
    assert job.staging.allocated == 0 and job.budget.held == 0


_BIG = 2 << 30

_WRITE_CTRL_C = """
import signal, sys, threading, time, os
signal.signal(signal.SIGINT, signal.default_int_handler)
import paramio
src, out = sys.argv[1], sys.argv[2]
entries = paramio.ParameterIndex.open(src).values()
print("writing", flush=True)
t0 = time.monotonic()
try:
    paramio.write_path(out, entries)
except KeyboardInterrupt:
    named = [t for t in threading.enumerate() if t.name.startswith("paramio")]
    print("INTERRUPTED", round(time.monotonic() - t0, 1), all(t.daemon for t in named),
          sorted(p for p in os.listdir(os.path.dirname(out)) if p.endswith(".tmp")), flush=True)
"""


@pytest.fixture(scope="module")
def big_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A safetensors file with one 2 GiB tensor, all holes: costs no disk, reads as zeros."""
    path = tmp_path_factory.mktemp("pool") / "big.safetensors"
    header = json.dumps({"w": {"dtype": "U8", "shape": [_BIG], "data_offsets": [0, _BIG]}}).encode()
    header += b" " * (-len(header) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(header)) + header)
        f.truncate(8 + len(header) + _BIG)
    return path


def test_ctrl_c_during_a_library_write_returns_promptly_and_the_process_exits(tmp_path: Path, big_source: Path) -> None:
    out = tmp_path / "out.irpa"
    proc = subprocess.Popen(
        [sys.executable, "-c", _WRITE_CTRL_C, str(big_source), str(out)],
        env={**os.environ, "PYTHONPATH": SRC},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "writing"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # wait until the copy is under way
        temps = [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
        if temps and temps[0].exists() and temps[0].stat().st_blocks * 512 >= 8 << 20:
            break
        time.sleep(0.01)
    else:
        proc.kill()
        pytest.fail(f"the write never started copying: {proc.communicate()[1]!r}")
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    try:
        stdout, stderr = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail("the interrupted process did not exit")
    took = time.monotonic() - sent
    assert proc.returncode == 0, stderr
    words = stdout.strip().splitlines()[-1].split(" ", 3)
    assert words[0] == "INTERRUPTED" and words[2] == "True" and words[3] == "[]", stdout
    assert took < 10, took  # a 2 GiB write takes far longer: the interrupt cut it short
    assert not out.exists()


_LOAD_CTRL_C = """
import signal, sys, time
signal.signal(signal.SIGINT, signal.default_int_handler)
sys.path.insert(0, {here!r})
import paramio
from loadhelp import StagedNumpy

class Slow(StagedNumpy):
    def upload(self, slot, offset, data, owner):
        print("uploading", flush=True)
        time.sleep(0.2)
        super().upload(slot, offset, data, owner)

try:
    paramio.load({path!r}, into=Slow(), budget="8KiB", concurrency=4)
except KeyboardInterrupt:
    print("INTERRUPTED", flush=True)
"""


def test_ctrl_c_during_a_load_returns_promptly_and_the_process_exits(
    st_file: tuple[Path, dict[str, np.ndarray]],
) -> None:
    path, _ = st_file
    code = _LOAD_CTRL_C.format(here=str(Path(__file__).resolve().parent), path=str(path))
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": SRC}
    )
    assert proc.stdout is not None
    # Four workers print at once: two prints may share a line ("uploadinguploading").
    assert "uploading" in proc.stdout.readline()
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    try:
        out, _ = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail("the interrupted process did not exit")
    assert out.strip().splitlines()[-1] == "INTERRUPTED"
    assert proc.returncode == 0
    assert time.monotonic() - sent < 10
