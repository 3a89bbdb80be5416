"""The element types paramio knows, one table for every format and framework.

Names are NumPy's (``float32``, ``bfloat16``, ``float8_e4m3fn`` ...), the names IREE's
``TENSORv0`` metadata and turbine's ``PYTORCH`` metadata use. Formats map their own codes
(safetensors ``BF16``, ggml type 30, MLIR ``bf16``) onto these names in their own tables.
Sub-byte kinds (``float4_e2m1fn``, ``float6_*``) are stored packed: `bits` says how many bits
one element takes on disk, and they have no zero-copy NumPy view.
"""

from __future__ import annotations

import functools

from paramio.core.errors import InvalidArgumentError
from paramio.core.records import Record

TYPE_CHECKING = False  # `typing.TYPE_CHECKING` without importing typing (start-up: see paramio/__init__.py)
if TYPE_CHECKING:  # NumPy is imported where a view is made: reading a file needs none
    import numpy as np

__all__ = ["DType", "all_dtypes", "dtype_by_name", "dtype_of_numpy", "numpy_dtype"]


class DType(Record):
    """One element type: its name, bits per element on disk and the NumPy type that views it."""

    __slots__ = ("name", "bits", "kind", "numpy_name")
    __match_args__ = __slots__
    name: str
    bits: int
    kind: str  # "bool", "int", "uint", "float", "complex"
    numpy_name: str  # attribute of numpy or ml_dtypes

    def __init__(self, name: str, bits: int, kind: str, numpy_name: str) -> None:
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "bits", bits)
        object.__setattr__(self, "kind", kind)
        object.__setattr__(self, "numpy_name", numpy_name)

    @property
    def itemsize(self) -> int:
        """Bytes per element, or 0 for packed sub-byte kinds."""
        return self.bits // 8 if self.bits % 8 == 0 else 0

    @property
    def is_subbyte(self) -> bool:
        return self.bits < 8

    @property
    def is_floating_point(self) -> bool:
        return self.kind == "float"

    @property
    def is_complex(self) -> bool:
        return self.kind == "complex"

    @property
    def is_signed_integer(self) -> bool:
        return self.kind == "int"

    def nbytes(self, count: int) -> int:
        """Storage bytes for `count` elements (packed, rounded up, for sub-byte kinds)."""
        return (count * self.bits + 7) // 8

    def to_numpy(self) -> np.dtype[np.generic]:
        return numpy_dtype(self.name)


_TABLE: tuple[DType, ...] = (
    DType("bool", 8, "bool", "bool_"),
    DType("int8", 8, "int", "int8"),
    DType("uint8", 8, "uint", "uint8"),
    DType("int16", 16, "int", "int16"),
    DType("uint16", 16, "uint", "uint16"),
    DType("int32", 32, "int", "int32"),
    DType("uint32", 32, "uint", "uint32"),
    DType("int64", 64, "int", "int64"),
    DType("uint64", 64, "uint", "uint64"),
    DType("float16", 16, "float", "float16"),
    DType("bfloat16", 16, "float", "bfloat16"),
    DType("float32", 32, "float", "float32"),
    DType("float64", 64, "float", "float64"),
    DType("complex64", 64, "complex", "complex64"),
    DType("complex128", 128, "complex", "complex128"),
    DType("float8_e4m3fn", 8, "float", "float8_e4m3fn"),
    DType("float8_e5m2", 8, "float", "float8_e5m2"),
    DType("float8_e4m3fnuz", 8, "float", "float8_e4m3fnuz"),
    DType("float8_e5m2fnuz", 8, "float", "float8_e5m2fnuz"),
    DType("float8_e8m0fnu", 8, "float", "float8_e8m0fnu"),
    DType("float6_e2m3fn", 6, "float", "float6_e2m3fn"),
    DType("float6_e3m2fn", 6, "float", "float6_e3m2fn"),
    DType("float4_e2m1fn", 4, "float", "float4_e2m1fn"),
)

_BY_NAME = {d.name: d for d in _TABLE}
# Aliases other tools write for the same types.
_ALIASES = {"bool_": "bool", "float": "float32", "double": "float64", "half": "float16"}


def all_dtypes() -> tuple[DType, ...]:
    return _TABLE


def dtype_by_name(name: str) -> DType:
    """The `DType` called `name`. Raises `InvalidArgumentError` for unknown names."""
    d = _BY_NAME.get(_ALIASES.get(name, name))
    if d is None:
        raise InvalidArgumentError(f"unknown dtype {name!r}; known: {', '.join(_BY_NAME)}")
    return d


@functools.cache
def numpy_dtype(name: str) -> np.dtype[np.generic]:
    """The NumPy dtype for a paramio dtype name (ml_dtypes supplies bf16, fp8 and the rest)."""
    import numpy as np

    d = dtype_by_name(name)
    obj = getattr(np, d.numpy_name, None)
    if obj is None:
        import ml_dtypes  # only when a bf16/fp8/... view is asked for: it costs ~50 ms to import

        obj = getattr(ml_dtypes, d.numpy_name)
    result: np.dtype[np.generic] = np.dtype(obj)
    return result


@functools.cache
def _numpy_to_name() -> dict[np.dtype[np.generic], str]:
    out: dict[np.dtype[np.generic], str] = {}
    for d in _TABLE:
        try:
            out.setdefault(numpy_dtype(d.name), d.name)
        except AttributeError:  # an older ml_dtypes without this type
            continue
    return out


def dtype_of_numpy(dtype: np.dtype[np.generic] | type) -> DType:
    """The `DType` of a NumPy dtype. Raises `InvalidArgumentError` if paramio has no name for it."""
    import numpy as np

    nd = np.dtype(dtype)
    name = _numpy_to_name().get(nd.newbyteorder("=") if nd.byteorder == "<" else nd)
    if name is None:
        raise InvalidArgumentError(f"NumPy dtype {nd} has no paramio equivalent")
    return _BY_NAME[name]
