"""A rank's slices (``rank=, world_size=, split=``): every slice equals NumPy's slice of the full
tensor, and the bytes read (counted by a wrapping source) are exactly the slices' bytes."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest

import paramio
import paramio.loading
from paramio.core.errors import InvalidArgumentError
from paramio.formats.registry import write_path
from paramio.index.index import ParameterIndex
from paramio.sources import ByteSource, FileSource, register_scheme

READS: list[tuple[int, int]] = []  # (offset, length) of every data read


class CountingSource(ByteSource):
    """A local file, every byte asked of it counted; `gap` > 0 makes it merge reads as a remote
    source does (the planner's `max_gap`)."""

    def __init__(self, path: str, gap: int) -> None:
        self._file = FileSource(path, use_mmap=False)
        self.name = f"slicecount{gap}://{path}"
        self.max_gap = gap

    @property
    def size(self) -> int:
        return self._file.size

    def view(self, offset: int, length: int) -> memoryview:
        self.check_span(offset, length)
        READS.append((offset, length))
        return self._file.view(offset, length)

    def readinto(self, offset: int, out: memoryview | bytearray) -> int:
        self.check_span(offset, len(out))
        READS.append((offset, len(out)))
        return self._file.readinto(offset, out)

    def close(self) -> None:
        self._file.close()


@pytest.fixture(autouse=True, scope="module")
def _schemes() -> Iterator[None]:
    for gap in (0, 65536):
        register_scheme(f"slicecount{gap}", lambda url, gap=gap, **options: CountingSource(url.split("://", 1)[1], gap))
    yield


DTYPES = [np.float32, np.float16, ml_dtypes.bfloat16, np.int8, np.int64, np.uint16]


def _tensors(dtype: object) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    return {
        "layer.0.w": (rng.standard_normal((8, 12, 16)) * 50).astype(dtype),  # split
        "layer.0.norm": (rng.standard_normal(40) * 50).astype(dtype),  # replicated
        "layer.1.w": (rng.standard_normal((4, 20)) * 50).astype(dtype),  # split, 2-D
    }


def _write(tmp_path: Path, tensors: dict[str, np.ndarray], fmt: str) -> Path:
    index = ParameterIndex()
    for k, v in tensors.items():
        index.add_array(k, v)
    path = tmp_path / f"m.{fmt}"
    write_path(path, list(index.entries), format=fmt)
    return path


def _open(path: Path, gap: int = 0) -> ParameterIndex:
    index = ParameterIndex.open(f"slicecount{gap}://{path}")
    READS.clear()  # from here on, only data reads are counted
    return index


GGUF_LACKS = {np.dtype(np.int64), np.dtype(np.uint16)}  # element types GGUF has no code for
CASES = [
    pytest.param(fmt, dtype, id=f"{fmt}-{np.dtype(dtype).name}")
    for fmt in ("safetensors", "irpa", "gguf")
    for dtype in DTYPES
    if not (fmt == "gguf" and np.dtype(dtype) in GGUF_LACKS)
]


@pytest.mark.parametrize("axis", [0, 1, 2, -1])
@pytest.mark.parametrize(("fmt", "dtype"), CASES)
def test_each_rank_gets_numpys_slice_and_reads_only_its_bytes(
    tmp_path: Path, dtype: object, axis: int, fmt: str
) -> None:
    tensors = _tensors(dtype)
    path = _write(tmp_path, tensors, fmt)
    world = 4
    pieces: list[np.ndarray] = []
    for rank in range(world):
        index = _open(path)
        got = paramio.load(index, rank=rank, world_size=world, split={"layer.0.w": axis, "layer.1.*": axis % 2})
        w0 = np.split(tensors["layer.0.w"], world, axis=axis)[rank]
        w1 = np.split(tensors["layer.1.w"], world, axis=axis % 2)[rank]
        assert got["layer.0.w"].dtype == w0.dtype and got["layer.0.w"].shape == w0.shape
        np.testing.assert_array_equal(got["layer.0.w"], w0)
        np.testing.assert_array_equal(got["layer.1.w"], w1)
        np.testing.assert_array_equal(got["layer.0.norm"], tensors["layer.0.norm"])
        # Exactly the slices' bytes and the replicated tensor, not one byte more.
        assert sum(n for _, n in READS) == w0.nbytes + w1.nbytes + tensors["layer.0.norm"].nbytes, READS
        assert got.summary.bytes == w0.nbytes + w1.nbytes + tensors["layer.0.norm"].nbytes
        pieces.append(got["layer.0.w"])
    np.testing.assert_array_equal(np.concatenate(pieces, axis=axis), tensors["layer.0.w"])


def test_torch_ranks_get_the_same_slices(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    tensors = _tensors(ml_dtypes.bfloat16)
    path = _write(tmp_path, tensors, "safetensors")
    for rank in range(2):
        got = paramio.load(_open(path), into="torch", rank=rank, world_size=2, split={"layer.*.w": 1})
        w0 = got["layer.0.w"]
        assert isinstance(w0, torch.Tensor) and w0.dtype == torch.bfloat16 and tuple(w0.shape) == (8, 6, 16)
        want = np.split(tensors["layer.0.w"], 2, axis=1)[rank]
        np.testing.assert_array_equal(w0.view(torch.uint16).numpy(), want.view(np.uint16))
        assert sum(n for _, n in READS) == want.nbytes + tensors["layer.1.w"].nbytes // 2 + 80


def test_leading_axis_is_one_read_and_other_axes_strided_reads(tmp_path: Path) -> None:
    a = np.arange(64 * 256, dtype=np.float32).reshape(64, 256)
    path = _write(tmp_path, {"w": a}, "safetensors")
    data_start = ParameterIndex.open(path)["w"].offset
    got = paramio.load(_open(path), rank=1, world_size=4, split={"w": 0})
    assert READS == [(data_start + 16 * 1024, 16 * 1024)]  # rows 16..32: one contiguous range
    np.testing.assert_array_equal(got["w"], a[16:32])
    got = paramio.load(_open(path), rank=1, world_size=4, split={"w": 1})
    # Columns 64..128 of each of the 64 rows: 64 reads of 256 bytes, one per row (a local file).
    assert READS == [(data_start + r * 1024 + 256, 256) for r in range(64)]
    np.testing.assert_array_equal(got["w"], a[:, 64:128])


def test_strided_reads_are_coalesced_where_the_source_merges_gaps(tmp_path: Path) -> None:
    a = np.arange(64 * 256, dtype=np.float32).reshape(64, 256)
    path = _write(tmp_path, {"w": a}, "safetensors")
    got = paramio.load(_open(path, gap=65536), rank=2, world_size=4, split={"w": 1})
    np.testing.assert_array_equal(got["w"], a[:, 128:192])
    # The planner merges the 64 row pieces (768-byte gaps) into one request: from the first
    # piece's start to the last piece's end.
    assert len(READS) == 1 and READS[0][1] == 63 * 1024 + 256, READS


def test_quantised_gguf_splits_in_whole_blocks_and_refuses_a_cut_block(tmp_path: Path) -> None:
    gguf = pytest.importorskip("gguf")
    rng = np.random.default_rng(3)
    blocks = gguf.quants.quantize(rng.standard_normal((4, 128)).astype(np.float32), gguf.GGMLQuantizationType.Q8_0)
    path = tmp_path / "q.gguf"
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_tensor("blk.0.ffn_down.weight", blocks, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    for axis in (0, 1):  # Q8_0: 32-element blocks of 34 bytes, 4 blocks a row; 2 ranks keep whole blocks
        for rank in range(2):
            got = paramio.load(_open(path), rank=rank, world_size=2, split={"blk.*": axis})
            want = np.split(blocks, 2, axis=axis)[rank]
            assert got["blk.0.ffn_down.weight"].tobytes() == want.tobytes()
            assert sum(n for _, n in READS) == want.nbytes
    with pytest.raises(
        InvalidArgumentError,
        match=r"'blk.0.ffn_down.weight': splitting gguf.q8_0\[4, 128\] along axis 1 into 8 pieces would cut "
        r"its 32-element blocks",
    ):
        paramio.load(path, rank=0, world_size=8, split={"blk.*": 1})


def test_uneven_split_is_refused_as_paramio_shard_refuses_it(tmp_path: Path) -> None:
    path = _write(tmp_path, {"w": np.zeros((6, 4), np.float32)}, "safetensors")
    index = _open(path)
    with pytest.raises(InvalidArgumentError, match=r"'w'.*dimension 0 of float32\[6, 4\] is 6, not a multiple of 4"):
        paramio.load(index, rank=0, world_size=4, split={"w": 0})
    assert READS == []  # refused before any read


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"rank": 0, "world_size": 2}, "need all of rank=, world_size= and split="),
        ({"rank": 2, "world_size": 2, "split": {"*": 0}}, "rank 2 is not one of world_size 2's ranks 0..1"),
        ({"rank": -1, "world_size": 2, "split": {"*": 0}}, "rank -1 is not one of"),
        ({"rank": 0, "world_size": 2, "split": ["w"]}, "must be PATTERN=AXIS"),
        ({"rank": 0, "world_size": 2, "split": {"w": 5}}, "axis 5 is out of range"),
        ({"sharding": object()}, "needs into='jax'"),
    ],
)
def test_bad_slicing_arguments_are_refused(tmp_path: Path, kwargs: dict[str, object], message: str) -> None:
    path = _write(tmp_path, {"w": np.zeros((4, 4), np.float32)}, "safetensors")
    with pytest.raises(InvalidArgumentError, match=message):
        paramio.load(path, **kwargs)  # type: ignore[arg-type]


