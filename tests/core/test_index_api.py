"""`ParameterIndex` as a superset of IREE's: one script, both classes, the same answers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

import paramio
from paramio import DuplicateKeyError, InvalidArgumentError, ParameterIndex, ParameterNotFoundError


def _script(cls: type, tmp_path: Path, tag: str) -> list[object]:
    """Written against IREE's API only; records what it observes."""
    seen: list[object] = []
    index = cls()
    index.reserve(8)
    index.add_buffer("raw", np.arange(16, dtype=np.uint8), readable=True, writable=False, metadata="hello")
    index.add_buffer("bytes", b"abcdef")
    index.add_splat("splat", np.float32(2.0), 40)
    index.add_splat("splat.meta", b"\x01\x02", 6, metadata="m")
    seen.append(len(index))
    for i in range(len(index)):
        e = index[i]
        seen.append((e.key, e.length, e.is_file, e.is_splat, bytes(e.metadata)))
        seen.append(bytes(e.splat_pattern) if e.is_splat else bytes(e.file_view))
    with pytest.raises(IndexError):
        index[len(index)]
    with pytest.raises(ValueError, match="Entry is not splat"):
        index[0].splat_pattern
    out = index.create_archive_file(str(tmp_path / f"{tag}.irpa"))
    seen.append([(k, e.length, e.is_splat) for k, e in out.items()])
    loaded = cls()
    loaded.load(str(tmp_path / f"{tag}.irpa"))
    seen.append([(k, e.length, bytes(e.metadata)) for k, e in loaded.items()])
    seen.append([bytes(e.file_view) for _, e in loaded.items() if e.is_file])
    seen.append(repr(loaded))
    return seen


@pytest.mark.interop
def test_same_script_same_results_as_iree(tmp_path: Path) -> None:
    rt = pytest.importorskip("iree.runtime")
    ours = _script(ParameterIndex, tmp_path, "ours")
    theirs = _script(rt.ParameterIndex, tmp_path, "theirs")
    # add_buffer of a NumPy array records dtype and shape in paramio (IREE stores none), unless
    # metadata is given, as here; everything observable through IREE's API is identical.
    assert ours == theirs
    assert (tmp_path / "ours.irpa").read_bytes() == (tmp_path / "theirs.irpa").read_bytes()


def test_lookup_by_key_and_position() -> None:
    index = ParameterIndex()
    index.add_buffer("a", b"1")
    index.add_buffer("b", b"22")
    assert index["b"].length == 2 and index[1].key == "b" and index[-1].key == "b"
    assert "a" in index and "z" not in index
    assert index.keys() == ["a", "b"] and list(index) == ["a", "b"]
    with pytest.raises(ParameterNotFoundError) as info:
        index["z"]
    assert isinstance(info.value, KeyError) and info.value.key == "z"
    assert str(info.value) == "entry 'z': no parameter found in index with this key"


def test_duplicate_policies() -> None:
    strict = ParameterIndex()
    strict.add_buffer("k", b"1")
    with pytest.raises(DuplicateKeyError, match="already in the index"):
        strict.add_buffer("k", b"2")
    for policy, expected_len, expected in (("first", 1, b"1"), ("last", 1, b"2"), ("keep", 2, b"1")):
        index = ParameterIndex(duplicates=policy)
        index.add_buffer("k", b"1")
        index.add_buffer("k", b"2")
        assert len(index) == expected_len
        assert index["k"].read() == expected


@pytest.mark.parametrize(("pattern", "length"), [(b"abc", 9), (b"", 4), (b"x" * 17, 17), (b"abcd", 10)])
def test_bad_splats_refused(pattern: bytes, length: int) -> None:
    with pytest.raises(InvalidArgumentError, match="splat|pattern must be limited to 16 bytes"):
        ParameterIndex().add_splat("s", pattern, length)


def test_add_buffer_records_dtype_and_shape() -> None:
    import ml_dtypes

    index = ParameterIndex()
    arr = np.arange(6, dtype=np.float32).reshape(2, 3).astype(ml_dtypes.bfloat16)
    index.add_buffer("bf", arr)
    assert index["bf"].tensor == paramio.TensorInfo("bfloat16", (2, 3))
    np.testing.assert_array_equal(index["bf"].to_numpy(), arr)
    index.add_buffer("scalar", np.array(3.5, dtype=np.float64))
    assert index["scalar"].to_numpy().shape == () and float(index["scalar"].to_numpy()) == 3.5


