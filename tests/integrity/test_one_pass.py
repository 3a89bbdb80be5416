"""Digests computed while the writer copies (issue 26): every input byte is read once, the
record written is `paramio.digest` of the output, conversions carry what their input stores for
bytes they did not change, and IREE still loads what is written."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import paramio
from paramio.core.entry import ParameterEntry
from paramio.core.errors import SourceError
from paramio.formats.digests import DigestSink
from paramio.integrity import digest, stored_digests, verify_digests
from paramio.sources.file import FileSource
from paramio.sources.memory import MemorySource

pytest.importorskip("blake3")
pytest.importorskip("xxhash")

FORMATS = ["irpa", "safetensors", "gguf"]
# One large tensor (copied by the threaded, in-order hashing path), small ones (the inline
# path), an empty one and a splat.
SIZES = {"big": 9 << 20, "mid": 3 << 20, "small": 4000, "empty": 0}


class CountingMemory(MemorySource):
    """A memory source that counts the bytes handed out, however they are asked for."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data, name="<counting>")
        self.bytes_read = 0
        self._lock = threading.Lock()

    def _count(self, n: int) -> None:
        with self._lock:
            self.bytes_read += n

    def view(self, offset: int, length: int) -> memoryview:
        self._count(length)
        return super().view(offset, length)

    def read(self, offset: int, length: int) -> bytes:
        self._count(length)
        return super().read(offset, length)

    def readinto(self, offset: int, out: memoryview | bytearray) -> int:
        n = super().readinto(offset, out)
        self._count(n)
        return n


