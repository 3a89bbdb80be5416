"""Files the safetensors library writes read identically in paramio, and the other way round."""

from __future__ import annotations

import json
import os
import struct
import tracemalloc
from pathlib import Path

import pytest

safetensors = pytest.importorskip("safetensors")
st_numpy = pytest.importorskip("safetensors.numpy")
import ml_dtypes  # noqa: E402
import numpy as np  # noqa: E402

from paramio import ParameterIndex  # noqa: E402
from paramio.core.entry import ParameterEntry  # noqa: E402
from paramio.core.errors import DuplicateKeyError, InvalidArgumentError, SourceError  # noqa: E402
from paramio.core.source import ByteSource  # noqa: E402
from paramio.core.tensor import TensorInfo  # noqa: E402
from paramio.formats.safetensors import ATTRIBUTE_METADATA, read_path, write_path  # noqa: E402
from paramio.formats.safetensors.layout import DTYPES  # noqa: E402
from paramio.sources.memory import MemorySource  # noqa: E402

pytestmark = pytest.mark.interop

CODE_OF = {d.name: d.code for d in DTYPES}

#: Every dtype the library's NumPy writer can take (ml_dtypes supplies bf16 and the fp8 kinds).
WRITABLE = [
    "bool", "uint8", "int8", "uint16", "int16", "uint32", "int32", "uint64", "int64",
    "float16", "float32", "float64", "complex64",
    "bfloat16", "float8_e4m3fn", "float8_e5m2", "float8_e8m0fnu", "float8_e4m3fnuz", "float8_e5m2fnuz",
]  # fmt: skip


def sample(name: str, shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """Random bytes viewed as `name` (every bit pattern, NaNs included: we compare bytes)."""
    dt = np.dtype(getattr(ml_dtypes, name, None) or getattr(np, name if name != "bool" else "bool_"))
    n = int(np.prod(shape)) * dt.itemsize
    raw = np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8)
    if name == "bool":
        raw &= 1
    return raw.view(dt).reshape(shape)


def library_view(data: bytes) -> dict[str, dict[str, object]]:
    return {k: v for k, v in safetensors.deserialize(data)}


def test_library_files_read_identically(tmp_path: Path) -> None:
    arrays = {f"t.{name}": sample(name, (3, 5) if i % 2 else (7,), i) for i, name in enumerate(WRITABLE)}
    arrays["scalar"] = np.array(2.5, dtype=np.float32)
    arrays["empty"] = np.zeros((0, 4), dtype=np.int32)
    p = tmp_path / "lib.safetensors"
    st_numpy.save_file(arrays, str(p), metadata={"format": "np", "note": "é"})
    lib = library_view(p.read_bytes())
    contents = read_path(str(p))
    assert contents.attributes == {ATTRIBUTE_METADATA: {"format": "np", "note": "é"}}
    assert sorted(e.key for e in contents.entries) == sorted(arrays)
    for e in contents.entries:
        assert e.origin == "safetensors"
        assert CODE_OF[e.dtype] == lib[e.key]["dtype"]
        assert list(e.shape) == lib[e.key]["shape"]
        assert e.read() == bytes(lib[e.key]["data"]) == arrays[e.key].tobytes()
        got = e.to_numpy()
        assert got.dtype == arrays[e.key].dtype and got.shape == arrays[e.key].shape
        assert got.tobytes() == arrays[e.key].tobytes()
    # entries come in the header's document order, which is the library's data order
    offsets = [e.offset for e in contents.entries]
    assert offsets == sorted(offsets)


def test_views_are_zero_copy_when_aligned(tmp_path: Path) -> None:
    p = tmp_path / "a.safetensors"
    st_numpy.save_file({"w": np.arange(16, dtype=np.float64), "b": np.arange(3, dtype=np.uint8)}, str(p))
    by_key = {e.key: e for e in read_path(str(p)).entries}
    w = by_key["w"].to_numpy()
    assert w.base is not None and not w.flags.writeable and not w.flags.owndata
    assert w.tolist() == list(range(16))


def test_unaligned_tensors_are_copied_correctly(tmp_path: Path) -> None:
    # A hand-made file whose f32 tensor starts at an odd offset: readable, copied, equal.
    values = np.arange(4, dtype=np.float32)
    head = json.dumps(
        {
            "u": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]},
            "f": {"dtype": "F32", "shape": [4], "data_offsets": [1, 17]},
        },
        separators=(",", ":"),
    )
    head += " " * ((-(8 + len(head) + 1) % 4) + 1)  # put the f32 data one byte past a 4-multiple
    p = tmp_path / "odd.safetensors"
    p.write_bytes(struct.pack("<Q", len(head)) + head.encode() + b"\x07" + values.tobytes())
    assert library_view(p.read_bytes())["f"]["shape"] == [4]
    f = {e.key: e for e in read_path(str(p)).entries}["f"]
    assert f.offset % 4 != 0
    assert f.to_numpy().tolist() == values.tolist() and f.to_numpy().flags.owndata


