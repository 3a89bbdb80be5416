"""GGUF format facts as tables: magic, versions, metadata value types, the ggml type table.

The ggml type table is the CURRENT one (gguf-py 0.19 ``GGML_QUANT_SIZES``), not the stale table
IREE's parser carries (where ids 16..18 still mean I8/I16/I32 instead of IQ2_XXS/IQ2_XS/IQ3_XXS).
A test compares this table with the gguf package's, so a new ggml type shows up as a failure.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Sequence

from paramio.core.records import Record

__all__ = [
    "DEFAULT_ALIGNMENT",
    "GGML_MAX_DIMS",
    "GGML_TYPES",
    "GGML_BY_NAME",
    "GGMLType",
    "MAGIC",
    "NUMPY_TO_GGML",
    "SCALAR_FORMATS",
    "SPLIT_COUNT",
    "SPLIT_NO",
    "SPLIT_TENSORS_COUNT",
    "SUPPORTED_VERSIONS",
    "ValueType",
    "elements_fault",
    "WRITE_VERSION",
    "tensor_nbytes",
]

MAGIC = b"GGUF"
SUPPORTED_VERSIONS = (2, 3)
WRITE_VERSION = 3
DEFAULT_ALIGNMENT = 32
ALIGNMENT_KEY = "general.alignment"

#: Split-set keys (llama.cpp PR #6187): the shard number is 0-based, file names are 1-based.
SPLIT_NO = "split.no"
SPLIT_COUNT = "split.count"
SPLIT_TENSORS_COUNT = "split.tensors.count"
SPLIT_KEYS = (SPLIT_NO, SPLIT_COUNT, SPLIT_TENSORS_COUNT)
#: ``{stem}-{i:05d}-of-{n:05d}.gguf`` (gguf-py ``SHARD_NAME_FORMAT``).
#: The pattern of `SPLIT_NAME_FORMAT` (compiled on first use: reading a file needs no `re`).
_SPLIT_NAME = r"^(?P<stem>.*)-(?P<no>\d{5})-of-(?P<count>\d{5})\.gguf$"


def __getattr__(name: str) -> object:
    if name == "SPLIT_NAME":  # llama.cpp's split file names, as a compiled pattern
        import re

        return re.compile(_SPLIT_NAME, re.IGNORECASE)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


SPLIT_NAME_FORMAT = "{:s}-{:05d}-of-{:05d}.gguf"

#: Where paramio keeps GGUF metadata in `FormatContents.attributes`.
ATTRIBUTES_KEY = "gguf.kv"


class ValueType(enum.IntEnum):
    """Metadata value types (``gguf_type`` in ggml); names in attributes are the lowercase short forms."""

    U8 = 0
    I8 = 1
    U16 = 2
    I16 = 3
    U32 = 4
    I32 = 5
    F32 = 6
    BOOL = 7
    STRING = 8
    ARRAY = 9
    U64 = 10
    I64 = 11
    F64 = 12

    @property
    def label(self) -> str:
        return self.name.lower()


#: Fixed-size value types: struct format (little-endian) and NumPy dtype for bulk array reads.
SCALAR_FORMATS: dict[ValueType, tuple[struct.Struct, str]] = {
    ValueType.U8: (struct.Struct("<B"), "<u1"),
    ValueType.I8: (struct.Struct("<b"), "<i1"),
    ValueType.U16: (struct.Struct("<H"), "<u2"),
    ValueType.I16: (struct.Struct("<h"), "<i2"),
    ValueType.U32: (struct.Struct("<I"), "<u4"),
    ValueType.I32: (struct.Struct("<i"), "<i4"),
    ValueType.F32: (struct.Struct("<f"), "<f4"),
    ValueType.BOOL: (struct.Struct("<?"), "<u1"),
    ValueType.U64: (struct.Struct("<Q"), "<u8"),
    ValueType.I64: (struct.Struct("<q"), "<i8"),
    ValueType.F64: (struct.Struct("<d"), "<f8"),
}

VALUE_TYPE_BY_LABEL = {t.label: t for t in ValueType}

#: Integer ranges for checking values before packing them.
INT_RANGES: dict[ValueType, tuple[int, int]] = {
    ValueType.U8: (0, 0xFF),
    ValueType.I8: (-0x80, 0x7F),
    ValueType.U16: (0, 0xFFFF),
    ValueType.I16: (-0x8000, 0x7FFF),
    ValueType.U32: (0, 0xFFFF_FFFF),
    ValueType.I32: (-0x8000_0000, 0x7FFF_FFFF),
    ValueType.U64: (0, 0xFFFF_FFFF_FFFF_FFFF),
    ValueType.I64: (-0x8000_0000_0000_0000, 0x7FFF_FFFF_FFFF_FFFF),
}


class GGMLType(Record):
    """One ggml tensor type: id, name, elements per block, bytes per block, NumPy name if plain."""

    __slots__ = ("id", "name", "block_size", "type_size", "numpy_name")
    __match_args__ = __slots__
    id: int
    name: str
    block_size: int
    type_size: int
    numpy_name: str | None

    def __init__(self, id: int, name: str, block_size: int, type_size: int, numpy_name: str | None = None) -> None:
        object.__setattr__(self, "id", id)
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "block_size", block_size)
        object.__setattr__(self, "type_size", type_size)
        object.__setattr__(self, "numpy_name", numpy_name)

    @property
    def quantized(self) -> bool:
        return self.numpy_name is None

    @property
    def paramio_dtype(self) -> str:
        """The `TensorInfo.dtype` entries of this type get: a NumPy name or ``gguf.<name>``."""
        return self.numpy_name or f"gguf.{self.name.lower()}"


QK_K = 256

_TABLE: tuple[GGMLType, ...] = (
    GGMLType(0, "F32", 1, 4, "float32"),
    GGMLType(1, "F16", 1, 2, "float16"),
    GGMLType(2, "Q4_0", 32, 18),
    GGMLType(3, "Q4_1", 32, 20),
    # 4 (Q4_2) and 5 (Q4_3) were removed from ggml; files using them are rejected.
    GGMLType(6, "Q5_0", 32, 22),
    GGMLType(7, "Q5_1", 32, 24),
    GGMLType(8, "Q8_0", 32, 34),
    GGMLType(9, "Q8_1", 32, 40),
    GGMLType(10, "Q2_K", QK_K, 84),
    GGMLType(11, "Q3_K", QK_K, 110),
    GGMLType(12, "Q4_K", QK_K, 144),
    GGMLType(13, "Q5_K", QK_K, 176),
    GGMLType(14, "Q6_K", QK_K, 210),
    GGMLType(15, "Q8_K", QK_K, 292),
    GGMLType(16, "IQ2_XXS", QK_K, 66),
    GGMLType(17, "IQ2_XS", QK_K, 74),
    GGMLType(18, "IQ3_XXS", QK_K, 98),
    GGMLType(19, "IQ1_S", QK_K, 50),
    GGMLType(20, "IQ4_NL", 32, 18),
    GGMLType(21, "IQ3_S", QK_K, 110),
    GGMLType(22, "IQ2_S", QK_K, 82),
    GGMLType(23, "IQ4_XS", QK_K, 136),
    GGMLType(24, "I8", 1, 1, "int8"),
    GGMLType(25, "I16", 1, 2, "int16"),
    GGMLType(26, "I32", 1, 4, "int32"),
    GGMLType(27, "I64", 1, 8, "int64"),
    GGMLType(28, "F64", 1, 8, "float64"),
    GGMLType(29, "IQ1_M", QK_K, 56),
    GGMLType(30, "BF16", 1, 2, "bfloat16"),
    # 31..33 (Q4_0_4_4, Q4_0_4_8, Q4_0_8_8) and 36..38 (IQ4_NL_4_4 ...) were removed upstream.
    GGMLType(34, "TQ1_0", QK_K, 54),
    GGMLType(35, "TQ2_0", QK_K, 66),
    GGMLType(39, "MXFP4", 32, 17),
    GGMLType(40, "NVFP4", 64, 36),
    GGMLType(41, "Q1_0", 128, 18),
)

GGML_TYPES: dict[int, GGMLType] = {t.id: t for t in _TABLE}
GGML_BY_NAME: dict[str, GGMLType] = {t.paramio_dtype: t for t in _TABLE}

#: paramio dtype names with a ggml type of their own.
NUMPY_TO_GGML: dict[str, GGMLType] = {t.numpy_name: t for t in _TABLE if t.numpy_name is not None}
#: Types GGUF has no code for are written as the integer type of the same width (bytes unchanged).
SAME_WIDTH_INT: dict[int, GGMLType] = {1: GGML_TYPES[24], 2: GGML_TYPES[25], 4: GGML_TYPES[26], 8: GGML_TYPES[27]}


def tensor_nbytes(gtype: GGMLType, shape: tuple[int, ...]) -> int:
    """Bytes of a tensor of `shape` (row-major) stored as `gtype`; caller checks block divisibility."""
    n = 1
    for d in shape:
        n *= d
    return n // gtype.block_size * gtype.type_size


#: ggml's GGML_MAX_DIMS: ``gguf_init_from_file_impl`` (ggml/src/gguf.cpp) refuses a tensor info
#: with more dimensions ("invalid number of dimensions"), so no GGUF reader accepts one. A
#: bound here also keeps the shape's product small (four factors, each below 2**63).
GGML_MAX_DIMS = 4
_I64_MAX = (1 << 63) - 1


def elements_fault(dims: Sequence[int]) -> str | None:
    """What gguf.cpp refuses in ``ne`` (dims innermost first, as in the file), or None: a
    dimension above INT64_MAX (it reads them as int64, so they are negative), or an element
    count that reaches INT64_MAX (its test: ``INT64_MAX / ne[j] <= ne[0] * ... * ne[j-1]``)."""
    ne = [*dims, 1, 1, 1, 1][:GGML_MAX_DIMS]
    for j, d in enumerate(ne):
        if d > _I64_MAX:
            return f"dimension {j} is {d}, more than 2**63-1"
    n = ne[0]
    for d in ne[1:]:
        if d and _I64_MAX // d <= n:
            return f"shape ({', '.join(map(str, dims))}) has 2**63-1 elements or more"
        n *= d
    return None