class CountingFile(FileSource):
    """A file source that counts the bytes read through it; `preadv` on its descriptor (the
    copy's own reads) is counted by `count_preadv`."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.bytes_read = 0
        self._lock = threading.Lock()

    def _count(self, n: int) -> None:
        with self._lock:
            self.bytes_read += n

    def view(self, offset: int, length: int) -> memoryview:
        self._count(length)
        return super().view(offset, length)

    def read(self, offset: int, length: int) -> bytes:
        self._count(length)
        return super().read(offset, length)

    def readinto(self, offset: int, out: memoryview | bytearray) -> int:
        n = super().readinto(offset, out)
        self._count(n)
        return n


@pytest.fixture
def count_preadv(monkeypatch: pytest.MonkeyPatch) -> dict[int, int]:
    """Bytes `os.preadv` returns, by descriptor."""
    counts: dict[int, int] = {}
    real = os.preadv
    lock = threading.Lock()

    def counting(fd: int, buffers: list[memoryview], offset: int, *rest: int) -> int:
        n = real(fd, buffers, offset, *rest)
        with lock:
            counts[fd] = counts.get(fd, 0) + n
        return n

    monkeypatch.setattr(os, "preadv", counting)
    return counts


def _payload() -> bytes:
    rng = np.random.default_rng(3)
    return rng.integers(0, 256, sum(SIZES.values()), dtype=np.uint8).tobytes()


def _entries(source: object, base: int = 0) -> list[ParameterEntry]:
    out, at = [], base
    for key, n in SIZES.items():
        out.append(paramio.ParameterEntry(key=key, kind=paramio.EntryKind.DATA, length=n, source=source, offset=at))  # type: ignore[arg-type]
        at += n
    out.append(ParameterEntry.splat("splat", b"\x01\x02\x03\x04", 64 << 10))
    return out


def _data_bytes() -> int:
    return sum(SIZES.values())


def _check_record(path: Path, algorithm: str) -> None:
    record = stored_digests(path)
    assert record is not None and record.algorithm == algorithm
    assert dict(record.entries) == digest(path, algorithm).entries  # the one-pass digest of the output
    assert verify_digests(path)[1] == []


@pytest.mark.parametrize("algorithm", ["xxh3", "blake3", "sha256"])
@pytest.mark.parametrize("fmt", FORMATS)
def test_a_write_with_digests_reads_each_byte_once(tmp_path: Path, fmt: str, algorithm: str) -> None:
    source = CountingMemory(_payload())
    out = tmp_path / f"m.{fmt}"
    paramio.write_path(out, _entries(source), digests=algorithm, on_loss="ignore", expand_splats=True)
    assert source.bytes_read == _data_bytes()  # was twice that: a digest pass, then the copy
    _check_record(out, algorithm)


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_copy_from_a_file_reads_each_byte_once(tmp_path: Path, fmt: str, count_preadv: dict[int, int]) -> None:
    raw = tmp_path / "raw.bin"
    raw.write_bytes(b"\0" * 100 + _payload())
    source = CountingFile(raw)
    out = tmp_path / f"m.{fmt}"
    paramio.write_path(out, _entries(source, base=100), digests="xxh3", on_loss="ignore")
    fd = source.descriptor()
    assert source.bytes_read + count_preadv.get(fd, 0) == _data_bytes()
    source.close()
    _check_record(out, "xxh3")


@pytest.mark.parametrize(
    ("fmt", "options"),
    [
        ("irpa", {"max_shard_size": 4 << 20}),
        ("safetensors", {"max_shard_size": 4 << 20}),
        ("gguf", {"split_max_tensors": 2}),
    ],
)
def test_sets_read_each_byte_once_and_record_every_member(tmp_path: Path, fmt: str, options: dict[str, object]) -> None:
    source = CountingMemory(_payload())
    suffix = {"irpa": ".irpa.index.json", "safetensors": ".safetensors.index.json", "gguf": ".gguf"}[fmt]
    out = tmp_path / f"set{suffix}"
    paramio.write_path(out, _entries(source), digests="blake3", on_loss="ignore", **options)
    assert source.bytes_read == _data_bytes()
    opened = out if fmt != "gguf" else sorted(tmp_path.glob("set-0*.gguf"))[0]
    assert len(list(tmp_path.glob(f"set-*{fmt}"))) > 1
    _check_record(opened, "blake3")


def test_no_placeholder_is_left_in_any_file(tmp_path: Path) -> None:
    """Each member of a safetensors set stores the whole set's record: the members written
    first are finished before the last entry is hashed, and are patched after."""
    source = CountingMemory(_payload())
    paramio.write_path(
        tmp_path / "s.safetensors.index.json",
        _entries(source),
        digests="xxh3",
        max_shard_size=4 << 20,
        on_loss="ignore",
    )
    expected = digest(tmp_path / "s.safetensors.index.json", "xxh3").entries
    for member in sorted(tmp_path.glob("s-*.safetensors")):
        from safetensors import safe_open

        with safe_open(member, "np") as f:
            meta = f.metadata()
        text = meta["paramio.carried"]
        for value in expected.values():
            assert value in text


def test_the_sink_rereads_nothing_in_paramios_writers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sinks: list[DigestSink] = []
    real = DigestSink.settle

    def settle(self: DigestSink) -> None:
        sinks.append(self)
        real(self)

    monkeypatch.setattr(DigestSink, "settle", settle)
    source = CountingMemory(_payload())
    paramio.write_path(tmp_path / "s.irpa.index.json", _entries(source), digests=True, max_shard_size=4 << 20)
    assert sinks and all(s.reread == 0 for s in sinks)


def test_conversion_carries_stored_digests_of_unchanged_bytes(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    index = paramio.ParameterIndex()
    index.add_array("w", rng.standard_normal((1024, 1536)).astype(np.float32))  # 6 MiB
    index.add_array("b", rng.standard_normal(100).astype(np.float32))
    index.add_array("c", rng.standard_normal(100).astype(np.float32))
    src = tmp_path / "src.safetensors"
    paramio.write_path(src, index.values(), digests="blake3")
    stored = stored_digests(src)
    assert stored is not None
    # Damage the source's data after its record was made: a conversion carries the stored
    # digest (the bytes' expected value), so the damage stays visible in the output, where a
    # digest computed anew would have blessed it.
    w = paramio.ParameterIndex.open(src)["w"]
    with open(src, "r+b") as f:
        f.seek(w.offset + 12345)
        byte = f.read(1)
        f.seek(w.offset + 12345)
        f.write(bytes([byte[0] ^ 0x10]))
    out = tmp_path / "out.irpa"
    plan = paramio.convert(src, out, rename={"b": "bias"}, splat={"c": "f32=0"})
    assert plan.digests is not None and dict(plan.digests.entries) == {
        "w": stored.entries["w"],
        "bias": stored.entries["b"],
    }
    record = stored_digests(out)
    assert record is not None and record.algorithm == "blake3"
    assert record.entries["w"] == stored.entries["w"]  # carried, not recomputed
    assert record.entries["bias"] == stored.entries["b"]  # renamed, bytes unchanged: carried
    assert record.entries["c"] == digest(out, "blake3").entries["c"]  # a new splat: computed
    assert [m.key for m in verify_digests(out)[1]] == ["w"]


def test_conversion_computes_what_it_cannot_carry(tmp_path: Path) -> None:
    index = paramio.ParameterIndex()
    index.add_array("w", np.arange(4096, dtype=np.float32))
    a = tmp_path / "a.safetensors"
    paramio.write_path(a, index.values(), digests="sha256")
    other = paramio.ParameterIndex()
    other.add_array("v", np.ones(300, np.float16))
    b = tmp_path / "b.safetensors"
    paramio.write_path(b, other.values(), digests="xxh3")  # another algorithm: computed anew
    out = tmp_path / "ab.gguf"
    plan = paramio.convert([a, b], out)
    assert plan.digests is not None and plan.digests.algorithm == "sha256" and set(plan.digests.entries) == {"w"}
    _check_record(out, "sha256")
    # typed=False writes IREE's exact bytes: no record at all.
    plain = tmp_path / "plain.irpa"
    assert paramio.convert(a, plain, typed=False).digests is None
    assert stored_digests(plain) is None


@pytest.mark.interop
def test_iree_loads_converted_files_and_set_members_with_digests(
    tmp_path: Path,
    run_tool,  # type: ignore[no-untyped-def]
    iree_tool,  # type: ignore[no-untyped-def]
) -> None:
    rt = pytest.importorskip("iree.runtime")
    source = CountingMemory(_payload())
    single = tmp_path / "one.irpa"
    paramio.write_path(single, _entries(source), digests=True)
    paramio.write_path(tmp_path / "set.irpa.index.json", _entries(source), digests=True, max_shard_size=4 << 20)
    members = sorted(tmp_path.glob("set-*.irpa"))
    assert len(members) > 1
    # A member opened by paramio opens its whole set; IREE reads each member as one archive.
    whole = paramio.ParameterIndex.open(tmp_path / "set.irpa.index.json")
    seen: list[str] = []
    for path, ours in [(single, paramio.ParameterIndex.open(single)), *((m, whole) for m in members)]:
        theirs = rt.ParameterIndex()
        theirs.load(str(path))
        keys = [k for k, _ in theirs.items()]
        assert set(keys) <= set(ours.keys())  # only the model's entries, never the record
        if path != single:
            seen += keys
        else:
            assert keys == ours.keys()
        for key, entry in theirs.items():
            if entry.is_file and entry.length:
                assert bytes(entry.file_view) == ours[key].read()
        dump = run_tool([iree_tool("iree-dump-parameters"), f"--parameters={path}"]).stdout
        assert "paramio" not in dump and f"({len(keys)} entries" in dump
    assert sorted(seen) == sorted(whole.keys())


def test_a_failed_read_while_hashing_fails_the_write_promptly(tmp_path: Path) -> None:
    raw = tmp_path / "raw.bin"
    raw.write_bytes(_payload())
    source = FileSource(raw)
    os.truncate(raw, 5 << 20)  # the big entry ends past the file now: a read fails mid-entry
    started = time.monotonic()
    with pytest.raises(SourceError):
        paramio.write_path(tmp_path / "m.irpa", _entries(source), digests=True)
    assert time.monotonic() - started < 30
    assert not list(tmp_path.glob(".m.irpa.*"))  # no temporary file left
    source.close()


def test_digest_write_stores_the_digests_it_was_given(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``paramio digest --write`` prints the digests, then stores them: the rewrite hashes
    nothing again (it was a second and a third pass over the bytes)."""
    from paramio.formats import digests as digests_module
    from paramio.integrity import write_digests

    index = paramio.ParameterIndex()
    index.add_array("w", np.arange(1 << 20, dtype=np.float32))
    index.add_array("b", np.ones(7, np.float16))
    path = tmp_path / "m.safetensors"
    paramio.write_path(path, index.values())
    report = digest(path, "sha256")
    made: list[str] = []
    real = digests_module.new_hasher

    def counting(algorithm: str, *, threads: int | None = None) -> object:
        made.append(algorithm)
        return real(algorithm, threads=threads)

    monkeypatch.setattr(digests_module, "new_hasher", counting)
    write_digests(path, "sha256", record=report.record())
    assert made == []
    monkeypatch.undo()
    assert verify_digests(path)[1] == [] and stored_digests(path) == report.record()


