"""Files written by the gguf package (the oracle) for the GGUF tests."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest

gguf = pytest.importorskip("gguf")
from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType, GGUFValueType  # noqa: E402

V = GGUFValueType

#: (key, gguf value type, value, sub type) covering every value type, nested arrays included.
ALL_VALUES: list[tuple[str, GGUFValueType, object, GGUFValueType | None]] = [
    ("t.u8", V.UINT8, 200, None),
    ("t.i8", V.INT8, -100, None),
    ("t.u16", V.UINT16, 60000, None),
    ("t.i16", V.INT16, -30000, None),
    ("t.u32", V.UINT32, 4_000_000_000, None),
    ("t.i32", V.INT32, -2_000_000_000, None),
    ("t.f32", V.FLOAT32, 1.5, None),
    ("t.bool", V.BOOL, True, None),
    ("t.string", V.STRING, "héllo ✓", None),
    ("t.u64", V.UINT64, 2**64 - 1, None),
    ("t.i64", V.INT64, -(2**63), None),
    ("t.f64", V.FLOAT64, -2.25e300, None),
    ("t.arr_u8", V.ARRAY, [1, 2, 255], V.UINT8),
    ("t.arr_i64", V.ARRAY, [-(2**63), 2**63 - 1], V.INT64),
    ("t.arr_f32", V.ARRAY, [0.5, -1.25, 3.0], V.FLOAT32),
    ("t.arr_bool", V.ARRAY, [True, False, True], V.BOOL),
    ("t.arr_str", V.ARRAY, ["a", "", "ü"], V.STRING),
    ("t.arr_nested", V.ARRAY, [[1, 2], [3]], None),
    ("t.arr_nested_str", V.ARRAY, [["x", "y"], ["z"]], None),
]

#: The typed records paramio should read for ALL_VALUES (f32 values are exact in binary).
EXPECTED_RECORDS: dict[str, dict[str, object]] = {
    "t.u8": {"type": "u8", "value": 200},
    "t.i8": {"type": "i8", "value": -100},
    "t.u16": {"type": "u16", "value": 60000},
    "t.i16": {"type": "i16", "value": -30000},
    "t.u32": {"type": "u32", "value": 4_000_000_000},
    "t.i32": {"type": "i32", "value": -2_000_000_000},
    "t.f32": {"type": "f32", "value": 1.5},
    "t.bool": {"type": "bool", "value": True},
    "t.string": {"type": "string", "value": "héllo ✓"},
    "t.u64": {"type": "u64", "value": 2**64 - 1},
    "t.i64": {"type": "i64", "value": -(2**63)},
    "t.f64": {"type": "f64", "value": -2.25e300},
    "t.arr_u8": {"type": "array", "item_type": "u8", "value": [1, 2, 255]},
    "t.arr_i64": {"type": "array", "item_type": "i64", "value": [-(2**63), 2**63 - 1]},
    "t.arr_f32": {"type": "array", "item_type": "f32", "value": [0.5, -1.25, 3.0]},
    "t.arr_bool": {"type": "array", "item_type": "bool", "value": [True, False, True]},
    "t.arr_str": {"type": "array", "item_type": "string", "value": ["a", "", "ü"]},
    "t.arr_nested": {
        "type": "array",
        "item_type": "array",
        "value": [{"item_type": "i32", "value": [1, 2]}, {"item_type": "i32", "value": [3]}],
    },
    "t.arr_nested_str": {
        "type": "array",
        "item_type": "array",
        "value": [{"item_type": "string", "value": ["x", "y"]}, {"item_type": "string", "value": ["z"]}],
    },
}

_PLAIN_NUMPY = {
    GGMLQuantizationType.F32: np.float32,
    GGMLQuantizationType.F16: np.float16,
    GGMLQuantizationType.F64: np.float64,
    GGMLQuantizationType.I8: np.int8,
    GGMLQuantizationType.I16: np.int16,
    GGMLQuantizationType.I32: np.int32,
    GGMLQuantizationType.I64: np.int64,
}


def tensor_for(qtype: GGMLQuantizationType, rows: int, seed: int) -> tuple[np.ndarray, GGMLQuantizationType | None]:
    """(array to pass to add_tensor, raw_dtype) for a tensor of `rows` x one or two blocks."""
    block, size = GGML_QUANT_SIZES[qtype]
    rng = np.random.default_rng(seed)
    if qtype in _PLAIN_NUMPY:
        cols = 3
        data = rng.integers(-100, 100, size=(rows, cols)).astype(_PLAIN_NUMPY[qtype])
        return data, None
    blocks = 2 if block <= 32 else 1
    raw = rng.integers(0, 256, size=(rows, blocks * size), dtype=np.uint8)
    return raw, qtype


def write_oracle(
    path: Path,
    tensors: Sequence[tuple[str, np.ndarray, GGMLQuantizationType | None]],
    *,
    values: Sequence[tuple[str, GGUFValueType, object, GGUFValueType | None]] = (),
    alignment: int | None = None,
    **writer_kwargs: object,
) -> None:
    w = gguf.GGUFWriter(str(path), "llama", **writer_kwargs)
    if alignment is not None:
        w.add_custom_alignment(alignment)
    for key, vtype, value, sub in values:
        w.add_key_value(key, value, vtype, sub_type=sub)
    for name, data, raw in tensors:
        w.add_tensor(name, data, raw_dtype=raw)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def all_type_tensors() -> list[tuple[str, np.ndarray, GGMLQuantizationType | None]]:
    """One tensor of every ggml type the gguf package knows (BF16 as raw bytes)."""
    return [(f"w.{q.name.lower()}", *tensor_for(q, 2, int(q))) for q in GGMLQuantizationType]


@pytest.fixture
def oracle_writer() -> Callable[..., None]:
    return write_oracle
