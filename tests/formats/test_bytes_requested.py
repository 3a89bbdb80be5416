"""Counting bytes requested through a wrapper source: opening any format (one file or a sharded
set), listing its keys and reading its attributes asks the source for its header and index
tables only, never its data; reading one tensor then asks for exactly that tensor's span.

The wrapper (`CountingSource`) records every `view`, `readinto` and `readv` span. It keeps the
contract's `whole_view` (None), so no reader can take a shortcut around the count; its
`max_gap` says whether it stands for a local file (0: asked for exactly the header and tables)
or a remote object (64 KiB: one first read of the file's start may hold the tables too). Opens
go through it two ways: the `Format` contract's ``read_source`` (`registry.read_source`) and
the readers' source entry points, and a URL scheme registered for the test, so that
`read_path`, set manifests and shards (found by name beside the manifest) take the same road
as a remote object.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterable, Sequence
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pytest

from paramio.core.planner import Span
from paramio.core.source import ByteSource
from paramio.formats import registry as formats
from paramio.formats.gguf.reader import FIRST_READ as GGUF_FIRST_READ
from paramio.formats.gguf.reader import GROW_AHEAD as GGUF_GROW_AHEAD
from paramio.formats.gguf.reader import read_gguf
from paramio.formats.irpa.reader import FIRST_READ as IRPA_FIRST_READ
from paramio.formats.irpa.reader import read_source
from paramio.formats.safetensors.reader import FIRST_READ as ST_FIRST_READ
from paramio.formats.safetensors.reader import read_file
from paramio.index.index import ParameterIndex
from paramio.sources import registry as schemes
from paramio.sources.file import FileSource

MiB = 1 << 20
IRPA_HEADER = 88  # IREE's v0 archive header
SCHEME = "counted"
#: 64 MiB of tensor data per model: 16 tensors of 4 MiB (a header is a few KiB).
TENSORS = 16
TENSOR_BYTES = 4 * MiB


class Log:
    """Every span asked for, as ``(file, offset, length)``, in order; `gap` is the `max_gap` of
    the sources the test scheme opens (0: a local file's; 64 KiB: a remote object's)."""

    def __init__(self) -> None:
        self.reads: list[tuple[str, int, int]] = []
        self.gap = 0

    def of(self, path: Path | str) -> list[tuple[int, int]]:
        return [(o, n) for f, o, n in self.reads if f == str(path)]

    def total(self, path: Path | str | None = None) -> int:
        return sum(n for f, _, n in self.reads if path is None or f == str(path))


class CountingSource(ByteSource):
    """A local file whose every read is logged; no zero-copy shortcut (`whole_view` is None)."""

    def __init__(self, path: str, log: Log) -> None:
        self.inner = FileSource(path)
        self.file = path
        self.name = f"{SCHEME}://localhost{path}"
        self.log = log
        self.max_gap = log.gap  # > 0: requests are worth merging, as for a remote object

    @property
    def size(self) -> int:
        return self.inner.size

    def view(self, offset: int, length: int) -> memoryview:
        self.log.reads.append((self.file, offset, length))
        return memoryview(self.inner.read(offset, length))

    def readinto(self, offset: int, out: memoryview | bytearray) -> int:
        self.log.reads.append((self.file, offset, len(out)))
        return self.inner.readinto(offset, out)

    def readv(self, spans: Sequence[Span] | Iterable[tuple[int, int]]) -> list[memoryview]:
        wanted = self.checked_spans(spans)
        self.log.reads.extend((self.file, s.offset, s.length) for s in wanted)
        return [memoryview(bytes(v)) for v in self.inner.readv(wanted)]

    def sibling(self, name: str) -> CountingSource:
        return CountingSource(self.inner.sibling(name).name, self.log)


@pytest.fixture
def log(monkeypatch: pytest.MonkeyPatch) -> Log:
    """A fresh log, and ``counted://PATH`` URLs opening `CountingSource`s that write to it."""
    found = Log()
    monkeypatch.setitem(schemes._SCHEMES, SCHEME, lambda url, **_options: CountingSource(urlsplit(url).path, found))
    return found


