"""safetensors layout facts as tables: the header frame, limits, dtype codes, shard names.

A file is ``u64 LE header length N``, ``N`` bytes of UTF-8 JSON (an object, optionally padded
with whitespace), then the data buffer. Every fact below is the one the reference library
(``safetensors`` 0.8, ``safetensors/src/tensor.rs``) enforces; probes are in the tests.
"""

from __future__ import annotations

from paramio.core.records import Record

TYPE_CHECKING = False  # `typing.TYPE_CHECKING` without importing typing (start-up: see paramio/__init__.py)
if TYPE_CHECKING:
    import re

__all__ = [
    "ATTRIBUTE_INDEX_METADATA",
    "ATTRIBUTE_METADATA",
    "DTYPES",
    "HEADER_LENGTH_SIZE",
    "MAX_HEADER_SIZE",
    "MAX_JSON_DEPTH",
    "StDType",
    "by_code",
    "by_name",
    "shard_name",
]

#: Bytes of the little-endian u64 that gives the header's length.
HEADER_LENGTH_SIZE = 8
#: The reference library refuses longer headers before reading them ("header too large").
MAX_HEADER_SIZE = 100_000_000
#: serde_json's recursion limit: a header nested this deep or deeper is refused (measured: the
#: top-level object is depth 1; depth 127 is accepted, 128 is not).
MAX_JSON_DEPTH = 128
#: The writer of the reference library pads the header to a multiple of this with spaces.
DEFAULT_HEADER_ALIGNMENT = 8
#: Largest value a ``usize`` field (shape, data_offsets) may hold on 64-bit platforms.
USIZE_MAX = (1 << 64) - 1

#: `FormatContents.attributes` key holding ``__metadata__`` (a ``dict[str, str]``); the writer
#: takes ``__metadata__`` from the same key.
ATTRIBUTE_METADATA = "safetensors.metadata"
#: Attributes key holding the ``metadata`` object of a sharded set's ``*.index.json``.
ATTRIBUTE_INDEX_METADATA = "safetensors.index_metadata"


class StDType(Record):
    """One safetensors dtype: its header code, paramio's name for it, and bits per element."""

    __slots__ = ("code", "name", "bits")
    __match_args__ = __slots__
    code: str
    name: str
    bits: int

    def __init__(self, code: str, name: str, bits: int) -> None:
        object.__setattr__(self, "code", code)
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "bits", bits)


#: Every dtype safetensors 0.8 knows, in the library's own (alignment) order.
DTYPES: tuple[StDType, ...] = (
    StDType("BOOL", "bool", 8),
    StDType("F4", "float4_e2m1fn", 4),
    StDType("F6_E2M3", "float6_e2m3fn", 6),
    StDType("F6_E3M2", "float6_e3m2fn", 6),
    StDType("U8", "uint8", 8),
    StDType("I8", "int8", 8),
    StDType("F8_E5M2", "float8_e5m2", 8),
    StDType("F8_E4M3", "float8_e4m3fn", 8),
    StDType("F8_E8M0", "float8_e8m0fnu", 8),
    StDType("F8_E4M3FNUZ", "float8_e4m3fnuz", 8),
    StDType("F8_E5M2FNUZ", "float8_e5m2fnuz", 8),
    StDType("I16", "int16", 16),
    StDType("U16", "uint16", 16),
    StDType("F16", "float16", 16),
    StDType("BF16", "bfloat16", 16),
    StDType("I32", "int32", 32),
    StDType("U32", "uint32", 32),
    StDType("F32", "float32", 32),
    StDType("C64", "complex64", 64),
    StDType("F64", "float64", 64),
    StDType("I64", "int64", 64),
    StDType("U64", "uint64", 64),
)

_BY_CODE = {d.code: d for d in DTYPES}
_BY_NAME = {d.name: d for d in DTYPES}


def by_code(code: str) -> StDType | None:
    """The dtype with header code `code` (case-sensitive, as the library), or None."""
    return _BY_CODE.get(code)


def by_name(name: str) -> StDType | None:
    """The dtype paramio calls `name`, or None when safetensors has no code for it."""
    return _BY_NAME.get(name)


#: ``model-00001-of-00003.safetensors``: Hugging Face's shard file names (`SHARD_RE`, compiled
#: on first use: reading a file never asks, and `re` costs a listing ~1.5 ms to import).
_SHARD_PATTERN = r"^(?P<prefix>.*)-(?P<index>\d+)-of-(?P<count>\d+)\.safetensors$"
if TYPE_CHECKING:
    SHARD_RE: re.Pattern[str]


def __getattr__(name: str) -> object:
    if name == "SHARD_RE":
        import re

        pattern = globals()["SHARD_RE"] = re.compile(_SHARD_PATTERN)
        return pattern
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


INDEX_SUFFIX = ".safetensors.index.json"


def is_index_path(path: str) -> bool:
    """Whether `path` names a sharded set's index file (any case, as IREE matches extensions)."""
    return path.lower().endswith(INDEX_SUFFIX)


FILE_SUFFIX = ".safetensors"
#: Hugging Face writes five-digit shard numbers.
SHARD_DIGITS = 5


def shard_name(prefix: str, index: int, count: int, digits: int = SHARD_DIGITS) -> str:
    """``{prefix}-{index}-of-{count}.safetensors``, numbers zero-padded, 1-based."""
    return f"{prefix}-{index:0{digits}d}-of-{count:0{digits}d}{FILE_SUFFIX}"