def test_split_rules_as_paramio_shard_writes_them(tmp_path: Path) -> None:
    a = np.arange(32, dtype=np.int32).reshape(4, 8)
    path = _write(tmp_path, {"w": a, "v": a + 1}, "safetensors")
    got = paramio.load(path, rank=1, world_size=2, split=["w=1", "*=0"])  # the first match wins
    np.testing.assert_array_equal(got["w"], a[:, 4:])
    np.testing.assert_array_equal(got["v"], (a + 1)[2:])


def test_splat_entries_split_too(tmp_path: Path) -> None:
    index = ParameterIndex()
    index.add_splat("s", np.array([1.5], np.float32).tobytes(), 4 * 24, metadata=b"")
    entry = index["s"]
    from paramio.core.tensor import TensorInfo

    typed = entry.replace(declared_tensor=TensorInfo("float32", (4, 6)))
    got = paramio.load([typed], rank=1, world_size=3, split={"s": 1})
    np.testing.assert_array_equal(got["s"], np.full((4, 2), 1.5, np.float32))


def test_stream_and_async_take_the_same_arguments(tmp_path: Path) -> None:
    a = np.arange(64, dtype=np.float32).reshape(8, 8)
    path = _write(tmp_path, {"w": a}, "safetensors")
    streamed = dict(paramio.loading.stream(path, rank=3, world_size=4, split={"w": 1}))
    np.testing.assert_array_equal(streamed["w"], a[:, 6:])
    got = asyncio.run(paramio.loading.load_async(path, rank=0, world_size=2, split={"w": 0}))
    np.testing.assert_array_equal(got["w"], a[:4])


