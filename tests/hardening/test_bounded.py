"""Time and memory per header byte on hostile headers (issue 18, item 7), one test per class.

Each specimen is small on disk but made a naive reader do far more work: many dimensions,
many shard names, a long metadata string, many references to one range, wide nesting. The
bounds are per byte of input with generous margins (the machine running the suite may be
loaded); the figures in the comments are what `main` measured before the fix.
"""

from __future__ import annotations

import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import specimens as S

import paramio
from paramio.core.errors import FormatError, SourceError
from paramio.formats.registry import read_path

#: Generous per-byte bounds: the fixed code measures 10-100x below them, the old code far above.
SECONDS_PER_BYTE = 5e-6
BYTES_PER_BYTE = 16
FIXED_SECONDS = 2.0
FIXED_BYTES = 16 << 20


def _measure(fn: Callable[[], object]) -> tuple[float, int, object]:
    """(seconds, peak traced bytes, result or the exception raised) of `fn()`."""
    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        result: object = fn()
    except Exception as exc:  # noqa: BLE001 - the caller checks which
        result = exc
    seconds = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return seconds, peak, result


def _assert_bounded(path: Path, seconds: float, peak: int) -> None:
    size = sum(p.stat().st_size for p in path.parent.iterdir() if p.is_file())
    assert seconds <= FIXED_SECONDS + SECONDS_PER_BYTE * size, f"{seconds:.2f} s for {size} bytes"
    assert peak <= FIXED_BYTES + BYTES_PER_BYTE * size, f"{peak} bytes traced for {size} bytes"


def _list_and_read(path: Path) -> int:
    contents = read_path(str(path))
    n = 0
    for e in contents.entries:
        _ = e.key, e.tensor
        if not e.is_splat:
            e.read()
        n += 1
    return n


def _dump(path: Path) -> int:
    from paramio.cli.main import main

    return main(["dump", f"--parameters={path}"])


def test_gguf_tensor_dimensions_limited_as_ggml(tmp_path: Path) -> None:
    """main: 40,000 dimensions per tensor took 134 s, then a ValueError (int-to-str limit)."""
    path = S.gguf_many_dims(tmp_path / "dims.gguf", tensors=20, dims=40_000)
    seconds, peak, result = _measure(lambda: _list_and_read(path))
    assert isinstance(result, FormatError)
    assert "tensor has 40000 dimensions; GGUF allows at most 4" in str(result)
    assert "entry 't0' at offset 0x22" in str(result)  # the dimension count
    _assert_bounded(path, seconds, peak)


@pytest.mark.parametrize(
    ("dims", "message"),
    [
        ([2**63], "dimension 0 is 9223372036854775808, more than 2**63-1"),
        ([2**32, 2**31], "shape (4294967296, 2147483648) has 2**63-1 elements or more"),
        # innermost first, as gguf.cpp: a later 0 does not save an overflowing prefix
        ([2**62, 2**62, 0, 4], "shape (4611686018427387904, 4611686018427387904, 0, 4) has 2**63-1 elements"),
    ],
)
def test_gguf_element_counts_checked_as_ggml(tmp_path: Path, dims: list[int], message: str) -> None:
    """gguf.cpp's checks on ``ne`` (non-negative int64 dims, product below INT64_MAX, tested
    innermost first): both the vectorised table and the per-tensor loop refuse the same."""
    path = tmp_path / "ne.gguf"
    path.write_bytes(S.gguf_bytes([], [S.gguf_tensor(b"w", dims)]))
    with pytest.raises(
        FormatError,
        match="entry 'w' at offset 0x25: tensor " + message.replace("(", r"\(").replace(")", r"\)").replace("*", r"\*"),
    ):
        read_path(str(path))


def test_gguf_wide_nested_arrays_bounded(tmp_path: Path) -> None:
    """main: 300,000 empty arrays inside one value (12 bytes each) decoded into ~100 MB."""
    path = S.gguf_wide_nesting(tmp_path / "wide.gguf", count=300_000)
    seconds, peak, result = _measure(lambda: _list_and_read(path))
    assert isinstance(result, FormatError) and "more than 4096 nested arrays" in str(result)
    _assert_bounded(path, seconds, peak)


