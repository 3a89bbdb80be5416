"""``io=`` strategies of the loader (auto, pread, direct, mmap), ``drop_cache``, `prefetch` and
their CLI flags: bytes against NumPy, the summary's ``io`` field, O_DIRECT's fallback on tmpfs,
and the page cache's contents checked with ``mincore`` (`resident_bytes`), never with timings."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

import paramio
from paramio.core.errors import InvalidArgumentError
from paramio.loading.io import IO_MODES
from paramio.loading.pagecache import prefetch
from paramio.sources.file import resident_bytes

Cli = Callable[..., tuple[int, str, str]]
PAGE = os.sysconf("SC_PAGE_SIZE")


def _fs_type(path: Path) -> str:
    best = ("", "?")
    real = str(path.resolve())
    with open("/proc/mounts") as f:
        for line in f:
            mnt, kind = line.split()[1:3]
            if (real == mnt or real.startswith(mnt.rstrip("/") + "/")) and len(mnt) > len(best[0]):
                best = (mnt, kind)
    return best[1]


def _direct_ok(path: Path) -> bool:
    try:
        os.close(os.open(path, os.O_RDONLY | os.O_DIRECT))
    except OSError:
        return False
    return True


def _uncache(path: Path) -> None:
    """Write the file's dirty pages and drop its cached ones (only clean pages can be dropped)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def _warm(path: Path) -> None:
    path.read_bytes()


@pytest.fixture
def big_file(tmp_path: Path) -> tuple[Path, dict[str, np.ndarray]]:
    """A few MiB (several 1 MiB pieces with a small budget), on the test's disk folder."""
    import safetensors.numpy

    rng = np.random.default_rng(3)
    a = {
        "w": rng.standard_normal((512, 1024)).astype(np.float32),  # 2 MiB
        "b": rng.standard_normal(1000).astype(np.float32),
        "h": rng.standard_normal((300, 1024)).astype(np.float16),
    }
    p = tmp_path / "big.safetensors"
    safetensors.numpy.save_file(a, str(p))
    return p, a


def _needs_page_cache(path: Path) -> None:
    if _fs_type(path) in ("tmpfs", "ramfs"):
        pytest.skip("the test folder is on tmpfs: its pages are the file, never dropped")


@pytest.mark.parametrize("io", IO_MODES)
@pytest.mark.parametrize("into", ["numpy", "torch"])
def test_every_strategy_gives_the_same_bytes(st_file: tuple[Path, dict[str, np.ndarray]], io: str, into: str) -> None:
    if into == "torch":
        pytest.importorskip("torch")
    path, want = st_file
    got = paramio.load(path, into=into, io=io, budget="64KiB")
    assert set(got) == set(want)
    for k, a in want.items():
        arr = got[k].numpy() if into == "torch" else got[k]  # type: ignore[attr-defined]
        assert arr.shape == a.shape and arr.dtype == a.dtype
        np.testing.assert_array_equal(arr, a)
    s = got.summary
    expect = {"auto": "pread", "pread": "pread", "mmap": "mmap"}.get(io)
    if io == "direct":
        expect = "direct" if _direct_ok(path) else "pread"
    if io == "mmap":
        # an element whose offset in the file is not a multiple of its size is read instead
        assert s.io in ("mmap", "mmap+pread")
    else:
        assert s.io == expect
    assert s.bytes == sum(a.nbytes for a in want.values()) and s.tensors == len(want)