def test_budget_smaller_than_a_slice_streams_through_it(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    a = rng.standard_normal((256, 1024)).astype(np.float32)  # 1 MiB; a slice of 512 KiB
    path = _write(tmp_path, {"w": a}, "safetensors")
    got = paramio.load(_open(path), rank=1, world_size=2, split={"w": 1}, budget="64KiB", concurrency=2)
    np.testing.assert_array_equal(got["w"], a[:, 512:])
    assert sum(n for _, n in READS) == a.nbytes // 2
    assert got.summary.peak_in_flight <= 64 * 1024


@pytest.mark.parametrize("axis", [0, 1])
def test_a_local_file_read_row_by_row_gives_numpys_slices(tmp_path: Path, axis: int) -> None:
    """A local file (one ``pread`` per row, straight into place): the same slices as NumPy's."""
    rng = np.random.default_rng(9)
    a = rng.standard_normal((64, 48, 8)).astype(ml_dtypes.bfloat16)
    path = _write(tmp_path, {"w": a}, "safetensors")
    for rank in range(4):
        got = paramio.load(path, rank=rank, world_size=4, split={"w": axis}, budget="4KiB", concurrency=2)
        assert got["w"].tobytes() == np.split(a, 4, axis=axis)[rank].tobytes()


def test_a_file_that_shrinks_under_a_strided_load_names_file_and_key(tmp_path: Path) -> None:
    from paramio.core.errors import SourceError

    a = np.arange(64 * 256, dtype=np.float32).reshape(64, 256)
    path = _write(tmp_path, {"w": a}, "safetensors")
    index = ParameterIndex.open(path)
    with open(path, "r+b") as f:
        f.truncate(index["w"].offset + 20 * 1024)  # rows 20.. are gone
    with pytest.raises(SourceError, match=r"file shrank while reading") as info:
        paramio.load(index, rank=1, world_size=4, split={"w": 1})
    assert info.value.key == "w" and str(path) in str(info.value)