def test_gguf_nested_arrays_within_the_limit_still_read(tmp_path: Path) -> None:
    import gguf

    path = tmp_path / "nested.gguf"
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_array("nested", [[1, 2], [3]] * 100)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.close()
    kv = read_path(str(path)).attributes["gguf.kv"]
    assert isinstance(kv, dict)
    assert [x["value"] for x in kv["nested"]["value"][:2]] == [[1, 2], [3]]


def test_tensorv0_huge_dimensions_verify_in_linear_time(tmp_path: Path) -> None:
    """main: TENSORv0 metadata with 40,000 dims of 2**63-1 took 54 s in ``verify``. A shape
    NumPy cannot hold is not tensor metadata: the entry reads as bytes."""
    from paramio.cli.main import main

    path = S.irpa_huge_dims(tmp_path / "dims.irpa", dims=40_000)
    entry = paramio.ParameterIndex.open(path)["a"]
    assert entry.tensor is None and entry.to_numpy().dtype == np.uint8
    seconds, peak, rc = _measure(lambda: main(["verify", str(path)]))
    assert rc in (0, 1)
    _assert_bounded(path, seconds, peak)


@pytest.mark.parametrize(
    ("shape", "typed"),
    [
        ([2] * 62, True),
        ([2] * 64, False),
        ([1] * 65, False),
        ([2**62, 2], False),
        ([2**31, 2**31], True),
        ([0, 2**63], False),
    ],
)
def test_tensorv0_shapes_are_numpy_shapes(shape: list[int], typed: bool) -> None:
    from paramio.core.tensor import decode_tensor_metadata

    info = decode_tensor_metadata(S.tensor_metadata(shape))
    assert (info is not None) is typed
    if typed:
        assert info is not None and info.shape == tuple(shape)


def test_index_json_with_many_shard_names_orders_in_linear_time(tmp_path: Path) -> None:
    """main: 50,000 shard names took 26 s (100,000: 102 s) to sort before any was opened."""
    path = S.index_many_shards(tmp_path, shards=50_000)
    seconds, peak, result = _measure(lambda: read_path(str(path)))
    assert isinstance(result, SourceError) and "s0.safetensors" in str(result)
    _assert_bounded(path, seconds, peak)


def test_index_json_shard_numbers_past_the_int_digit_limit(tmp_path: Path) -> None:
    path = S.index_many_shards(tmp_path, shards=2, name="m-" + "9" * 5000 + "{}-of-2.safetensors")
    with pytest.raises(FormatError, match="no file name is longer than 255 bytes"):  # no ValueError from int()
        read_path(str(path))


def test_safetensors_long_metadata_string_in_linear_memory(tmp_path: Path) -> None:
    """main: a 5 MB ``__metadata__`` string took ~650 MB (20 MB: 2.4 GB RSS); the library
    itself reads the file, so paramio must too, with the same value."""
    import safetensors

    path = S.safetensors_long_metadata(tmp_path / "m.safetensors", size=5_000_000)
    seconds, peak, result = _measure(lambda: read_path(str(path)))
    assert not isinstance(result, Exception), result
    _assert_bounded(path, seconds, peak)
    with safetensors.safe_open(str(path), "np") as f:
        assert result.attributes["safetensors.metadata"] == f.metadata()  # type: ignore[attr-defined]


def test_safetensors_deep_metadata_still_refused_at_serde_depth(tmp_path: Path) -> None:
    for depth, ok in ((125, True), (126, False)):
        path = tmp_path / f"d{depth}.safetensors"
        # the tensor's object is depth 2; an ignored field nests `depth` more levels
        deep = b"[" * depth + b"]" * depth
        header = b'{"x": {"dtype": "F32", "shape": [0], "data_offsets": [0, 0], "e": ' + deep + b"}}"
        path.write_bytes(S.safetensors_bytes(header))
        if ok:
            read_path(str(path))
        else:
            with pytest.raises(FormatError, match="nests deeper than 127 levels"):
                read_path(str(path))