def test_mmap_arrays_are_copy_on_write_views_of_the_file(big_file: tuple[Path, dict[str, np.ndarray]]) -> None:
    torch = pytest.importorskip("torch")
    path, want = big_file
    mapped = paramio.load(path, into="torch", io="mmap")
    copied = paramio.load(path, into="torch", io="pread")
    assert mapped.summary.io == "mmap" and mapped.summary.io_note == ""
    w = mapped["w"]
    assert isinstance(w, torch.Tensor) and w.dtype == torch.float32
    entry = paramio.ParameterIndex.open(str(path))["w"]
    # Another writer changes the file: the mapped tensor shows it (it is the file's pages) ...
    new = np.full(1024, 7.0, dtype=np.float32)
    fd = os.open(path, os.O_RDWR)
    try:
        os.pwrite(fd, new.tobytes(), entry.offset)
    finally:
        os.close(fd)
    assert torch.equal(w[0], torch.from_numpy(new))
    assert torch.equal(copied["w"][0], torch.from_numpy(want["w"][0]))  # ... a copy does not
    # Writing the tensor changes this process's copy only, never the file.
    w[1] = 3.0
    assert np.array_equal(np.fromfile(path, dtype=np.float32, count=1024, offset=entry.offset + 4096), want["w"][1])
    np.testing.assert_array_equal(mapped["h"].numpy(), want["h"])  # type: ignore[attr-defined]


def _misaligned_file(path: Path) -> dict[str, np.ndarray]:
    """A valid safetensors file whose f32 tensor starts 3 bytes into the data (not a multiple of 4)."""
    a = {"odd": np.arange(3, dtype=np.uint8), "f": np.arange(6, dtype=np.float32)}
    header = {
        "odd": {"dtype": "U8", "shape": [3], "data_offsets": [0, 3]},
        "f": {"dtype": "F32", "shape": [6], "data_offsets": [3, 27]},
    }
    blob = json.dumps(header).encode()
    blob += b" " * (-len(blob) % 8)
    path.write_bytes(len(blob).to_bytes(8, "little") + blob + a["odd"].tobytes() + a["f"].tobytes())
    return a


@pytest.mark.parametrize("into", ["numpy", "torch"])
def test_mmap_copies_what_is_not_element_aligned(tmp_path: Path, into: str) -> None:
    if into == "torch":
        pytest.importorskip("torch")
    path = tmp_path / "odd.safetensors"
    want = _misaligned_file(path)
    got = paramio.load(path, into=into, io="mmap")
    assert got.summary.io == "mmap+pread"
    assert "24 bytes copied" in got.summary.io_note
    for k, a in want.items():
        arr = got[k].numpy() if into == "torch" else got[k]  # type: ignore[attr-defined]
        np.testing.assert_array_equal(arr, a)
        assert arr.ctypes.data % arr.dtype.itemsize == 0


def test_mmap_into_a_target_that_copies(st_file: tuple[Path, dict[str, np.ndarray]]) -> None:
    pytest.importorskip("jax")
    path, want = st_file
    import jax.numpy as jnp

    got = paramio.load(path, into="jax", io="mmap")
    assert got.summary.io == "pread" and "copied" in got.summary.io_note
    for k, a in want.items():
        np.testing.assert_array_equal(np.asarray(got[k]), np.asarray(jnp.asarray(a)))  # JAX's own int64 rule


