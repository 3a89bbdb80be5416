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

from paramio.core.dtypes import dtype_by_name
from paramio.core.errors import InvalidArgumentError
from paramio.formats.elements import IREE_NAMES, ElementName

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


def _element(name: ElementName) -> ElementType:
    d = dtype_by_name(name.dtype)
    f8 = name.mlir.startswith("f8")
    scalar = "" if f8 or d.kind == "complex" else d.kind  # "bool", "int", "uint" or "float"
    return ElementType(
        name.mlir, name.dtype, d.itemsize, exportable=d.kind != "complex", resource_exportable=not f8, scalar=scalar
    )


# Every name of the one table (`paramio.formats.elements.IREE_NAMES`) reads; a dtype declares
# as its canonical name, unsigned integers as the signless integer of the same width.
_BY_MLIR = {n.mlir: _element(n) for n in IREE_NAMES}
_BY_DTYPE = {n.dtype: _BY_MLIR[n.mlir] for n in reversed(IREE_NAMES)}
_BY_DTYPE.update({f"uint{b}": _BY_MLIR[f"i{b}"] for b in (8, 16, 32, 64)})


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
