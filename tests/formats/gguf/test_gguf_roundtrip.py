"""Round trips (GGUF -> IRPA -> GGUF, typed metadata), the writer's type choices, dequantisation."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import paramio.formats.gguf as pg
from conftest import ALL_VALUES, all_type_tensors, write_oracle
from paramio.core.entry import ParameterEntry
from paramio.core.errors import InvalidArgumentError, MissingExtraError
from paramio.core.tensor import TensorInfo
from paramio.formats import irpa
from paramio.formats.registry import read_path, write_path
from paramio.sources.memory import MemorySource

gguf = pytest.importorskip("gguf")
from gguf.constants import GGMLQuantizationType as Q  # noqa: E402


def _entry(key: str, data: bytes, tensor: TensorInfo | None) -> ParameterEntry:
    return ParameterEntry.data(key, MemorySource(data), 0, len(data), tensor=tensor)


@pytest.mark.interop
def test_gguf_to_irpa_to_gguf_is_lossless(tmp_path: Path) -> None:
    src = tmp_path / "in.gguf"
    write_oracle(src, all_type_tensors(), values=ALL_VALUES, alignment=64)
    c = read_path(src)
    mid = tmp_path / "mid.irpa"
    write_path(mid, pg.to_irpa_entries(c.entries), attributes=c.attributes, durable=False)
    back = read_path(mid)
    assert back.attributes == c.attributes
    assert [(e.key, e.tensor) for e in back.entries] == [(e.key, e.tensor) for e in c.entries]
    out = tmp_path / "out.gguf"
    write_path(out, back.entries, attributes=back.attributes, durable=False)
    assert out.read_bytes() == src.read_bytes()


def test_irpa_keeps_gguf_types_as_tensor_metadata(tmp_path: Path) -> None:
    """IREE's converter drops GGUF types; paramio's IRPA writer keeps them as TENSORv0 metadata."""
    e = _entry("q", bytes(18), TensorInfo("gguf.q4_0", (1, 32), {"ggml_type": 2}))
    irpa.write_path(str(tmp_path / "a.irpa"), [e], durable=False)
    (typed,) = irpa.read_path(str(tmp_path / "a.irpa")).entries
    assert typed.tensor == TensorInfo("gguf.q4_0", (1, 32), {"ggml_type": 2})
    assert typed.metadata.startswith(b"TENSORv0:")
    irpa.write_path(str(tmp_path / "b.irpa"), pg.to_irpa_entries([e]), durable=False)
    (again,) = irpa.read_path(str(tmp_path / "b.irpa")).entries
    assert again.metadata == typed.metadata


_SCALARS = {
    "u8": st.integers(0, 2**8 - 1),
    "i8": st.integers(-(2**7), 2**7 - 1),
    "u16": st.integers(0, 2**16 - 1),
    "i16": st.integers(-(2**15), 2**15 - 1),
    "u32": st.integers(0, 2**32 - 1),
    "i32": st.integers(-(2**31), 2**31 - 1),
    "u64": st.integers(0, 2**64 - 1),
    "i64": st.integers(-(2**63), 2**63 - 1),
    "f32": st.floats(width=32, allow_nan=False),
    "f64": st.floats(allow_nan=False),
    "bool": st.booleans(),
    "string": st.text(st.characters(blacklist_categories=["Cs"]), max_size=8)
    | st.binary(max_size=6).filter(lambda b: not _utf8(b)).map(lambda b: {"hex": b.hex()}),
}


def _utf8(b: bytes) -> bool:
    try:
        b.decode()
    except UnicodeDecodeError:
        return False
    return True


def _array(depth: int) -> st.SearchStrategy[dict[str, object]]:
    labels = list(_SCALARS) + (["array"] if depth < 3 else [])

    def items(label: str) -> st.SearchStrategy[dict[str, object]]:
        inner = _array(depth + 1) if label == "array" else _SCALARS[label]
        return st.lists(inner, max_size=4).map(lambda v: {"item_type": label, "value": v})

    return st.sampled_from(labels).flatmap(items)


_RECORD = st.sampled_from(list(_SCALARS)).flatmap(
    lambda t: _SCALARS[t].map(lambda v: {"type": t, "value": v})
) | _array(1).map(lambda a: {"type": "array", **a})


@settings(max_examples=60, deadline=None)
@given(
    kv=st.dictionaries(
        st.text(min_size=1, max_size=10).filter(lambda k: not k.startswith("split.") and k != "general.alignment"),
        _RECORD,
        max_size=6,
    )
)
def test_metadata_round_trip(tmp_path_factory: pytest.TempPathFactory, kv: dict[str, dict[str, object]]) -> None:
    p = tmp_path_factory.mktemp("kv") / "kv.gguf"
    pg.write_path(str(p), [], attributes={"gguf.kv": kv}, durable=False)
    assert pg.read_path(str(p)).attributes["gguf.kv"] == kv


@pytest.mark.interop
def test_invalid_utf8_string_survives(tmp_path: Path) -> None:
    p = tmp_path / "bad.gguf"
    w = gguf.GGUFWriter(str(p), "llama")
    w.add_key_value("bad", b"ok\xff\xfe", gguf.GGUFValueType.STRING)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    c = pg.read_path(str(p))
    assert c.attributes["gguf.kv"]["bad"] == {"type": "string", "value": {"hex": "6f6bfffe"}}  # type: ignore[index]
    out = tmp_path / "out.gguf"
    pg.write_path(str(out), c.entries, attributes=c.attributes, durable=False)
    assert out.read_bytes() == p.read_bytes()


def test_untyped_values_are_inferred(tmp_path: Path) -> None:
    p = tmp_path / "u.gguf"
    pg.write_path(
        str(p), [], attributes={"gguf.kv": {"s": "x", "i": 3, "big": 2**40, "f": 0.5, "b": True, "a": [1, 2]}}
    )
    kv = pg.read_path(str(p)).attributes["gguf.kv"]
    assert kv == {
        "s": {"type": "string", "value": "x"},
        "i": {"type": "i32", "value": 3},
        "big": {"type": "i64", "value": 2**40},
        "f": {"type": "f32", "value": 0.5},
        "b": {"type": "bool", "value": True},
        "a": {"type": "array", "item_type": "i32", "value": [1, 2]},
    }


@pytest.mark.parametrize(
    ("tensor", "length", "written"),
    [
        (None, 7, TensorInfo("int8", (7,))),
        (TensorInfo("uint8", (2, 3)), 6, TensorInfo("int8", (2, 3))),
        (TensorInfo("uint16", (3,)), 6, TensorInfo("int16", (3,))),
        (TensorInfo("float8_e4m3fn", (4,)), 4, TensorInfo("int8", (4,))),
        (TensorInfo("bool", (2,)), 2, TensorInfo("int8", (2,))),
        (TensorInfo("complex128", (1,)), 16, TensorInfo("int8", (16,))),
        (TensorInfo("float4_e2m1fn", (4,)), 2, TensorInfo("int8", (2,))),
        (TensorInfo("bfloat16", (2, 2)), 8, TensorInfo("bfloat16", (2, 2))),
        (TensorInfo("gguf.q8_0", (1, 32)), 34, TensorInfo("gguf.q8_0", (1, 32), {"ggml_type": 8})),
    ],
)
def test_writer_type_choices(tmp_path: Path, tensor: TensorInfo | None, length: int, written: TensorInfo) -> None:
    p = tmp_path / "t.gguf"
    data = bytes(range(length))
    pg.write_path(str(p), [_entry("x", data, tensor)], attributes={}, durable=False)
    (e,) = pg.read_path(str(p)).entries
    assert (e.tensor, e.read()) == (written, data)


@pytest.mark.parametrize(
    ("entries", "kv", "message"),
    [
        (
            [_entry("q", bytes(18), TensorInfo("gguf.q4_0", (1, 16)))],
            {},
            "innermost dimension 16 is not a multiple of the Q4_0 block size 32",
        ),
        ([_entry("f", bytes(8), TensorInfo("float32", (3,)))], {}, r"float32\[3\] takes 12 bytes but the entry has 8"),
        ([_entry("a", b"x", None), _entry("a", b"y", None)], {}, "duplicate tensor name"),
        ([_entry("z", b"", TensorInfo("gguf.q9_9", (0,)))], {}, "unknown GGUF tensor type 'gguf.q9_9'"),
        ([_entry("k", bytes(18), TensorInfo("gguf.q4_0", (1, 32), {"ggml_type": 3}))], {}, "has ggml id 2, not 3"),
        ([], {"x": {"type": "u8", "value": 256}}, "u8 value out of range: 256"),
        ([], {"x": {"type": "u77", "value": 1}}, "unknown GGUF value type 'u77'"),
        ([], {"x": {"type": "array", "value": []}}, "untyped empty array"),
        ([], {"x": {"type": "string", "value": 5}}, "string value expected"),
    ],
)
def test_writer_refuses(tmp_path: Path, entries: list[ParameterEntry], kv: dict[str, object], message: str) -> None:
    p = tmp_path / "bad.gguf"
    with pytest.raises(InvalidArgumentError, match=message):
        pg.write_path(str(p), entries, attributes={"gguf.kv": kv}, durable=False)
    assert list(tmp_path.iterdir()) == []  # nothing left behind


def test_alignment_comes_from_attributes(tmp_path: Path) -> None:
    p = tmp_path / "a.gguf"
    pg.write_path(
        str(p),
        [_entry("a", b"x", None), _entry("b", b"y", None)],
        attributes={"gguf.kv": {"general.alignment": {"type": "u32", "value": 256}}},
    )
    a, b = pg.read_path(str(p)).entries
    assert a.offset % 256 == 0 and b.offset - a.offset == 256
    with pytest.raises(InvalidArgumentError, match="alignment 48 is not a power of two"):
        pg.write_path(str(p), [], attributes={}, alignment=48)


@pytest.mark.interop
@pytest.mark.parametrize("qtype", [Q.Q8_0, Q.Q4_0, Q.Q4_K, Q.IQ2_XXS, Q.MXFP4, Q.BF16, Q.F16])
def test_dequantize_matches_gguf(tmp_path: Path, qtype: Q) -> None:
    rng = np.random.default_rng(int(qtype))
    block, size = gguf.constants.GGML_QUANT_SIZES[qtype]
    if qtype in (Q.Q8_0, Q.BF16, Q.F16):  # types gguf can quantise: real weights
        blocks = gguf.quants.quantize(rng.standard_normal((2, 256)).astype(np.float32), qtype)
    else:  # the rest: random blocks, decoded by both sides
        blocks = rng.integers(0, 256, (2, 256 // block * size), dtype=np.uint8)
    p = tmp_path / "q.gguf"
    write_oracle(p, [("w", blocks, qtype if blocks.dtype == np.uint8 else None)])
    (e,) = pg.read_path(str(p)).entries
    got = pg.dequantize(e)
    assert got.dtype == np.float32 and got.shape == (2, 256)
    np.testing.assert_array_equal(got, gguf.quants.dequantize(blocks, qtype).astype(np.float32))


def test_dequantize_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(InvalidArgumentError, match="not a GGUF tensor type: untyped"):
        pg.dequantize(_entry("u", b"1234", None))
    monkeypatch.setitem(sys.modules, "gguf.quants", None)
    with pytest.raises(
        MissingExtraError, match=r"dequantising Q8_0 needs the gguf package: pip install 'paramio\[gguf\]'"
    ):
        pg.dequantize(_entry("q", bytes(34), TensorInfo("gguf.q8_0", (1, 32))))
