"""Streaming order, first tensor before the last, cancellation and errors mid-load."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from loadhelp import StagedNumpy, loader_threads

from paramio import ParameterIndex
from paramio.core.errors import SourceError
from paramio.loading import astream, load, load_async, stream
from paramio.loading.engine import LoadJob, run_async


def test_stream_yields_in_order_first_before_last(st_file: tuple[Path, dict[str, np.ndarray]]) -> None:
    path, _ = st_file
    index = ParameterIndex.open(path)
    target = StagedNumpy()
    s = stream(index, into=target, budget="64KiB", concurrency=1)
    first_key, first = next(s)
    assert first_key == index.keys()[0]
    assert s.job.bytes_done < index.total_bytes  # the rest is still to be read
    last_key = index.keys()[-1]
    assert ("upload", last_key) not in target.events  # the last tensor not started yet
    rest = [k for k, _ in s]
    assert [first_key, *rest] == index.keys()  # one worker: exactly the index order
    first_done = target.events.index(("finish", first_key))
    assert first_done < target.events.index(("upload", last_key))
    assert s.summary.first_tensor_seconds is not None
    assert s.summary.first_tensor_seconds <= s.summary.seconds


def test_leaving_a_stream_early_cancels_and_frees(st_file: tuple[Path, dict[str, np.ndarray]]) -> None:
    path, a = st_file
    target = StagedNumpy()
    with stream(path, into=target, budget="8KiB", concurrency=2) as s:
        for _ in s:
            break
    job = s.job
    assert job.reading == 0 and not loader_threads()
    assert job.staging.allocated == 0 and job.budget.held == 0
    assert job.delivered < len(a)
    n = len(target.events)
    time.sleep(0.05)
    assert len(target.events) == n  # nothing still working


def _gated_job(path: Path, gate: threading.Event) -> tuple[LoadJob, StagedNumpy]:
    index = ParameterIndex.open(path)
    target = StagedNumpy(gate)
    return LoadJob(index.items(), target, budget=64 << 10, concurrency=2), target


def test_cancelling_an_async_load_stops_every_read(st_file: tuple[Path, dict[str, np.ndarray]]) -> None:
    path, _ = st_file
    gate = threading.Event()
    job, target = _gated_job(path, gate)

    async def consume() -> list[str]:
        return [k async for k, _ in run_async(job)]

    async def main() -> None:
        task = asyncio.create_task(consume())
        deadline = time.monotonic() + 10
        while target.uploading < 2 and time.monotonic() < deadline:  # both workers mid-piece
            await asyncio.sleep(0.005)
        assert target.uploading == 2
        assert len(loader_threads()) == 2  # the helper sees busy workers (so its "none" below means something)
        threading.Timer(0.1, gate.set).start()  # the copies in flight finish a little later
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert job.reading == 0 and not loader_threads()
    assert job.staging.allocated == 0 and job.budget.held == 0
    assert job.pending  # tasks never started
    uploads = [e for e in target.events if e[0] == "upload"]
    assert len(uploads) == 2
    time.sleep(0.05)
    assert len([e for e in target.events if e[0] == "upload"]) == 2


def test_cancelling_load_async_task(st_file: tuple[Path, dict[str, np.ndarray]]) -> None:
    path, _ = st_file
    gate = threading.Event()
    target = StagedNumpy(gate)

    async def main() -> None:
        task = asyncio.create_task(load_async(path, into=target, budget="64KiB", concurrency=2))
        deadline = time.monotonic() + 10
        while target.uploading < 1 and time.monotonic() < deadline:
            await asyncio.sleep(0.005)
        assert target.uploading >= 1
        threading.Timer(0.1, gate.set).start()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert not loader_threads()
    assert not any(e[0] == "finish" and e[1] == "empty" for e in target.events)


def test_astream_yields_everything(st_file: tuple[Path, dict[str, np.ndarray]]) -> None:
    path, a = st_file

    async def main() -> dict[str, object]:
        return {k: v async for k, v in astream(path, budget="64KiB")}

    got = asyncio.run(main())
    assert {k: v.tobytes() for k, v in got.items()} == {k: v.tobytes() for k, v in a.items()}  # type: ignore[attr-defined]


def _truncate_after_open(path: Path) -> tuple[ParameterIndex, str, int]:
    index = ParameterIndex.open(path)
    last = max(index.values(), key=lambda e: e.offset + e.length)
    cut = last.offset + 10
    os.truncate(path, cut)  # the file shrinks after it was opened: reads find it short
    return index, last.key, cut


def test_error_on_one_tensor_names_file_key_range_and_cancels_the_rest(tmp_path: Path) -> None:
    import safetensors.numpy

    path = tmp_path / "m.safetensors"
    arrays = {f"t{i:02d}": np.full(20_000, i, dtype=np.float32) for i in range(12)}
    safetensors.numpy.save_file(arrays, str(path))
    index, key, cut = _truncate_after_open(path)
    entry = index[key]
    with pytest.raises(SourceError) as info:
        load(index, budget="64KiB", concurrency=2)
    err = info.value
    assert err.path == str(path) and err.key == key
    msg = str(err)
    assert msg.startswith(f"{path}: entry {key!r} at offset ")
    assert "loading bytes 0x" in msg and "of the entry (file range 0x" in msg and "file shrank while reading" in msg
    assert err.offset is not None and cut <= err.offset < entry.offset + entry.length  # where the bytes ran out
    assert not loader_threads()


def test_error_stops_later_tensors(tmp_path: Path) -> None:
    import safetensors.numpy

    path = tmp_path / "m.safetensors"
    safetensors.numpy.save_file({f"t{i:02d}": np.full(4096, i, dtype=np.float32) for i in range(30)}, str(path))
    index = ParameterIndex.open(path)
    first = min(index.values(), key=lambda e: e.offset)
    os.truncate(path, first.offset + 100)  # every tensor but the first few bytes is gone
    target = StagedNumpy()
    with pytest.raises(SourceError, match=first.key):
        load(index, into=target, budget="16KiB", concurrency=1)
    uploads = [e for e in target.events if e[0] == "upload"]
    assert len(uploads) == 0 and not loader_threads()  # the first read failed: nothing after it ran


_CTRL_C = """
import signal, sys, time
signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started with SIGINT ignored
sys.path.insert(0, {here!r})
import paramio
from loadhelp import StagedNumpy, loader_threads

class Slow(StagedNumpy):
    def upload(self, slot, offset, data, owner):
        print("uploading", flush=True)
        time.sleep(0.2)  # ~100 pieces: the load outlasts the signal by far
        super().upload(slot, offset, data, owner)

target = Slow()
s = paramio.loading.stream({path!r}, into=target, budget="8KiB", concurrency=2)
try:
    for _ in s:
        pass
except KeyboardInterrupt:
    job = s.job
    n = len(target.events)
    time.sleep(0.1)
    print("INTERRUPTED", job.reading, len(loader_threads()), job.staging.allocated, job.budget.held,
          len(target.events) == n, job.delivered < len(job.keys))
"""


def test_ctrl_c_stops_every_read(st_file: tuple[Path, dict[str, np.ndarray]]) -> None:
    import signal
    import subprocess
    import sys

    path, _ = st_file
    here = str(Path(__file__).resolve().parent)
    src = str(Path(__file__).resolve().parents[2] / "src")
    code = _CTRL_C.format(here=here, path=str(path))
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env={"PYTHONPATH": src})
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "uploading"  # mid-load
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0
    assert out.strip().splitlines()[-1] == "INTERRUPTED 0 0 0 0 True True"