def test_subbyte_dtypes_from_the_library(tmp_path: Path) -> None:
    packed = np.arange(6, dtype=np.uint8)
    spec = safetensors.TensorSpec(dtype="float4_e2m1fn_x2", shape=(6,), data_ptr=packed.ctypes.data, data_len=6)
    p = tmp_path / "f4.safetensors"
    safetensors.serialize_file({"q": spec}, str(p))
    (e,) = read_path(str(p)).entries
    assert (e.dtype, e.shape, e.length, e.read()) == ("float4_e2m1fn", (12,), 6, packed.tobytes())
    assert e.to_numpy().dtype == np.uint8 and e.to_numpy().shape == (6,)  # packed bytes


def index_of(arrays: dict[str, np.ndarray]) -> ParameterIndex:
    index = ParameterIndex()
    for k, a in arrays.items():
        index.add_array(k, a)
    return index


def test_paramio_files_read_identically_in_the_library(tmp_path: Path) -> None:
    arrays = {f"p.{name}": sample(name, (2, 3, 2) if i % 3 else (5,), i) for i, name in enumerate(WRITABLE)}
    arrays["zero"] = np.zeros((0,), dtype=np.float32)
    arrays["scalar"] = np.array(7, dtype=np.int16)
    p = tmp_path / "ours.safetensors"
    write_path(str(p), index_of(arrays).values(), attributes={ATTRIBUTE_METADATA: {"format": "pt"}})
    lib = library_view(p.read_bytes())
    assert sorted(lib) == sorted(arrays)
    for k, a in arrays.items():
        if k.startswith("p."):
            assert lib[k]["dtype"] == CODE_OF[k.removeprefix("p.")]
        assert lib[k]["shape"] == list(a.shape)
        assert bytes(lib[k]["data"]) == a.tobytes()
    with safetensors.safe_open(str(p), framework="np") as f:
        assert f.metadata() == {"format": "pt"}
        assert f.keys() == sorted(arrays)
    # the library's NumPy loader knows no bf16/fp8: load the other dtypes through it
    loadable = {k: a for k, a in arrays.items() if _np_loadable(a)}
    q = tmp_path / "np.safetensors"
    write_path(str(q), index_of(loadable).values())
    loaded = st_numpy.load_file(str(q))
    assert loaded.keys() == loadable.keys() and len(loadable) >= 14
    for k, v in loaded.items():
        np.testing.assert_array_equal(v, arrays[k])
        assert v.dtype == arrays[k].dtype


def _np_loadable(a: np.ndarray) -> bool:
    return a.dtype in [np.dtype(t) for t in st_numpy._TYPES.values()]


def test_header_is_what_the_library_writes(tmp_path: Path) -> None:
    arrays = {"b": np.arange(3, dtype=np.int64), "a": np.ones((2, 2), dtype=np.float16)}
    lib = st_numpy.save(arrays, metadata={"k": "v"})
    (lib_n,) = struct.unpack_from("<Q", lib)
    p = tmp_path / "x.safetensors"
    lib_path = tmp_path / "lib.safetensors"
    lib_path.write_bytes(lib)
    contents = read_path(str(lib_path))
    write_path(str(p), contents.entries, attributes=contents.attributes)
    assert p.read_bytes() == lib
    assert lib_n % 8 == 0


def test_subbyte_and_untyped_and_splat_entries(tmp_path: Path) -> None:
    src = MemorySource(bytes(range(20)), name="<mem>")
    entries = [
        ParameterEntry.data("f4", src, 0, 3, tensor=TensorInfo("float4_e2m1fn", (6,))),
        ParameterEntry.data("f6a", src, 3, 3, tensor=TensorInfo("float6_e2m3fn", (4,))),
        ParameterEntry.data("f6b", src, 6, 6, tensor=TensorInfo("float6_e3m2fn", (2, 4))),
        ParameterEntry.data("raw", src, 12, 5),
        ParameterEntry.splat("ones", b"\x00\x00\x80\x3f", 16, tensor=TensorInfo("float32", (4,))),
        ParameterEntry.splat("zeros", b"\x00", 8, tensor=TensorInfo("int16", (2, 2))),
    ]
    p = tmp_path / "mixed.safetensors"
    write_path(str(p), entries)
    lib = library_view(p.read_bytes())
    assert sorted((k, v["dtype"], v["shape"]) for k, v in lib.items()) == sorted([
        ("f4", "F4", [6]), ("f6a", "F6_E2M3", [4]), ("f6b", "F6_E3M2", [2, 4]), ("raw", "U8", [5]),
        ("ones", "F32", [4]), ("zeros", "I16", [2, 2]),
    ])  # fmt: skip
    assert bytes(lib["raw"]["data"]) == bytes(range(12, 17))
    assert np.frombuffer(bytes(lib["ones"]["data"]), np.float32).tolist() == [1.0] * 4
    assert bytes(lib["zeros"]["data"]) == b"\x00" * 8
    back = read_path(str(p)).entries
    assert [(e.key, e.dtype, e.shape) for e in back] == [
        (e.key, e.dtype or "uint8", e.shape or (e.length,)) for e in entries
    ]