def test_irpa_names_sharing_one_range_are_refused_within_budget(tmp_path: Path) -> None:
    """main: 200 entries naming one 1 MiB range listed as 200 MiB of keys (20,000: 20 GB)."""
    path = S.irpa_shared_names(tmp_path / "names.irpa", entries=200)
    for op in (_list_and_read, _dump):
        seconds, peak, result = _measure(lambda op=op: op(path))  # type: ignore[misc]
        assert isinstance(result, FormatError) or result == 1, result
        _assert_bounded(path, seconds, peak)


def test_irpa_metadata_sharing_one_range_within_budget(tmp_path: Path) -> None:
    """main: 200 entries referencing one 1 MiB metadata range made 200 copies of it."""
    path = S.irpa_shared_metadata(tmp_path / "meta.irpa", entries=200)
    seconds, peak, result = _measure(lambda: _list_and_read(path))
    assert isinstance(result, FormatError) and "4x the file plus 1 MiB" in str(result)
    _assert_bounded(path, seconds, peak)


def test_irpa_small_shared_metadata_is_decoded_once(tmp_path: Path) -> None:
    """A writer that stores one TENSORv0 blob for many entries is legal and stays cheap: the
    entries share one bytes object and one decoded type, on both reading paths."""
    from paramio.formats.irpa.reader import read_archive
    from paramio.sources.file import FileSource

    path = S.irpa_shared_metadata(tmp_path / "dedup.irpa", entries=20_000, meta_size=64)
    seconds, peak, result = _measure(lambda: read_path(str(path)).entries)
    assert not isinstance(result, Exception), result
    _assert_bounded(path, seconds, peak)
    entries = list(result)  # type: ignore[call-overload]
    assert len(entries) == 20_000 and entries[0].tensor is not None and entries[0].tensor.shape == (2,)
    assert entries[0].metadata is entries[-1].metadata
    slow = read_archive(FileSource(str(path)))
    assert slow[0].metadata is slow[-1].metadata and slow[0].metadata == entries[0].metadata


def test_irpa_reference_budget_same_on_both_paths(tmp_path: Path) -> None:
    from paramio.formats.irpa.reader import read_archive
    from paramio.sources.file import FileSource

    path = S.irpa_shifted_metadata(tmp_path / "shifted.irpa", entries=100, meta_size=1 << 16)
    with pytest.raises(FormatError) as fast:
        read_path(str(path))
    with pytest.raises(FormatError) as slow:
        read_archive(FileSource(str(path)))
    assert str(fast.value) == str(slow.value)
    assert "4x the file plus 1 MiB" in str(fast.value)


def test_gguf_writer_refuses_what_the_reader_refuses(tmp_path: Path) -> None:
    from paramio.formats.gguf.kv import MAX_NESTED_ARRAYS

    index = paramio.ParameterIndex()
    index.add_array("w", np.zeros(4, np.float32))
    too_wide = {"gguf.kv": {"n": {"type": "array", "item_type": "array", "value": [[1]] * (MAX_NESTED_ARRAYS + 1)}}}
    with pytest.raises(paramio.core.errors.InvalidArgumentError, match="more than 4096 nested arrays"):
        paramio.write_path(str(tmp_path / "o.gguf"), index.values(), attributes=too_wide)
    ok = {"gguf.kv": {"n": {"type": "array", "item_type": "array", "value": [[1]] * MAX_NESTED_ARRAYS}}}
    paramio.write_path(str(tmp_path / "o.gguf"), index.values(), attributes=ok)
    assert len(read_path(str(tmp_path / "o.gguf")).attributes["gguf.kv"]["n"]["value"]) == MAX_NESTED_ARRAYS  # type: ignore[index]