def _index(n: int = TENSORS, nbytes: int = TENSOR_BYTES) -> ParameterIndex:
    index = ParameterIndex()
    for i in range(n):
        index.add_array(f"blk.{i}.weight", np.full(nbytes // 4, i, np.float32))
    return index


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One file of each format and one sharded set of each, 64 MiB of data each, with attributes."""
    folder = tmp_path_factory.mktemp("bytes")
    index = _index()
    out: dict[str, Path] = {}
    for fmt, ext in (("irpa", "irpa"), ("safetensors", "safetensors"), ("gguf", "gguf")):
        attrs = {"gguf.kv": {"general.name": "counted"}} if fmt == "gguf" else {"general.name": "counted"}
        out[fmt] = folder / f"model.{ext}"
        formats.write_path(str(out[fmt]), index.values(), format=fmt, attributes=attrs)
        sets = folder / f"set-{fmt}"
        sets.mkdir()
        written = formats.write_path(
            str(sets / f"model.{ext}"), index.values(), format=fmt, attributes=attrs, max_shard_size=16 * MiB
        )
        out[f"{fmt}-set"] = sets
        del written
    return out


def _covered(spans: Iterable[tuple[int, int]], allowed: Sequence[tuple[int, int]]) -> bool:
    """Whether every span lies inside one of the `allowed` ``[start, end)`` regions."""
    return all(n == 0 or any(a <= o and o + n <= b for a, b in allowed) for o, n in spans)


def _no_byte_twice(spans: Iterable[tuple[int, int]]) -> bool:
    ordered = sorted((o, o + n) for o, n in spans if n)
    return all(b[0] >= a[1] for a, b in zip(ordered, ordered[1:], strict=False))


# -- where each format's header and tables are, read with struct (not with paramio) -----------


def _irpa_regions(path: Path) -> tuple[list[tuple[int, int]], int]:
    """([header, entry table, metadata segment] as ``[start, end)``, their total bytes)."""
    with open(path, "rb") as f:
        raw = f.read(IRPA_HEADER)
    # IREE's v0 header: a 32-byte prefix, then entry count, entry table, metadata segment.
    (_count, e_off, e_len, m_off, m_len) = struct.unpack_from("<5Q", raw, 32)
    regions = [(0, IRPA_HEADER), (e_off, e_off + e_len), (m_off, m_off + m_len)]
    return regions, IRPA_HEADER + e_len + m_len


def _safetensors_header(path: Path) -> int:
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
    return 8 + n


def _gguf_data_offset(path: Path) -> int:
    return min(e.offset for e in ParameterIndex.open(path).entries)


def _allowed(path: Path, gap: int) -> tuple[list[tuple[int, int]], int]:
    """(regions an open of `path` may read, most bytes it may read), by format. From a source
    with no `max_gap` (a local file) IRPA and safetensors read exactly their header and tables.
    The stated slack: from a source that merges requests (a remote object), the first read
    (`FIRST_READ`, or the file when smaller), which for small tables holds them all; GGUF,
    which states no table sizes, reads `FIRST_READ` first from any source and grows it while
    the parse runs past it, reading at most 64 KiB (`GROW_AHEAD`) past the header."""
    size = path.stat().st_size
    if path.suffix == ".irpa":
        regions, exact = _irpa_regions(path)
        if not gap:
            return regions, exact
        first = min(IRPA_FIRST_READ, size)
        return [(0, first), *regions], first + exact
    if path.suffix == ".safetensors":
        header = _safetensors_header(path)
        if not gap:
            return [(0, header)], header
        first = min(ST_FIRST_READ, size)
        return [(0, max(first, header))], max(first, header)
    bound = min(size, max(GGUF_FIRST_READ, _gguf_data_offset(path) + GGUF_GROW_AHEAD))
    return [(0, bound)], bound


def _check_open(log: Log, path: Path) -> None:
    reads = log.of(path)
    allowed, most = _allowed(path, log.gap)
    assert reads, "the open must go through the counting source"
    assert _covered(reads, allowed), (reads, allowed)
    assert _no_byte_twice(reads), reads
    assert log.total(path) <= most, (log.total(path), most)
    assert log.total(path) <= max(IRPA_FIRST_READ, ST_FIRST_READ, GGUF_FIRST_READ)  # of 16-64 MiB files


def _check_tensor_read(log: Log, index: ParameterIndex, key: str) -> None:
    entry = index[key]
    log.reads.clear()
    arr = entry.to_numpy()
    assert arr.nbytes == TENSOR_BYTES and float(arr.reshape(-1)[0]) == int(key.split(".")[1])
    assert [(o, n) for _f, o, n in log.reads] == [(entry.offset, entry.length)]


# -- one file --------------------------------------------------------------------------------


@pytest.mark.parametrize("gap", [0, 64 * 1024], ids=["local", "remote"])
@pytest.mark.parametrize("fmt", ["irpa", "safetensors", "gguf"])
def test_open_by_url_reads_header_and_tables_then_exactly_the_tensor(
    fmt: str, gap: int, models: dict[str, Path], log: Log
) -> None:
    log.gap = gap
    path = models[fmt]
    index = ParameterIndex.open(f"{SCHEME}://localhost{path}")
    assert list(index.keys()) == [f"blk.{i}.weight" for i in range(TENSORS)]
    attrs = index.attributes
    assert (attrs["gguf.kv"]["general.name"]["value"] if fmt == "gguf" else attrs["general.name"]) == "counted"
    assert {f for f, _, _ in log.reads} == {str(path)}
    _check_open(log, path)
    _check_tensor_read(log, index, "blk.9.weight")


@pytest.mark.parametrize("fmt", ["irpa", "safetensors", "gguf"])
def test_the_format_contracts_read_source_asks_for_header_and_tables_only(
    fmt: str, models: dict[str, Path], log: Log
) -> None:
    """`paramio.formats.registry.read_source` (each `Format`'s ``read_source``, what IREE's file
    handles open through), over a local-like source: IRPA and safetensors ask for exactly their
    header and tables, GGUF for its first read."""
    path = models[fmt]
    contents = formats.read_source(CountingSource(str(path), log), fmt)
    assert [e.key for e in contents.entries] == [f"blk.{i}.weight" for i in range(TENSORS)]
    if fmt == "irpa":
        regions, exact = _irpa_regions(path)
        assert log.of(path) == [(a, b - a) for a, b in regions] and log.total() == exact
    elif fmt == "safetensors":
        assert log.of(path) == [(0, 8), (8, _safetensors_header(path) - 8)]
    else:
        assert log.of(path) == [(0, GGUF_FIRST_READ)] and _gguf_data_offset(path) < GGUF_FIRST_READ


def test_irpa_source_entry_point_reads_exactly_the_header_and_tables(models: dict[str, Path], log: Log) -> None:
    """A local source is asked for the header, then the entry table and metadata segment it
    names: exactly those bytes."""
    path = models["irpa"]
    regions, exact = _irpa_regions(path)
    contents = read_source(CountingSource(str(path), log), str(path))
    assert len(contents.entries) == TENSORS and contents.attributes == {"general.name": "counted"}
    assert log.of(path) == [(a, b - a) for a, b in regions] and log.total() == exact


def test_irpa_remote_tables_past_the_first_read_cost_one_more_read(models: dict[str, Path], log: Log) -> None:
    """From a source that merges requests, with the tables past the first read (3,000 entries):
    the first read, then the rest of the tables in one `readv`; nothing twice, none of the data."""
    log.gap = 64 * 1024
    path = models["irpa"].with_name("many.irpa")
    index = ParameterIndex()
    for i in range(3000):
        index.add_array(f"layer.{i:05d}.a_rather_long_parameter_name.weight", np.full(4, i, np.float32))
    index.add_array("big", np.zeros(TENSORS * TENSOR_BYTES // 4, np.float32))
    formats.write_path(str(path), index.values(), format="irpa")
    regions, exact = _irpa_regions(path)
    tables_end = max(end for _, end in regions)
    assert tables_end > IRPA_FIRST_READ
    contents = read_source(CountingSource(str(path), log), str(path))
    assert len(contents.entries) == 3001
    reads = log.of(path)
    assert _covered(reads, [(0, IRPA_FIRST_READ), *regions]) and _no_byte_twice(reads), reads
    # The first read, then the tables' bytes past it: header + tables when they are contiguous.
    assert log.total() == IRPA_FIRST_READ + sum(max(0, b - max(a, IRPA_FIRST_READ)) for a, b in regions[1:])
    assert log.total() <= max(exact, tables_end)
    assert len(reads) <= 3


@pytest.mark.parametrize("gap", [0, 64 * 1024], ids=["local", "remote"])
def test_safetensors_source_entry_point_reads_the_header(gap: int, models: dict[str, Path], log: Log) -> None:
    log.gap = gap
    path = models["safetensors"]
    header = _safetensors_header(path)
    f = read_file(CountingSource(str(path), log))
    assert len(f.entries) == TENSORS and f.metadata is not None and "counted" in f.metadata["paramio.carried"]
    if gap:  # one read of the file's start holds the whole header
        assert header <= ST_FIRST_READ and log.of(path) == [(0, ST_FIRST_READ)]
    else:  # the length, then the header: exactly
        assert log.of(path) == [(0, 8), (8, header - 8)]


def test_gguf_header_past_the_first_read_grows_by_the_bytes_past_it(tmp_path: Path, log: Log) -> None:
    """A 1.5 MB vocabulary: the prefix grows to what the header holds at the least (8 bytes for
    each token still to come) and 64 KiB more; each growth reads only new bytes."""
    gguf = pytest.importorskip("gguf")
    path = tmp_path / "vocab.gguf"
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_array("tokenizer.ggml.tokens", [f"token-{i:07d}" for i in range(75_000)])
    w.add_tensor("w", np.zeros(TENSORS * TENSOR_BYTES // 4, np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    data_offset = _gguf_data_offset(path)
    assert data_offset > 4 * GGUF_FIRST_READ
    f = read_gguf(CountingSource(str(path), log))
    assert f.data_offset == data_offset and len(f.kv["tokenizer.ggml.tokens"]["value"]) == 75_000  # type: ignore[arg-type]
    reads = log.of(path)
    assert reads[0] == (0, GGUF_FIRST_READ)
    assert _no_byte_twice(reads) and _covered(reads, [(0, data_offset + GGUF_GROW_AHEAD)])
    assert data_offset <= log.total() <= data_offset + 64 * 1024
    assert len(reads) <= 8, reads  # a few growths, not one per 64 KiB
    # Contiguous growth: each read starts where the last ended.
    assert all(o == sum(n for _, n in reads[:i]) for i, (o, _) in enumerate(reads))


# -- sharded sets ------------------------------------------------------------------------------


def _set_files(folder: Path) -> tuple[Path, list[Path]]:
    """(what to open: the manifest, or the first shard of a GGUF split), every shard."""
    names = sorted(folder.iterdir())
    manifests = [p for p in names if p.name.endswith(".index.json")]
    shards = [p for p in names if not p.name.endswith(".json")]
    return (manifests[0] if manifests else shards[0]), shards


@pytest.mark.parametrize("gap", [0, 64 * 1024], ids=["local", "remote"])
@pytest.mark.parametrize("fmt", ["irpa", "safetensors", "gguf"])
def test_sharded_set_reads_manifest_and_each_shards_header(
    fmt: str, gap: int, models: dict[str, Path], log: Log
) -> None:
    log.gap = gap
    opened, shards = _set_files(models[f"{fmt}-set"])
    assert len(shards) >= 4
    index = ParameterIndex.open(f"{SCHEME}://localhost{opened}")
    assert list(index.keys()) == [f"blk.{i}.weight" for i in range(TENSORS)]
    assert index.attributes
    touched = {f for f, _, _ in log.reads}
    assert touched == {str(p) for p in shards} | ({str(opened)} if opened.suffix == ".json" else set())
    if opened.suffix == ".json":  # the manifest is the set's index table: read whole, once
        assert log.of(opened) == [(0, opened.stat().st_size)]
        assert set(json.loads(opened.read_text())["weight_map"].values()) == {p.name for p in shards}
    for shard in shards:
        _check_open(log, shard)
    _check_tensor_read(log, index, "blk.13.weight")


# -- claims past the file ------------------------------------------------------------------------


def _patched(src: Path, dst: Path, offset: int, value: int) -> Path:
    data = bytearray(src.read_bytes())
    struct.pack_into("<Q", data, offset, value)
    dst.write_bytes(data)
    return dst


@pytest.mark.parametrize(
    ("fmt", "field", "message"),
    [
        ("irpa", 48, "entry table"),  # entries_length: a table running past the end of the file
        ("irpa", 64, "metadata segment"),  # metadata_length
        ("safetensors", 0, "header of"),  # the header length
        ("gguf", 16, "metadata key/value table"),  # kv_count: more pairs than the file can hold
    ],
)
def test_a_table_claimed_past_the_file_is_refused_before_it_is_read(
    fmt: str, field: int, message: str, models: dict[str, Path], tmp_path: Path, log: Log
) -> None:
    """A header claiming more than the file holds is refused from the first read alone: no
    buffer is sized from the claim, no byte past the first read is asked for."""
    from paramio.core.errors import TruncatedError

    claim = 99_000_000 if fmt == "safetensors" else 1 << 40  # past the 64 MiB file, within any limit
    path = _patched(models[fmt], tmp_path / models[fmt].name, field, claim)
    first = {"irpa": IRPA_HEADER, "safetensors": 8, "gguf": GGUF_FIRST_READ}[fmt]  # what a local open reads first
    with pytest.raises(TruncatedError, match=message):
        ParameterIndex.open(f"{SCHEME}://localhost{path}")
    assert log.of(path) == [(0, first)]