@pytest.mark.parametrize("alignment", [8, 64, 4096])
def test_alignment_keeps_the_file_valid_for_the_library(tmp_path: Path, alignment: int) -> None:
    arrays = {
        "odd": np.arange(3, dtype=np.uint8),
        "big": sample("float32", (64, 64)),
        "half": sample("float16", (5,)),
        "wide": sample("float64", (32, 16)),
        "bf": sample("bfloat16", (2, 64)),
    }
    p = tmp_path / "al.safetensors"
    write_path(str(p), index_of(arrays).values(), alignment=alignment)
    lib = library_view(p.read_bytes())
    for k, a in arrays.items():
        assert bytes(lib[k]["data"]) == a.tobytes()
    back = read_path(str(p)).entries
    assert [e.key for e in back] == list(arrays)  # header order is the order given
    (n,) = struct.unpack_from("<Q", p.read_bytes())
    assert (8 + n) % alignment == 0
    for e in back:
        if e.length % alignment == 0:
            assert e.offset % alignment == 0, e.key
        assert e.offset % np.dtype(e.to_numpy().dtype).itemsize == 0, e.key


def test_writer_refuses_what_safetensors_cannot_hold(tmp_path: Path) -> None:
    src = MemorySource(bytes(16), name="<mem>")
    p = tmp_path / "bad.safetensors"
    with pytest.raises(InvalidArgumentError, match="'complex128' has no safetensors code"):
        write_path(str(p), [ParameterEntry.data("c", src, 0, 16, tensor=TensorInfo("complex128", (1,)))])
    with pytest.raises(InvalidArgumentError, match=r"F32 \[3\] needs 12 bytes but the entry holds 16"):
        write_path(str(p), [ParameterEntry.data("f", src, 0, 16, tensor=TensorInfo("float32", (3,)))])
    with pytest.raises(InvalidArgumentError, match="needs 1.5 bytes"):
        write_path(str(p), [ParameterEntry.data("f", src, 0, 2, tensor=TensorInfo("float4_e2m1fn", (3,)))])
    with pytest.raises(DuplicateKeyError):
        write_path(str(p), [ParameterEntry.data("k", src, 0, 1), ParameterEntry.data("k", src, 1, 1)])
    with pytest.raises(InvalidArgumentError, match="reserved"):
        write_path(str(p), [ParameterEntry.data("__metadata__", src, 0, 1)])
    with pytest.raises(InvalidArgumentError, match="must map strings to strings"):
        write_path(str(p), [], attributes={ATTRIBUTE_METADATA: {"a": 1}})
    with pytest.raises(InvalidArgumentError, match="not a positive power of two"):
        write_path(str(p), [], alignment=48)
    with pytest.raises(InvalidArgumentError, match="not valid UTF-8"):
        write_path(str(p), [ParameterEntry.data("bad\udcff", src, 0, 1)])
    assert os.listdir(tmp_path) == []


class _FailingSource(ByteSource):
    name = "<failing>"

    @property
    def size(self) -> int:
        return 1 << 20

    def view(self, offset: int, length: int) -> memoryview:
        raise SourceError("disk on fire", path=self.name, offset=offset)


def test_a_failed_write_leaves_nothing_behind(tmp_path: Path) -> None:
    p = tmp_path / "out.safetensors"
    p.write_bytes(b"old")
    good = ParameterEntry.data("a", MemorySource(bytes(8)), 0, 8)
    with pytest.raises(SourceError, match="disk on fire"):
        write_path(str(p), [good, ParameterEntry.data("b", _FailingSource(), 0, 1 << 20)])
    assert os.listdir(tmp_path) == ["out.safetensors"] and p.read_bytes() == b"old"


def test_writing_streams_in_bounded_memory(tmp_path: Path) -> None:
    size = 96 << 20
    entries = [ParameterEntry.splat("big", b"\x01\x02\x03\x04", size, tensor=TensorInfo("uint32", (size // 4,)))]
    tracemalloc.start()
    try:
        write_path(str(tmp_path / "big.safetensors"), entries, durable=False)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 40 << 20
    (e,) = read_path(str(tmp_path / "big.safetensors")).entries
    assert e.length == size and bytes(e.memoryview()[size - 8 :]) == b"\x01\x02\x03\x04" * 2


def test_progress_counts_every_byte(tmp_path: Path) -> None:
    seen: list[int] = []
    arrays = {"a": sample("float32", (100,)), "b": sample("int8", (7,))}
    write_path(str(tmp_path / "p.safetensors"), index_of(arrays).values(), progress=seen.append)
    assert sum(seen) == 407