def test_a_streamed_output_gets_its_digests(tmp_path: Path) -> None:
    """A FIFO is written once the output is complete (built in an unnamed file): its header is
    patched there before the bytes go out."""
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()), daemon=True)
    reader.start()
    paramio.write_path(fifo, _entries(CountingMemory(_payload())), format="irpa", digests=True)
    reader.join(30)
    out = tmp_path / "from-pipe.irpa"
    out.write_bytes(got[0])
    _check_record(out, "xxh3")


def test_kernel_copies_only_for_entries_not_hashed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, count_preadv: dict[int, int]
) -> None:
    """Where the filesystem copies in the kernel (reflinks), an entry to hash goes through
    memory (read once), and an entry whose digest is carried is left to the kernel."""
    from paramio.formats.output import AtomicOutput

    monkeypatch.setattr(AtomicOutput, "kernel_copies", property(lambda self: True))
    raw = tmp_path / "raw.bin"
    raw.write_bytes(b"\0" * 100 + _payload())
    source = CountingFile(raw)
    fd = source.descriptor()
    entries = _entries(source, base=100)
    out = tmp_path / "hashed.irpa"
    paramio.write_path(out, entries, digests="xxh3")
    assert source.bytes_read + count_preadv.get(fd, 0) == _data_bytes()  # hashed: through memory
    _check_record(out, "xxh3")
    count_preadv.clear()
    known = stored_digests(out)
    assert known is not None
    again = tmp_path / "carried.irpa"
    paramio.write_path(again, entries, digests=known)
    assert count_preadv.get(fd, 0) == 0  # every digest carried: the kernel copied the bytes
    _check_record(again, "xxh3")
    source.close()


