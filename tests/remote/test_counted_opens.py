"""Counting bytes requested through a wrapper source (no server needed): opening any format by
URL reads at most its header and index tables, whatever the data's size."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from models import entries

from paramio.formats.gguf.reader import FIRST_READ as GGUF_FIRST_READ
from paramio.formats.registry import write_path
from paramio.index.index import ParameterIndex
from paramio.sources import ByteSource, FileSource, register_scheme
from paramio.sources.names import relative_parts

READS: list[tuple[int, int]] = []  # (offset, length) of every read, by any method


class CountingSource(ByteSource):
    """A local file seen as a remote object: no zero-copy, every byte asked for is counted."""

    def __init__(self, path: str) -> None:
        self._file = FileSource(path)
        self.path_ = path
        self.name = "count://" + path

    @property
    def size(self) -> int:
        return self._file.size

    def view(self, offset: int, length: int) -> memoryview:
        READS.append((offset, length))
        return memoryview(self._file.read(offset, length))

    def readinto(self, offset: int, out: memoryview | bytearray) -> int:
        READS.append((offset, len(out)))
        return self._file.readinto(offset, out)

    def sibling(self, name: str) -> CountingSource:
        folder = self.path_.rpartition("/")[0]
        return CountingSource("/".join([folder, *relative_parts(name, base=self.name)]))


@pytest.fixture(autouse=True)
def counting() -> Iterator[None]:
    register_scheme("count", lambda url, **options: CountingSource(url.removeprefix("count://")))
    READS.clear()
    yield


def _model(folder: Path, fmt: str) -> tuple[Path, int]:
    """An 8 MiB model and where its tables end (the first data byte)."""
    rng = np.random.default_rng(1)
    tensors = {f"t{i}": rng.standard_normal(64 * 1024).astype(np.float32) for i in range(32)}
    path = folder / f"m.{fmt}"
    write_path(path, entries(tensors), format=fmt)
    local = ParameterIndex.open(path)
    return path, min(e.offset for e in local.entries)


@pytest.mark.parametrize("fmt", ["irpa", "safetensors", "gguf"])
def test_opening_reads_header_and_tables_only(fmt: str, tmp_path: Path) -> None:
    path, data_start = _model(tmp_path, fmt)
    assert path.stat().st_size > 8 * 1024 * 1024
    index = ParameterIndex.open(f"count://{path}")
    assert len(index) == 32
    read = sum(n for _, n in READS)
    first_read = 64 * 1024  # every format: the header + 64 KiB at most
    assert read <= data_start + first_read, READS
    assert all(off < data_start + first_read for off, _ in READS)
    # Data is read when asked for, exactly the entry's span.
    READS.clear()
    entry = index["t17"]
    assert entry.read() == ParameterIndex.open(path)["t17"].read()
    assert READS and sum(n for _, n in READS) == entry.length


def test_gguf_with_a_header_past_the_first_read_grows_the_prefix(tmp_path: Path) -> None:
    gguf = pytest.importorskip("gguf")
    path = tmp_path / "vocab.gguf"
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_array("tokenizer.ggml.tokens", [f"token-{i:06d}" for i in range(60_000)])  # ~1.2 MB of header
    w.add_tensor("w", np.arange(1 << 20, dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    local = ParameterIndex.open(path)
    data_start = local["w"].offset
    assert data_start > 16 * GGUF_FIRST_READ  # the header runs far past the first read
    remote = ParameterIndex.open(f"count://{path}")
    assert remote.attributes == local.attributes and remote.keys() == local.keys()
    # The header and at most 64 KiB more (IRPA's and safetensors' bound), in a few reads: each
    # growth asks for 8 bytes for every token still to come (tokens here take 20).
    assert sum(n for _, n in READS) <= data_start + 64 * 1024, READS
    assert len(READS) <= 8, READS
    np.testing.assert_array_equal(remote["w"].to_numpy(), local["w"].to_numpy())