@pytest.mark.parametrize(
    "dtype",
    [
        "bool",
        "int8",
        "uint16",
        "int32",
        "uint64",
        "float16",
        "float32",
        "float64",
        "complex64",
        "complex128",
        "bfloat16",
        "float8_e4m3fn",
        "float8_e5m2",
        "float8_e4m3fnuz",
        "float8_e5m2fnuz",
        "float8_e8m0fnu",
    ],
)
def test_typed_round_trip_through_archive(tmp_path: Path, dtype: str) -> None:
    from paramio.core.dtypes import numpy_dtype

    arr = (np.arange(24) % 5).astype(np.float32).astype(numpy_dtype(dtype)).reshape(2, 3, 4)
    index = ParameterIndex()
    index.add_array("t", arr)
    back = index.create_archive_file(tmp_path / "t.irpa")["t"].to_numpy()
    assert back.dtype == arr.dtype and back.shape == arr.shape
    assert back.tobytes() == arr.tobytes()


def test_create_archive_refuses_file_offset(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgumentError, match="file_offset must be 0"):
        ParameterIndex().create_archive_file(tmp_path / "x.irpa", file_offset=4096)


def test_failed_write_leaves_nothing(tmp_path: Path) -> None:
    from paramio.core.entry import ParameterEntry

    class Exploding(paramio.MemorySource):
        def view(self, offset: int, length: int) -> memoryview:
            raise OSError("disk on fire")

    index = ParameterIndex()
    index.add_buffer("ok", b"1234")
    index.add(ParameterEntry.data("bad", Exploding(b"xxxx"), 0, 4))
    target = tmp_path / "out.irpa"
    target.write_bytes(b"previous contents")
    with pytest.raises(OSError, match="disk on fire"):
        index.create_archive_file(target)
    assert target.read_bytes() == b"previous contents"
    assert [p.name for p in tmp_path.iterdir()] == ["out.irpa"]


keys = st.text(min_size=0, max_size=12)
entries = st.lists(
    st.tuples(
        keys,
        st.one_of(
            st.binary(min_size=0, max_size=300).map(lambda b: ("data", b)),
            st.tuples(st.sampled_from([1, 2, 4, 8, 16]), st.integers(0, 40), st.binary(min_size=16, max_size=16)).map(
                lambda t: ("splat", (t[2][: t[0]], t[0] * t[1]))
            ),
        ),
        st.binary(max_size=40),
    ),
    max_size=12,
    unique_by=lambda t: t[0],
)


@settings(max_examples=60, deadline=None)
@given(entries, st.sampled_from([1, 16, 64, 256]))
def test_round_trip_property(tmp_path_factory: pytest.TempPathFactory, items: list, alignment: int) -> None:
    tmp = tmp_path_factory.mktemp("rt")
    index = ParameterIndex()
    for key, (kind, payload), meta in items:
        if kind == "data":
            index.add_buffer(key, payload, metadata=meta)
        else:
            index.add_splat(key, payload[0], payload[1], metadata=meta)
    back = index.create_archive_file(tmp / "p.irpa", alignment=alignment)
    assert [(e.key, e.length, e.metadata, e.is_splat, e.read()) for e in back.values()] == [
        (e.key, e.length, e.metadata, e.is_splat, e.read()) for e in index.values()
    ]
    assert all(e.offset % alignment == 0 for e in back.values() if e.is_file and e.length)


class IndexAgainstDict(RuleBasedStateMachine):
    """The index under policy 'last' behaves like an insertion-ordered dict."""

    def __init__(self) -> None:
        super().__init__()
        self.index = ParameterIndex(duplicates="last")
        self.model: dict[str, bytes] = {}

    @rule(key=st.sampled_from("abcdef"), value=st.binary(max_size=8))
    def add(self, key: str, value: bytes) -> None:
        self.index.add_buffer(key, value)
        self.model[key] = value

    @rule(key=st.sampled_from("abcdef"))
    def remove(self, key: str) -> None:
        if key in self.model:
            assert self.index.remove(key).read() == self.model.pop(key)
        else:
            with pytest.raises(KeyError):
                self.index.remove(key)

    @invariant()
    def same(self) -> None:
        assert self.index.keys() == list(self.model)
        assert all(self.index[k].read() == v for k, v in self.model.items())


TestIndexAgainstDict = IndexAgainstDict.TestCase