def test_direct_bypasses_the_page_cache(tmp_path: Path) -> None:
    import safetensors.numpy

    # The kernel reads around the mapped header asynchronously (read_ahead_kb, 8 MiB here), so
    # only the file's last quarter, far past that, is checked.
    want = {"w": np.random.default_rng(1).standard_normal((48, 1 << 18)).astype(np.float32)}  # 48 MiB
    path = tmp_path / "direct.safetensors"
    safetensors.numpy.save_file(want, str(path))
    _needs_page_cache(path)
    if not _direct_ok(path):
        pytest.skip("this filesystem refuses O_DIRECT")
    size = os.path.getsize(path)
    tail = (size - size // 4) // PAGE * PAGE
    _uncache(path)
    index = paramio.ParameterIndex.open(str(path))
    got = paramio.load(index, io="direct", budget="4MiB")
    assert got.summary.io == "direct"
    np.testing.assert_array_equal(got["w"], want["w"])
    assert resident_bytes(path, tail) == 0  # not one page of these went through the cache
    paramio.load(index, io="pread", budget="4MiB")
    assert resident_bytes(path, tail) == size - tail


def test_direct_falls_back_where_the_filesystem_refuses(
    st_file: tuple[Path, dict[str, np.ndarray]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A filesystem that refuses O_DIRECT at open (EINVAL, as tmpfs before Linux 6.6, FUSE
    without direct_io): pread instead, and the summary says why."""
    path, want = st_file
    real_open = os.open

    def refusing(name: object, flags: int, *args: object, **kw: object) -> int:
        if flags & os.O_DIRECT:
            raise OSError(22, "Invalid argument")
        return real_open(name, flags, *args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "open", refusing)
    got = paramio.load(path, io="direct")
    assert got.summary.io == "pread"
    assert got.summary.io_note == "O_DIRECT refused: Invalid argument; read with pread instead"
    for k, a in want.items():
        np.testing.assert_array_equal(got[k], a)


def test_direct_on_tmpfs(tmp_path: Path) -> None:
    """tmpfs: refused before Linux 6.6, accepted (and served from memory) since; either way the
    bytes are right and the summary says which it was."""
    shm = Path("/dev/shm")
    if not shm.is_dir() or _fs_type(shm) != "tmpfs":
        pytest.skip("no tmpfs at /dev/shm")
    import safetensors.numpy

    want = {"w": np.arange(1000, dtype=np.float32), "n": np.arange(7, dtype=np.int16)}
    path = shm / f"paramio-test-{os.getpid()}-{tmp_path.name}.safetensors"
    safetensors.numpy.save_file(want, str(path))
    try:
        got = paramio.load(path, io="direct")
        if _direct_ok(path):
            assert got.summary.io == "direct" and got.summary.io_note == ""
        else:
            assert got.summary.io == "pread" and "O_DIRECT" in got.summary.io_note
        for k, a in want.items():
            np.testing.assert_array_equal(got[k], a)
    finally:
        path.unlink()


def test_direct_reads_spans_at_any_offset(tmp_path: Path) -> None:
    """Odd offsets and lengths across the bounce buffer's edges, and the file's unaligned end."""
    from paramio.sources.file import DirectReader

    data = np.random.default_rng(5).integers(0, 255, size=3 * 4096 + 123, dtype=np.uint8).tobytes()
    path = tmp_path / "raw.bin"
    path.write_bytes(data)
    if not _direct_ok(path):
        pytest.skip("this filesystem refuses O_DIRECT")
    r = DirectReader(str(path), len(data), buffer_bytes=8192)
    try:
        for off, n in [(0, 1), (1, 4095), (4095, 2), (100, 9000), (5000, len(data) - 5000), (0, len(data))]:
            out = bytearray(n)
            assert r.readinto(off, out) == n
            assert bytes(out) == data[off : off + n], (off, n)
        with pytest.raises(paramio.core.errors.SourceError, match="shrank"):
            r.readinto(len(data) - 10, bytearray(20))
    finally:
        r.close()


def test_drop_cache_leaves_no_pages(big_file: tuple[Path, dict[str, np.ndarray]]) -> None:
    path, want = big_file
    _needs_page_cache(path)
    _uncache(path)
    _warm(path)
    size = os.path.getsize(path)
    assert resident_bytes(path) == size
    kept = paramio.load(path, budget="1MiB")
    assert resident_bytes(path) == size  # without drop_cache the pages stay
    index = paramio.ParameterIndex.open(str(path))
    got = paramio.load(index, budget="1MiB", drop_cache=True)
    # Only the header's pages stay: the open index maps them (the kernel drops no mapped page).
    assert resident_bytes(path) <= 64 << 10
    assert resident_bytes(path, 128 << 10) == 0
    for k, a in want.items():
        np.testing.assert_array_equal(got[k], a)
        np.testing.assert_array_equal(kept[k], a)
    assert got.summary.io == "pread"


def test_bad_choices(st_file: tuple[Path, dict[str, np.ndarray]]) -> None:
    path, _ = st_file
    with pytest.raises(InvalidArgumentError, match="io='fast'"):
        paramio.load(path, io="fast")
    with pytest.raises(InvalidArgumentError, match="drop_cache"):
        paramio.load(path, io="mmap", drop_cache=True)
    with pytest.raises(InvalidArgumentError, match="io='fast'"):
        paramio.loading.stream(path, io="fast")


def test_in_memory_entries_say_what_they_used() -> None:
    from paramio.core.entry import ParameterEntry
    from paramio.sources.memory import MemorySource

    buf = np.arange(64, dtype=np.float32)
    src = MemorySource(buf.tobytes())
    entries = [ParameterEntry.data("x", src, 0, 256)]
    got = paramio.load(entries, io="direct")
    assert got.summary.io == "memory" and "local files" in got.summary.io_note
    np.testing.assert_array_equal(np.frombuffer(got["x"], dtype=np.float32), buf)  # type: ignore[arg-type]


def test_async_and_stream_take_io(st_file: tuple[Path, dict[str, np.ndarray]]) -> None:
    path, want = st_file
    got = asyncio.run(paramio.loading.load_async(path, io="mmap"))
    assert got.summary.io in ("mmap", "mmap+pread")
    for k, a in want.items():
        np.testing.assert_array_equal(got[k], a)

    async def collect() -> dict[str, object]:
        return {k: v async for k, v in paramio.loading.astream(path, io="pread", drop_cache=True)}

    assert set(asyncio.run(collect())) == set(want)
    with paramio.loading.stream(path, io="pread") as s:
        assert {k for k, _ in s} == set(want)
    assert s.summary.io == "pread"


def test_prefetch_within_budget(big_file: tuple[Path, dict[str, np.ndarray]]) -> None:
    path, _ = big_file
    _needs_page_cache(path)
    _uncache(path)
    size = os.path.getsize(path)
    r = prefetch(path, budget="1MiB")
    assert r.resident_before == 0 and r.wanted == 1 << 20 and r.size == size
    assert r.resident_after == resident_bytes(path)
    assert 1 << 20 <= r.resident_after <= (1 << 20) + PAGE  # no read-ahead past the budget
    assert resident_bytes(path, 0, 1 << 20) == 1 << 20  # and it is the file's start
    whole = prefetch(path)
    assert whole.resident_before == r.resident_after and whole.resident_after == size
    with pytest.raises(InvalidArgumentError):
        prefetch(path, budget="0")


def test_cli_io_flags(paramio_cli: Cli, st_file: tuple[Path, dict[str, np.ndarray]]) -> None:
    path, want = st_file
    for io in IO_MODES:
        code, out, err = paramio_cli("load", f"--parameters={path}", f"--io={io}", "--json")
        assert code == 0 and err == "", err
        doc = json.loads(out)
        assert doc["tensors"] == len(want)
        assert doc["io"] == ("pread" if io == "auto" else doc["io"])
        assert doc["io"].split("+")[0] in ("pread", "direct", "mmap")
    code, out, _ = paramio_cli("load", f"--parameters={path}", "--io=pread", "--drop-cache")
    assert code == 0 and out.rstrip().endswith("io: pread)")
    code, _, err = paramio_cli("load", f"--parameters={path}", "--io=fast")
    assert code == 2 and "--io=fast: expected one of auto, mmap, pread, direct" in err
    code, _, err = paramio_cli("load", f"--parameters={path}", "--io=mmap", "--drop_cache")
    assert code == 2 and "--drop_cache with --io=mmap" in err


def test_cli_prefetch(paramio_cli: Cli, big_file: tuple[Path, dict[str, np.ndarray]]) -> None:
    path, _ = big_file
    _needs_page_cache(path)
    _uncache(path)
    code, out, err = paramio_cli("prefetch", str(path), "--budget=1MiB", "--json")
    assert code == 0 and err == ""
    doc = json.loads(out)
    assert doc["version"] == 1 and len(doc["files"]) == 1
    doc = doc["files"][0]
    assert doc["resident_before"] == 0 and doc["wanted"] == 1 << 20 and doc["resident_after"] >= 1 << 20
    code, out, _ = paramio_cli("prefetch", str(path))
    assert code == 0 and f"{os.path.getsize(path)} of {os.path.getsize(path)} bytes in the page cache" in out
    assert paramio_cli("prefetch")[0] == 2
    code, _, err = paramio_cli("prefetch", "s3://bucket/model.safetensors")
    assert code == 2 and "local files" in err
    code, _, err = paramio_cli("prefetch", str(path), "--budget=lots")
    assert code == 2 and "--budget" in err
    code, _, err = paramio_cli("prefetch", str(path.with_name("missing.bin")))
    assert code == 1 and "missing.bin" in err


@pytest.mark.parametrize("into", ["numpy", "torch"])
def test_direct_reads_large_tensors_in_place(tmp_path: Path, into: str) -> None:
    """Tensors of 1 MiB or more get memory whose page offset equals their file offset's, and
    O_DIRECT lands in it (no bounce buffer); pieces of a tensor larger than the budget's chunk
    too, and the tensor's neighbours keep their bytes."""
    if into == "torch":
        pytest.importorskip("torch")
    import safetensors.numpy

    rng = np.random.default_rng(9)
    want = {
        "a": rng.standard_normal(3).astype(np.float32),  # shifts the next one off a page boundary
        "big": rng.standard_normal((3, 700_001)).astype(np.float32),  # 8.4 MiB: several pieces
        "c": rng.standard_normal((1 << 19) + 3).astype(np.float16),  # 1 MiB + 6 bytes, ends mid-page
    }
    path = tmp_path / "inplace.safetensors"
    safetensors.numpy.save_file(want, str(path))
    if not _direct_ok(path):
        pytest.skip("this filesystem refuses O_DIRECT")
    index = paramio.ParameterIndex.open(str(path))
    got = paramio.load(index, into=into, io="direct", budget="2MiB")
    assert got.summary.io == "direct"
    for k, a in want.items():
        arr = got[k].numpy() if into == "torch" else got[k]  # type: ignore[attr-defined]
        np.testing.assert_array_equal(arr, a)
        if a.nbytes >= 1 << 20:  # placed for in-place reads
            assert arr.ctypes.data % 4096 == index[k].offset % 4096


def test_read_in_place_at_any_offset(tmp_path: Path) -> None:
    from paramio.loading.hostmem import direct_bytes
    from paramio.sources.file import DirectReader

    data = np.random.default_rng(4).integers(0, 255, size=5 * 4096 + 77, dtype=np.uint8).tobytes()
    path = tmp_path / "raw.bin"
    path.write_bytes(data)
    if not _direct_ok(path):
        pytest.skip("this filesystem refuses O_DIRECT")
    r = DirectReader(str(path), len(data))
    try:
        for off, n in [(0, 4096), (13, 5000), (4095, 1), (8200, len(data) - 8200)]:
            flat, padded = direct_bytes(n, off % 4096)
            r.read_in_place(off, memoryview(padded), off % 4096, n)  # type: ignore[arg-type]
            assert flat.tobytes() == data[off : off + n], (off, n)
        flat, padded = direct_bytes(100, 5)
        with pytest.raises(ValueError, match="place in a page"):
            r.read_in_place(6, memoryview(padded), 5, 100)  # type: ignore[arg-type]
    finally:
        r.close()


def test_auto_reads_a_cold_file_directly_and_a_warm_one_through_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import safetensors.numpy

    from paramio.loading import io as loading_io

    # A 48 MiB file stands for a model; opening it reads its header's pages and the kernel's
    # read-around (8 MiB here), so "cold" is judged at half cached rather than a tenth.
    monkeypatch.setattr(loading_io, "AUTO_DIRECT_MIN", 1 << 20)
    monkeypatch.setattr(loading_io, "COLD_SHARE", 0.5)
    want = {"w": np.random.default_rng(2).standard_normal((48, 1 << 18)).astype(np.float32)}
    path = tmp_path / "auto.safetensors"
    safetensors.numpy.save_file(want, str(path))
    _needs_page_cache(path)
    if not _direct_ok(path):
        pytest.skip("this filesystem refuses O_DIRECT")
    _warm(path)
    warm = paramio.load(path, io="auto")
    assert warm.summary.io == "pread"
    _uncache(path)
    cold = paramio.load(path, io="auto")
    assert cold.summary.io == "direct"
    np.testing.assert_array_equal(cold["w"], want["w"])
    np.testing.assert_array_equal(warm["w"], want["w"])


def test_direct_reads_keep_more_reads_in_flight_than_cores(tmp_path: Path) -> None:
    """A thread waiting on an O_DIRECT read uses no CPU: without a `concurrency`, a direct load
    takes `DIRECT_CONCURRENCY` workers whatever the core count, a pread one a worker per core;
    a `concurrency` given is kept."""
    import safetensors.numpy

    from paramio.loading.engine import DIRECT_CONCURRENCY

    want = {"w": np.random.default_rng(4).standard_normal((8, 1 << 18)).astype(np.float32)}  # 8 MiB
    path = tmp_path / "deep.safetensors"
    safetensors.numpy.save_file(want, str(path))
    if not _direct_ok(path):
        pytest.skip("this filesystem refuses O_DIRECT")
    direct = paramio.load(path, io="direct", budget="4MiB")
    assert direct.summary.io == "direct"
    assert direct.summary.concurrency >= DIRECT_CONCURRENCY
    assert direct.summary.chunk * 2 * direct.summary.concurrency <= 4 << 20 or direct.summary.chunk <= 64 << 10
    np.testing.assert_array_equal(direct["w"], want["w"])
    pread = paramio.load(path, io="pread")
    assert pread.summary.concurrency == min(16, max(2, os.cpu_count() or 2))
    assert paramio.load(path, io="direct", concurrency=3).summary.concurrency == 3


def test_a_mapped_load_starts_no_worker(st_file: tuple[Path, dict[str, np.ndarray]]) -> None:
    """``io="mmap"`` reads no byte when every tensor maps: the loop completes its tasks itself,
    so a process's first mapped load starts no thread (one per core was started before)."""
    import subprocess
    import sys

    path, want = st_file
    code = (
        "import sys, threading, numpy as np, paramio\n"
        "got = paramio.load(sys.argv[1], io='mmap')\n"
        "assert got.summary.io == 'mmap', got.summary\n"
        "from paramio.loading import stream\nwith stream(sys.argv[1], io='mmap') as s:\n"
        "    first = next(iter(s))\n"  # leaving early: nothing is left running
        "print(len(got), sorted(t.name for t in threading.enumerate()))\n"
    )
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True).stdout
    assert out.strip() == f"{len(want)} ['MainThread']"
    got = paramio.load(path, io="mmap")
    for k, a in want.items():
        np.testing.assert_array_equal(got[k], a)


def test_a_mapped_async_load_gives_the_same_bytes(st_file: tuple[Path, dict[str, np.ndarray]]) -> None:
    from paramio.loading import load_async

    path, want = st_file
    got = asyncio.run(load_async(path, io="mmap"))
    assert got.summary.io == "mmap" and sorted(got) == sorted(want)
    for k, a in want.items():
        np.testing.assert_array_equal(got[k], a)


def test_the_collector_is_paused_only_inside_the_load(tmp_path: Path) -> None:
    """The set-up (entries, slots) runs with the cyclic collector paused, and leaves it as it
    found it: on, off, and after a load that fails."""
    import gc

    import safetensors.numpy

    want = {f"t{i}": np.full(3, i, dtype=np.float32) for i in range(3000)}
    path = tmp_path / "many.safetensors"
    safetensors.numpy.save_file(want, str(path))
    seen: list[str] = []

    def during(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            seen.append(f"generation {info['generation']}")

    assert gc.isenabled()
    gc.collect()
    gc.callbacks.append(during)
    try:
        got = paramio.load(path, io="mmap")
        # At most the one that re-enabling it lets run (29 on main before, at 3,000 tensors).
        assert len(seen) <= 1, seen
        assert gc.isenabled()
        gc.disable()
        try:
            paramio.load(path, io="pread")
            assert not gc.isenabled()
        finally:
            gc.enable()
        with pytest.raises(paramio.errors.ParameterNotFoundError):
            paramio.load(path, ["t0", "missing"])
        assert gc.isenabled()
    finally:
        gc.callbacks.remove(during)
    assert len(got) == 3000 and float(got["t2999"][0]) == 2999
