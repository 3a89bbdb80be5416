"""AtomicOutput: durable writes start writeback early and still produce the exact bytes."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest

from paramio.formats import output
from paramio.formats.output import AtomicOutput, copy_entry
from paramio.index.index import ParameterIndex


@pytest.mark.parametrize("durable", [True, False])
def test_writeback_hint_spans_and_bytes(tmp_path, monkeypatch, durable):
    calls: list[tuple[int, int]] = []
    monkeypatch.setattr(output, "WRITEBACK_STEP", 1000)
    monkeypatch.setattr(output, "_sync_file_range", lambda fd, off, n, flags: calls.append((off, n)) or 0)
    index = ParameterIndex()
    a = np.arange(700, dtype=np.uint8)
    b = np.arange(900, dtype=np.uint8)[::-1].copy()
    index.add_array("a", a)
    index.add_array("b", b)
    path = tmp_path / "x.bin"
    with AtomicOutput(path, durable=durable) as out:
        out.truncate(2000)
        copy_entry(index["b"], out, 1000)  # written out of order: the span covers both
        copy_entry(index["a"], out, 0)
        out.commit()
    data = path.read_bytes()
    assert data[:700] == a.tobytes() and data[700:1000] == bytes(300) and data[1000:1900] == b.tobytes()
    assert calls == ([(0, 1900)] if durable else [])
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".")]


def _copy_from_file(
    tmp_path, monkeypatch, *, src_at: int, dst_at: int, size: int, durable: bool = False, kernel: bool = False
):
    """Copy `size` bytes stored at `src_at` of a file to `dst_at` of a new output; returns
    (expected bytes, written file bytes, which copy paths ran)."""
    from paramio.core.entry import ParameterEntry
    from paramio.sources.file import FileSource

    tmp_path.mkdir(exist_ok=True)
    rng = np.random.default_rng(size + src_at + dst_at)
    data = rng.integers(0, 256, size, dtype=np.uint8).tobytes()
    src = tmp_path / "src.bin"
    src.write_bytes(b"\xee" * src_at + data + b"\xdd" * 100)
    ran: list[str] = []
    for fn in ("_kernel_copy", "_buffered_copy", "_pipelined_copy"):
        real = getattr(output, fn)
        monkeypatch.setattr(output, fn, lambda *a, _real=real, _fn=fn, **k: ran.append(_fn) or _real(*a, **k))
    source = FileSource(src)
    entry = ParameterEntry.data("w", source, src_at, size)
    path = tmp_path / "out.bin"
    ticks: list[int] = []
    with AtomicOutput(path, durable=durable) as out:
        out._kernel_copies = kernel  # as if the filesystem could (not) reflink
        out.truncate(dst_at + size)
        copy_entry(entry, out, dst_at, progress=ticks.append)
        out.commit()
    source.close()
    assert sum(ticks) == size
    return data, path.read_bytes()[dst_at:], ran


@pytest.mark.parametrize(
    ("src_at", "dst_at", "size", "kernel", "path"),
    [
        (8, 64, (9 << 20) + 123, False, "_pipelined_copy"),  # safetensors -> IRPA on ext4
        (0, 0, 8 << 20, False, "_pipelined_copy"),
        (1000, 4096, 3 << 20, False, "_buffered_copy"),  # small span: inline
        (4096, 8192, (5 << 20) + 7, True, "_kernel_copy"),  # a reflinking filesystem: the kernel copies
        (8, 64, 1 << 20, True, "_kernel_copy"),
    ],
)
def test_file_copy_paths_give_exact_bytes(tmp_path, monkeypatch, src_at, dst_at, size, kernel, path):
    data, written, ran = _copy_from_file(tmp_path, monkeypatch, src_at=src_at, dst_at=dst_at, size=size, kernel=kernel)
    assert written == data
    assert ran[0] == path


def test_pipelined_copy_durable_hints_cover_the_span(tmp_path, monkeypatch):
    calls: list[tuple[int, int]] = []
    monkeypatch.setattr(output, "WRITEBACK_STEP", 1 << 20)
    monkeypatch.setattr(output, "_sync_file_range", lambda fd, off, n, flags: calls.append((off, n)) or 0)
    data, written, ran = _copy_from_file(tmp_path, monkeypatch, src_at=8, dst_at=64, size=6 << 20, durable=True)
    assert written == data and ran == ["_pipelined_copy"]
    # Every written byte was handed to writeback once: the hinted spans cover [64, 64 + 6 MiB).
    assert len(calls) >= 3
    assert min(off for off, _ in calls) == 64 and max(off + n for off, n in calls) == 64 + (6 << 20)


def test_source_shrinking_during_copy_is_a_clear_error(tmp_path):
    from paramio.core.entry import ParameterEntry
    from paramio.core.errors import SourceError
    from paramio.sources.file import FileSource

    src = tmp_path / "src.bin"
    src.write_bytes(bytes(9 << 20))
    source = FileSource(src)
    entry = ParameterEntry.data("layer.0.weight", source, 8, (9 << 20) - 8)
    os.truncate(src, 5 << 20)  # another process cut the file after it was indexed
    out_path = tmp_path / "out.bin"
    with pytest.raises(SourceError) as err, AtomicOutput(out_path) as out:
        copy_entry(entry, out, 64)
        out.commit()
    source.close()
    assert err.value.key == "layer.0.weight" and err.value.path == str(src)
    assert err.value.offset is not None and err.value.offset >= 5 << 20
    assert not out_path.exists() and not [p for p in os.listdir(tmp_path) if p.startswith(".")]


@pytest.mark.skipif(not os.path.isdir("/dev/shm") or not sys.platform.startswith("linux"), reason="Linux tmpfs")
def test_filesystem_type_is_read(tmp_path):
    fd = os.open("/dev/shm", os.O_RDONLY)
    try:
        assert output._filesystem_type(fd) == 0x01021994  # TMPFS_MAGIC: buffers, not the kernel, copy there
    finally:
        os.close(fd)
    with AtomicOutput("/dev/shm/paramio-test-fs.bin") as out:
        assert out.kernel_copies is False


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_pipelined_copy_works_in_a_forked_child(tmp_path, monkeypatch):
    data, written, ran = _copy_from_file(tmp_path, monkeypatch, src_at=8, dst_at=64, size=5 << 20)
    assert written == data and ran == ["_pipelined_copy"]  # the parent's pool now has threads
    pid = os.fork()
    if pid == 0:  # the child: a DataLoader worker, say
        code = 1
        try:
            signal_alarm = __import__("signal").alarm
            signal_alarm(20)  # a hang (work queued for threads that do not exist) fails the test
            d2, w2, r2 = _copy_from_file(tmp_path / "child", monkeypatch, src_at=8, dst_at=64, size=5 << 20)
            code = 0 if (w2 == d2 and r2 == ["_pipelined_copy"]) else 3
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_threaded_copies_of_many_entries_then_one_failure(tmp_path):
    """Copies of many entries overlap (nothing waits between entries); a failing one surfaces
    at commit, and nothing is left under the final name or as a temporary file."""
    from paramio.core.entry import ParameterEntry
    from paramio.core.errors import SourceError
    from paramio.sources.file import FileSource

    rng = np.random.default_rng(5)
    data = rng.integers(0, 256, 40 << 20, dtype=np.uint8).tobytes()
    src = tmp_path / "src.bin"
    src.write_bytes(data)
    source = FileSource(src)
    sizes = [(5 << 20) + 3, 6 << 20, (4 << 20) + 1000, 9 << 20]
    entries, at = [], 8
    for i, n in enumerate(sizes):
        entries.append(ParameterEntry.data(f"t{i}", source, at, n))
        at += n
    path = tmp_path / "out.bin"
    with AtomicOutput(path, durable=False) as out:
        out.truncate(64 * 5 + sum(sizes))
        pos = 64
        for e in entries:
            copy_entry(e, out, pos)
            pos += e.length + 64
        assert out._inflight  # queued, not waited for
        out.commit()
    got = path.read_bytes()
    pos = 64
    for e in entries:
        assert got[pos : pos + e.length] == data[e.offset : e.offset + e.length]
        pos += e.length + 64
    bad = ParameterEntry.data("beyond", source, 36 << 20, 8 << 20)  # runs past the end of the file
    out_path = tmp_path / "bad.bin"
    with pytest.raises(SourceError) as err, AtomicOutput(out_path) as out:
        copy_entry(entries[0], out, 0)
        copy_entry(bad, out, 64 << 20)
        out.commit()
    source.close()
    assert err.value.key == "beyond"
    assert not out_path.exists() and not [p for p in os.listdir(tmp_path) if p.startswith(".")]
