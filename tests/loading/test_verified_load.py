"""`load(..., verify=True)` hashes each tensor in the worker that reads it, as its bytes land:
every byte is read from the file once, each tensor front to back by one worker, no tensor is
copied back from its target to be hashed, and a damaged tensor is named (entry, file, bytes)
before it is handed over, whichever way it was read."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from loadhelp import StagedNumpy, loader_threads

import paramio
from paramio.core.errors import IntegrityError
from paramio.formats.digests import DIGESTS_KEY, DigestRecord, digest_bytes, sidecar_path
from paramio.loading import Slot, astream, load_async, stream
from paramio.sources import ByteSource, FileSource, register_scheme
from paramio.sources.names import relative_parts

pytest.importorskip("blake3")

BUDGET = "1MiB"  # with 2 workers: 256 KiB chunks, so the big tensors are many chunks each


def arrays() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(3)
    return {
        "a": rng.standard_normal(100).astype(np.float32),
        "big": rng.standard_normal(800_000).astype(np.float32),  # 3.2 MB: 13 chunks
        "mid": rng.standard_normal((300, 1000)).astype(np.float32),  # 1.2 MB
        "big2": rng.standard_normal(700_000).astype(np.float32),
        "c": np.arange(7, dtype=np.int16),
        "empty": np.zeros((0, 3), np.float32),
    }


def write(folder: Path, digests: object = "blake3") -> tuple[Path, dict[str, np.ndarray]]:
    a = arrays()
    index = paramio.ParameterIndex()
    for k, v in a.items():
        index.add_array(k, v)
    path = folder / "m.safetensors"
    paramio.write_path(path, index.values(), digests=digests)
    return path, a


def flip(path: Path, at: int) -> None:
    data = bytearray(path.read_bytes())
    data[at] ^= 0x10
    path.write_bytes(bytes(data))


# -- every byte once, each tensor by one worker in order -----------------------------------

READS: list[tuple[int, int, int]] = []  # (offset, length, thread) of every read


class CountingSource(ByteSource):
    """A local file that records every read asked of it (as `tests/remote/test_counted_opens.py`)."""

    def __init__(self, path: str) -> None:
        self._file = FileSource(path)
        self.path_ = path
        self.name = "vcount://" + path

    @property
    def size(self) -> int:
        return self._file.size

    def view(self, offset: int, length: int) -> memoryview:
        READS.append((offset, length, threading.get_ident()))
        return memoryview(self._file.read(offset, length))

    def readinto(self, offset: int, out: memoryview | bytearray) -> int:
        READS.append((offset, len(out), threading.get_ident()))
        return self._file.readinto(offset, out)

    def sibling(self, name: str) -> CountingSource:
        folder = self.path_.rpartition("/")[0]
        return CountingSource("/".join([folder, *relative_parts(name, base=self.name)]))


class RemoteLike(CountingSource):
    """The same, seen as a remote object (reads worth merging: `ByteSource.max_gap` > 0)."""

    max_gap = 1 << 20


@pytest.fixture
def counting() -> Iterator[None]:
    register_scheme("vcount", lambda url, **options: CountingSource(url.removeprefix("vcount://")))
    register_scheme("vremote", lambda url, **options: RemoteLike(url.removeprefix("vremote://")))
    READS.clear()
    yield


def test_each_byte_is_read_once_and_each_tensor_front_to_back_by_one_worker(tmp_path: Path, counting: None) -> None:
    path, a = write(tmp_path)
    url = f"vcount://{path}"
    index = paramio.ParameterIndex.open(url)
    READS.clear()  # the header's reads
    got = paramio.load(index, verify=True, budget=BUDGET, concurrency=2)
    assert got.summary.chunk == 256 << 10
    for k, v in a.items():
        assert np.array_equal(got[k], v)
    by_entry: dict[str, list[tuple[int, int, int]]] = {}
    for offset, length, thread in READS:
        (key,) = [k for k, e in index.items() if e.offset <= offset and offset + length <= e.offset + e.length]
        by_entry.setdefault(key, []).append((offset, length, thread))
    for key, e in index.items():
        reads = by_entry.get(key, [])
        # Front to back, no byte twice, none missed ...
        assert [off for off, _, _ in reads] == sorted(off for off, _, _ in reads)
        pos = e.offset
        for off, n, _ in reads:
            assert off == pos, (key, reads)
            pos += n
        assert pos == e.offset + e.length
        # ... by one worker, so its hasher is fed in order as the bytes land.
        assert len({t for _, _, t in reads}) <= 1, key
    assert sum(n for _, n, _ in READS) == sum(e.length for e in index.values())
    assert len(by_entry["big"]) > 1 and len(by_entry["big2"]) > 1


def test_a_remote_tensor_keeps_its_pieces_in_parallel_and_is_checked(tmp_path: Path, counting: None) -> None:
    path, a = write(tmp_path)
    index = paramio.ParameterIndex.open(f"vremote://{path}")
    READS.clear()
    got = paramio.load(index, verify=True, budget=BUDGET, concurrency=2)
    assert all(np.array_equal(got[k], v) for k, v in a.items())
    big = index["big"]
    pieces = [(off, n) for off, n, _ in READS if big.offset <= off < big.offset + big.length]
    assert len(pieces) == -(-big.length // got.summary.chunk)  # chunk-sized pieces, any worker
    assert sum(n for _, n, _ in READS) == sum(e.length for e in index.values())
    flip(path, big.offset + big.length - 1)
    with pytest.raises(IntegrityError, match="entry 'big'"):
        paramio.load(paramio.ParameterIndex.open(f"vremote://{path}"), verify=True, budget=BUDGET)


@pytest.mark.parametrize("staged", [False, True])
def test_read_ahead_hints_run_a_chunk_ahead_not_a_whole_tensor(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, staged: bool
) -> None:
    from paramio.loading.io import IoPlan

    path, _ = write(tmp_path)
    hints: list[tuple[str, int, int]] = []
    real = IoPlan.will_need

    def spy(self: IoPlan, entry: paramio.ParameterEntry, offset: int, length: int) -> None:
        hints.append((entry.key, offset, length))
        real(self, entry, offset, length)

    monkeypatch.setattr(IoPlan, "will_need", spy)
    into = StagedNumpy() if staged else "numpy"
    got = paramio.load(path, verify=True, budget=BUDGET, concurrency=2, into=into)
    chunk = got.summary.chunk
    index = paramio.ParameterIndex.open(path)
    for key in ("big", "mid", "big2"):
        mine = sorted((off, n) for k, off, n in hints if k == key)
        assert all(n <= chunk for _, n in mine), mine
        assert mine[0][0] == 0 and all(a + n == b for (a, n), (b, _) in zip(mine, mine[1:], strict=False))
        assert sum(n for _, n in mine) == index[key].length


@pytest.mark.parametrize("sync", [True, False])
def test_progress_moves_while_one_worker_reads_a_large_tensor(tmp_path: Path, sync: bool) -> None:
    path, a = write(tmp_path)
    gate = threading.Event()  # uploads wait on it: the load cannot end before a partial report
    seen: list[int] = []
    waiting: list[int] = []  # uploads waiting on the gate when progress was first told

    def progress(n: int) -> None:
        seen.append(n)
        if not gate.is_set():
            waiting.append(target.uploading)
            gate.set()

    target = StagedNumpy(gate)
    if sync:
        got = paramio.load(path, verify=True, budget=BUDGET, concurrency=1, into=target, progress=progress)
    else:
        got = asyncio.run(load_async(path, verify=True, budget=BUDGET, concurrency=1, into=target, progress=progress))
    assert waiting == [1], seen  # bytes were reported while their task was still running
    assert sum(seen) == got.summary.bytes == sum(v.nbytes for v in a.values())
    assert all(np.array_equal(got[k], v) for k, v in a.items())


# -- a damaged tensor is named before it is handed over, however it was read --------------


@pytest.mark.parametrize("io", ["pread", "direct", "mmap"])
def test_damage_in_a_late_chunk_is_named_for_each_io(tmp_path: Path, io: str) -> None:
    path, _ = write(tmp_path)
    e = paramio.ParameterIndex.open(path)["big"]
    flip(path, e.offset + e.length - 3)  # the tensor's last chunk
    seen = []
    with pytest.raises(IntegrityError) as info:
        with stream(path, verify=True, budget=BUDGET, concurrency=2, io=io) as s:
            for key, _ in s:
                seen.append(key)
    assert info.value.key == "big" and str(path) in str(info.value)
    assert f"bytes {e.offset}..{e.offset + e.length}" in str(info.value)
    assert "big" not in seen
    assert not loader_threads()


def test_staged_target_damage_is_caught_before_upload_completes(tmp_path: Path) -> None:
    path, _ = write(tmp_path)
    e = paramio.ParameterIndex.open(path)["mid"]
    flip(path, e.offset + 5)
    target = StagedNumpy()
    with pytest.raises(IntegrityError) as info:
        paramio.load(path, verify=True, budget=BUDGET, concurrency=2, into=target)
    assert info.value.key == "mid"
    assert ("finish", "mid") not in target.events  # never handed over


class DeviceArray:
    """An array on a 'device': reading it back to the host is counted."""

    def __init__(self, array: object) -> None:
        self.array = array
        self.readbacks = 0

    def to_host(self) -> object:
        self.readbacks += 1
        return self.array


class DeviceTarget(StagedNumpy):
    name = "device"

    def finish(self, slot: Slot) -> object:
        return DeviceArray(super().finish(slot))


def test_a_device_target_is_hashed_from_the_staged_bytes_not_read_back(tmp_path: Path) -> None:
    path, a = write(tmp_path)
    got = paramio.load(path, verify=True, budget=BUDGET, concurrency=2, into=DeviceTarget())
    for k, v in a.items():
        arr = got[k]
        assert isinstance(arr, DeviceArray) and np.array_equal(arr.array, v)  # type: ignore[arg-type]
    # Every tensor with bytes was hashed as it was staged; the empty one, with nothing to read,
    # is checked as it is delivered.
    assert {k: arr.readbacks for k, arr in got.items() if arr.readbacks} == {"empty": 1}  # type: ignore[attr-defined]


def test_stream_hands_over_the_tensors_before_the_damaged_one(tmp_path: Path) -> None:
    path, a = write(tmp_path)
    e = paramio.ParameterIndex.open(path)["big2"]
    flip(path, e.offset)
    seen = []
    with pytest.raises(IntegrityError, match="entry 'big2'"):
        for key, arr in stream(path, verify=True, budget=BUDGET, concurrency=1):
            assert np.array_equal(arr, a[key])  # type: ignore[arg-type]
            seen.append(key)
    assert seen == ["a", "big", "mid"]  # one worker: in order, each checked as it lands


def test_async_twins_check_too(tmp_path: Path) -> None:
    path, _ = write(tmp_path)
    e = paramio.ParameterIndex.open(path)["big"]
    flip(path, e.offset + e.length // 2)

    async def loaded() -> None:
        await load_async(path, verify=True, budget=BUDGET, concurrency=2)

    async def streamed() -> list[str]:
        keys = []
        async with contextlib.aclosing(astream(path, verify=True, budget=BUDGET)) as it:
            async for key, _ in it:
                keys.append(key)
        return keys

    with pytest.raises(IntegrityError, match="entry 'big'"):
        asyncio.run(loaded())
    with pytest.raises(IntegrityError, match="entry 'big'"):
        asyncio.run(streamed())


def _sidecar(path: Path, entries: dict[str, str]) -> None:
    record = DigestRecord("xxh3", entries)
    Path(sidecar_path(path)).write_text(json.dumps({DIGESTS_KEY: record.to_json()}))


def test_a_wrong_stored_digest_of_an_empty_or_large_tensor_is_named(tmp_path: Path) -> None:
    path, a = write(tmp_path, digests=False)
    good = {k: digest_bytes(v.tobytes(), "xxh3") for k, v in a.items()}
    _sidecar(path, good)
    got = paramio.load(path, verify=True, budget=BUDGET)
    assert list(got) == list(a)
    for victim in ("empty", "big"):
        _sidecar(path, {**good, victim: "0" * 32})
        with pytest.raises(IntegrityError) as info:
            paramio.load(path, verify=True, budget=BUDGET)
        assert info.value.key == victim and info.value.expected == "0" * 32 and info.value.got == good[victim]


def test_a_tensor_larger_than_the_budget_streams_through_it(tmp_path: Path) -> None:
    path, a = write(tmp_path)
    got = paramio.load(path, verify=True, budget=BUDGET, concurrency=2)
    assert got.summary.peak_in_flight <= 1 << 20 < a["big"].nbytes
    assert np.array_equal(got["big"], a["big"])


def test_leaving_a_verified_stream_early_stops_every_worker(tmp_path: Path) -> None:
    path, a = write(tmp_path)
    with stream(path, verify=True, budget=BUDGET, concurrency=2) as s:
        for key, arr in s:
            assert np.array_equal(arr, a[key])  # type: ignore[arg-type]
            break  # the big tensors are still being read and hashed
    assert s.job.reading == 0 and not loader_threads()


def test_a_stream_left_open_does_not_hang_the_interpreter_at_exit(tmp_path: Path) -> None:
    import subprocess
    import sys

    path, _ = write(tmp_path)
    code = (
        "from paramio.loading import stream\n"
        f"s = stream({str(path)!r}, verify=True, budget='1MiB', concurrency=2)\n"
        "next(iter(s))\n"
        "raise SystemExit(3)  # the stream is never closed: the garbage collector does it at exit\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert run.returncode == 3, run.stderr