def test_a_nested_write_never_reports_to_the_outer_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A write inside another's (a tensor-parallel set's device files are written by writes of
    their own) hashes for its own record only: without one it hashes nothing."""
    from paramio.formats import digests as digests_module

    source = CountingMemory(_payload())
    entries = _entries(source)
    outer = DigestSink("xxh3", entries)
    made: list[str] = []
    real = digests_module.new_hasher

    def counting(algorithm: str, *, threads: int | None = None) -> object:
        made.append(algorithm)
        return real(algorithm, threads=threads)

    monkeypatch.setattr(digests_module, "new_hasher", counting)
    with outer.active():
        paramio.write_path(tmp_path / "inner.irpa", entries)
    assert made == [] and stored_digests(tmp_path / "inner.irpa") is None


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    sizes=st.lists(st.sampled_from([0, 1, 4096, (1 << 20) + 3, (5 << 20) + 7]), min_size=1, max_size=5),
    splats=st.lists(st.sampled_from([1, 2, 4, 8, 16]), max_size=2),
    fmt=st.sampled_from(FORMATS),
    algorithm=st.sampled_from(["xxh3", "blake3", "sha256"]),
    shard=st.booleans(),
)
def test_any_write_reads_once_and_records_its_output(
    tmp_path_factory: pytest.TempPathFactory,
    sizes: list[int],
    splats: list[int],
    fmt: str,
    algorithm: str,
    shard: bool,
) -> None:
    """Entries on both sides of the threaded-copy threshold, empty ones, splats of every
    pattern length, one file or a set: each input byte read once, and the record written is
    `paramio.digest` of what was written."""
    folder = tmp_path_factory.mktemp("any")
    rng = np.random.default_rng(len(sizes) * 31 + sum(sizes))
    source = CountingMemory(rng.integers(0, 256, sum(sizes), dtype=np.uint8).tobytes())
    entries, at = [], 0
    for i, n in enumerate(sizes):
        entries.append(
            paramio.ParameterEntry(key=f"t{i}", kind=paramio.EntryKind.DATA, length=n, source=source, offset=at)
        )  # type: ignore[arg-type]
        at += n
    for i, p in enumerate(splats):
        entries.append(ParameterEntry.splat(f"s{i}", bytes(range(1, p + 1)), p * 1000))
    options: dict[str, object] = {}
    if shard:
        options = {"split_max_tensors": 2} if fmt == "gguf" else {"max_shard_size": 2 << 20}
    name = {"irpa": "m.irpa.index.json", "safetensors": "m.safetensors.index.json", "gguf": "m.gguf"}[fmt]
    out = folder / (name if shard else f"m.{fmt}")
    paramio.write_path(out, entries, digests=algorithm, on_loss="ignore", **options)
    assert source.bytes_read == sum(sizes)
    opened = out if not (shard and fmt == "gguf") else sorted(folder.glob("m*.gguf"))[0]
    _check_record(opened, algorithm)


def test_cli_convert_carries_stored_digests(tmp_path: Path, paramio_cli) -> None:  # type: ignore[no-untyped-def]
    index = paramio.ParameterIndex()
    index.add_array("w", np.arange(1 << 16, dtype=np.float32))
    index.add_array("b", np.ones(9, np.float16))
    src = tmp_path / "src.safetensors"
    paramio.write_path(src, index.values(), digests="sha256")
    stored = stored_digests(src)
    assert stored is not None
    w = paramio.ParameterIndex.open(src)["w"]
    with open(src, "r+b") as f:  # damage after the record was made: carried, it stays visible
        f.seek(w.offset + 7)
        f.write(b"\xff")
    code, _, err = paramio_cli("convert", f"--parameters={src}", f"--output={tmp_path / 'out.irpa'}")
    assert code == 0, err
    record = stored_digests(tmp_path / "out.irpa")
    assert record is not None and dict(record.entries) == dict(stored.entries)
    assert [m.key for m in verify_digests(tmp_path / "out.irpa")[1]] == ["w"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_files_written_by_separate_tasks_get_the_whole_record(tmp_path: Path, fmt: str) -> None:
    """The scale-out engine's shape: the record laid out once, each file written by a task of
    its own (here in turn, from plain-data state, as another process would), each task hashing
    only its entries as it copies them; the writer of the record merges and patches."""
    import json

    from paramio.formats.contract import get_format
    from paramio.formats.digests import plan_sink, with_record

    source = CountingMemory(_payload())
    entries = _entries(source)
    sink = plan_sink(entries, {}, "xxh3")
    assert sink is not None
    attributes = with_record({}, sink.record())
    state = json.loads(json.dumps(sink.task_state()))
    writer = get_format(fmt)
    parts = [entries[:2], entries[2:]]
    heads: list[tuple[str, int]] = []
    for i, group in enumerate(parts):
        task = DigestSink.for_task(state, group)
        prepared = writer.prepare(group, attributes, {})
        with task.active():
            writer.write_path(str(tmp_path / f"part{i}.{fmt}"), prepared.entries, attributes=prepared.attributes)
        sink.merge(task.computed())
        heads += task.heads
    assert source.bytes_read == _data_bytes()  # each task read its own bytes once, nothing more
    assert len(heads) == 2  # each header named the other task's entries
    for path, length in heads:
        sink.patch_file(path, length)
    assert sink.reread == 0
    expected = {k: v for part in range(2) for k, v in digest(tmp_path / f"part{part}.{fmt}", "xxh3").entries.items()}
    for part in range(2):
        record = stored_digests(tmp_path / f"part{part}.{fmt}")
        assert record is not None and dict(record.entries) == expected
