"""`slice_entry`: any box of any tensor is NumPy's slice, read as the box's bytes alone (the
path JAX shardings take; `test_jax_sharding.py` runs it on 8 devices in a child process)."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from paramio.core.entry import EntryKind, ParameterEntry
from paramio.core.errors import InvalidArgumentError
from paramio.core.source import ByteSource
from paramio.core.tensor import TensorInfo
from paramio.index.index import ParameterIndex
from paramio.loading.slices import slice_entry


class Bytes(ByteSource):
    """Bytes in memory, every byte asked for counted; `max_gap` > 0 merges reads (a URL's way)."""

    def __init__(self, data: bytes, gap: int) -> None:
        self.data, self.max_gap, self.name, self.asked = data, gap, "<counted>", 0

    @property
    def size(self) -> int:
        return len(self.data)

    def view(self, offset: int, length: int) -> memoryview:
        self.check_span(offset, length)
        self.asked += length
        return memoryview(self.data)[offset : offset + length]


DTYPES = [np.int8, np.float16, ml_dtypes.bfloat16, np.float32, np.float64]


@st.composite
def cases(draw: st.DrawFn) -> tuple[np.ndarray, tuple[tuple[int, int], ...]]:
    shape = tuple(draw(st.lists(st.integers(1, 6), min_size=1, max_size=4)))
    dtype = draw(st.sampled_from(DTYPES))
    a = np.arange(int(np.prod(shape)), dtype=np.int64).reshape(shape).astype(dtype)
    box = []
    for n in shape:
        lo = draw(st.integers(0, n))
        box.append((lo, draw(st.integers(lo, n))))
    return a, tuple(box)


@settings(max_examples=300, deadline=None)
@given(case=cases(), gap=st.sampled_from([0, 3, 1 << 16]), pad=st.integers(0, 9))
def test_any_box_is_numpys_slice_and_reads_only_its_bytes(
    case: tuple[np.ndarray, tuple[tuple[int, int], ...]], gap: int, pad: int
) -> None:
    a, box = case
    src = Bytes(b"\xee" * pad + a.tobytes() + b"\xee" * 5, gap)
    index = ParameterIndex()
    index.add_array("t", a)
    entry = index["t"].replace(source=src, offset=pad)
    piece = slice_entry("t", entry, box)
    want = a[tuple(slice(lo, hi) for lo, hi in box)]
    assert piece.length == want.nbytes and piece.shape == want.shape
    assert piece.to_numpy(copy=True).tobytes() == want.tobytes()
    if gap == 0:  # no merging: exactly the box's bytes
        assert src.asked == want.nbytes
    else:  # merged across gaps, never outside the tensor
        assert want.nbytes <= src.asked <= a.nbytes


def test_a_splat_box_is_its_pattern() -> None:
    entry = ParameterEntry.splat(key="s", pattern=np.float32(2.5).tobytes(), length=4 * 60)
    typed = entry.replace(declared_tensor=TensorInfo("float32", (3, 4, 5)))
    piece = slice_entry("s", typed, ((1, 3), (0, 4), (2, 4)))
    np.testing.assert_array_equal(piece.to_numpy(), np.full((2, 4, 2), 2.5, np.float32))


@pytest.mark.parametrize(
    ("info", "length", "box", "message"),
    [
        (TensorInfo("gguf.q8_0", (4, 128)), 4 * 4 * 34, ((0, 4), (16, 48)), "would cut its 32-element blocks"),
        (TensorInfo("float4_e2m1fn", (4, 3)), 6, ((0, 4), (1, 2)), "packs 4-bit elements"),
        (TensorInfo("float32", (4, 4)), 64, ((0, 5), (0, 4)), "slice 0:5 of axis 0 is outside shape"),
        (TensorInfo("float32", (4, 4)), 64, ((0, 4),), "a slice of 1 axes does not fit shape"),
        (TensorInfo("float32", (4, 4)), 60, ((0, 4), (0, 4)), "takes 64 bytes but the entry has 60"),
        (None, 64, ((0, 4),), "has no dtype and shape"),
    ],
)
def test_boxes_that_cannot_be_read_alone_are_refused(
    info: TensorInfo | None, length: int, box: tuple[tuple[int, int], ...], message: str
) -> None:
    entry = ParameterEntry(
        key="k", kind=EntryKind.DATA, length=length, source=Bytes(bytes(length), 0), declared_tensor=info
    )
    with pytest.raises(InvalidArgumentError, match=message):
        slice_entry("k", entry, box)


def test_quantised_boxes_on_block_boundaries_are_whole_blocks() -> None:
    raw = np.arange(4 * 4 * 34, dtype=np.int64).astype(np.uint8).reshape(4, 4 * 34)  # 4 rows of 4 Q8_0 blocks
    entry = ParameterEntry(
        key="q",
        kind=EntryKind.DATA,
        length=raw.nbytes,
        source=Bytes(raw.tobytes(), 0),
        declared_tensor=TensorInfo("gguf.q8_0", (4, 128)),
    )
    piece = slice_entry("q", entry, ((1, 3), (32, 96)))  # rows 1..3, blocks 1..3
    assert piece.read() == raw[1:3, 34:102].tobytes()
    assert piece.tensor == TensorInfo("gguf.q8_0", (2, 64))


@settings(max_examples=200, deadline=None)
@given(
    spans=st.lists(st.tuples(st.integers(0, 90), st.integers(0, 9)), max_size=12),
    gap=st.sampled_from([0, 4, 1 << 16]),
    data=st.data(),
)
def test_spans_of_any_lengths_read_back_to_back(spans: list[tuple[int, int]], gap: int, data: st.DataObject) -> None:
    """`SpansSource` with a length per span (the distinct slices of a sharded key, back to
    back; empty spans dropped): any range of it is those bytes of the entry."""
    from paramio.loading.slices import SpansSource

    raw = bytes(range(100))
    entry = ParameterEntry(key="k", kind=EntryKind.DATA, length=100, source=Bytes(raw, gap))
    spans = [(o, min(n, 100 - o)) for o, n in spans]
    src = SpansSource(entry, np.array([o for o, _ in spans], np.int64), np.array([n for _, n in spans], np.int64), "s")
    whole = b"".join(raw[o : o + n] for o, n in spans)
    assert src.size == len(whole)
    start = data.draw(st.integers(0, len(whole)))
    stop = data.draw(st.integers(start, len(whole)))
    out = bytearray(stop - start)
    assert src.readinto(start, out) == stop - start and bytes(out) == whole[start:stop]
