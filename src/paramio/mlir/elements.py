"""MLIR element types <-> paramio dtype names, and the storage size of a tensor type.

One table serves export (a global's type becomes ``TENSORv0`` dtype/shape metadata), import (a
value's byte length is checked against the type) and declare (an entry's dtype becomes the
``tensor<...>`` of a global). Sizes follow IREE's serializer: every element takes whole bytes
(``i1`` one byte per element, as ``iree-io-export-parameters`` and ``dense_resource`` store it).
Integers are written signless (``i8``) on the way out, as IREE programs use them; ``ui8``/``si8``
are read too.
"""

from __future__ import annotations

import dataclasses

from paramio.core.errors import InvalidArgumentError

__all__ = ["ElementType", "TensorType", "element_by_dtype", "element_by_mlir", "tensor_type_text"]


@dataclasses.dataclass(frozen=True, slots=True)
class ElementType:
    """One element type: its MLIR spelling, paramio dtype name and bytes per element."""

    mlir: str
    dtype: str
    size: int
    #: IREE's parameter export serializes it (complex has no serializer in IREE 3.13).
    exportable: bool = True
    #: ... also from a ``dense_resource`` (IREE 3.13: "unhandled float element bit width 8" for f8).
    resource_exportable: bool = True
    #: a plain int or float whose splat `dense<v>` paramio writes on import.
    scalar: str = ""  # "int", "uint", "bool", "float" or "" (no scalar form)


_TABLE: tuple[ElementType, ...] = (
    ElementType("i1", "bool", 1, scalar="bool"),
    ElementType("i8", "int8", 1, scalar="int"),
    ElementType("i16", "int16", 2, scalar="int"),
    ElementType("i32", "int32", 4, scalar="int"),
    ElementType("i64", "int64", 8, scalar="int"),
    ElementType("f16", "float16", 2, scalar="float"),
    ElementType("bf16", "bfloat16", 2, scalar="float"),
    ElementType("f32", "float32", 4, scalar="float"),
    ElementType("f64", "float64", 8, scalar="float"),
    ElementType("complex<f32>", "complex64", 8, exportable=False),
    ElementType("complex<f64>", "complex128", 16, exportable=False),
    ElementType("f8E4M3FN", "float8_e4m3fn", 1, resource_exportable=False),
    ElementType("f8E5M2", "float8_e5m2", 1, resource_exportable=False),
    ElementType("f8E4M3FNUZ", "float8_e4m3fnuz", 1, resource_exportable=False),
    ElementType("f8E5M2FNUZ", "float8_e5m2fnuz", 1, resource_exportable=False),
    ElementType("f8E8M0FNU", "float8_e8m0fnu", 1, resource_exportable=False),
)
# Read, never written: explicitly signed and unsigned integers.
_READ_ONLY: tuple[ElementType, ...] = (
    ElementType("si8", "int8", 1, scalar="int"),
    ElementType("si16", "int16", 2, scalar="int"),
    ElementType("si32", "int32", 4, scalar="int"),
    ElementType("si64", "int64", 8, scalar="int"),
    ElementType("ui8", "uint8", 1, scalar="uint"),
    ElementType("ui16", "uint16", 2, scalar="uint"),
    ElementType("ui32", "uint32", 4, scalar="uint"),
    ElementType("ui64", "uint64", 8, scalar="uint"),
)
_BY_MLIR = {e.mlir: e for e in (*_TABLE, *_READ_ONLY)}
_BY_DTYPE = {e.dtype: e for e in _TABLE}
# Unsigned dtypes declare as signless integers of the same width.
_BY_DTYPE.update(
    {"uint8": _BY_MLIR["i8"], "uint16": _BY_MLIR["i16"], "uint32": _BY_MLIR["i32"], "uint64": _BY_MLIR["i64"]}
)


def element_by_mlir(name: str) -> ElementType | None:
    """The element type printed as `name` (``f32``, ``i1``, ``complex<f32>``), or None."""
    return _BY_MLIR.get(name)


def element_by_dtype(dtype: str) -> ElementType | None:
    """The MLIR element type a paramio dtype declares as, or None (quantised, sub-byte)."""
    return _BY_DTYPE.get(dtype)


@dataclasses.dataclass(frozen=True, slots=True)
class TensorType:
    """A statically shaped tensor type: its text, element and shape."""

    text: str
    element: ElementType
    shape: tuple[int, ...]

    @property
    def count(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n

    @property
    def nbytes(self) -> int:
        """Storage bytes, as IREE's serializer counts them."""
        return self.count * self.element.size


def tensor_type_text(element: ElementType, shape: tuple[int, ...]) -> str:
    """``tensor<2x3xf32>`` for `shape` (2, 3) of f32; ``tensor<f32>`` for a scalar."""
    for d in shape:
        if d < 0:
            raise InvalidArgumentError(f"shape {list(shape)} has a negative dimension")
    dims = "".join(f"{d}x" for d in shape)
    return f"tensor<{dims}{element.mlir}>"
