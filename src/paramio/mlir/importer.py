"""Import: ``#flow.parameter.named`` globals + parameter files -> values inside the module.

Each global whose reference names a loaded scope and a key it holds gets the value as a
``dense_resource`` blob (a splat entry whose pattern is one element becomes ``dense<v>``), from
anything `paramio.Provider` opens: IRPA, safetensors, GGUF (quantised tensors as their raw
bytes, the ggml type recorded in a ``paramio.dtype`` attribute on the global), sharded sets.
A value must be exactly the size the global's type needs: a mismatch is an error naming the
key and both sizes (IREE's import pass requires the same; its runtime would silently take the
first bytes of a longer one). References to scopes or keys that are not loaded are left as they
are, as IREE's import pass leaves them.

The blobs borrow the files' mapped bytes (`DenseResourceElementsAttr.get_from_buffer` keeps a
reference, it does not copy), so memory stays that of the module being written: keep the
provider alive until the module is saved (`MlirModule.keep_alive` does).
"""

from __future__ import annotations

import dataclasses
import fnmatch
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from paramio.core.dtypes import numpy_dtype
from paramio.core.entry import ParameterEntry
from paramio.core.errors import InvalidArgumentError, ParameterNotFoundError
from paramio.index.provider import Provider
from paramio.mlir._bindings import bindings
from paramio.mlir.elements import ElementType, element_by_dtype
from paramio.mlir.module import GlobalOp, MlirModule, ParameterRef, parameter_ref

__all__ = ["ImportReport", "Imported", "LeftAlone", "import_parameters"]


@dataclasses.dataclass(frozen=True, slots=True)
class Imported:
    symbol: str
    scope: str
    key: str
    nbytes: int
    kind: str  # "resource" or "splat"


@dataclasses.dataclass(frozen=True, slots=True)
class LeftAlone:
    """A reference that stays a reference, and why."""

    symbol: str
    scope: str
    key: str
    reason: str


@dataclasses.dataclass(frozen=True, slots=True)
class ImportReport:
    imported: tuple[Imported, ...]
    left: tuple[LeftAlone, ...]


def import_parameters(
    module: MlirModule,
    provider: Provider,
    *,
    keys: Sequence[str] = (),
    maximum_size: int | None = None,
) -> ImportReport:
    """Replace the parameter references of `module`'s globals with their values from `provider`.

    `keys` are globs over keys (default: all); values over `maximum_size` bytes stay references.
    The module is changed in place and keeps `provider` alive. Raises `InvalidArgumentError`
    when a value's size differs from its global's type, naming the key and both sizes.
    """
    ir = bindings()
    imported: list[Imported] = []
    left: list[LeftAlone] = []
    module.keep_alive(provider)
    with module.context, ir.Location.unknown():
        for g in module.globals():
            if g.value_kind() != "parameter":
                continue
            ref = parameter_ref(str(g.value))
            assert ref is not None
            reason = _why_left(g, ref, provider, keys, maximum_size)
            if reason is not None:
                left.append(LeftAlone(g.symbol, ref.scope, ref.key, reason))
                continue
            entry, layer = provider.find(ref.scope, ref.key)
            t = g.tensor
            assert t is not None
            if entry.length != t.nbytes:
                where = layer.name if layer is not None else "overlay"
                raise InvalidArgumentError(
                    f"global @{g.symbol}: parameter {ref.scope}::{ref.key} holds {entry.length} bytes "
                    f"but {t.text} needs {t.nbytes}",
                    key=ref.key,
                    path=where,
                )
            kind = _attach(module, g, entry, t.element)
            imported.append(Imported(g.symbol, ref.scope, ref.key, entry.length, kind))
    return ImportReport(tuple(imported), tuple(left))


def _why_left(
    g: GlobalOp, ref: ParameterRef, provider: Provider, keys: Sequence[str], maximum_size: int | None
) -> str | None:
    if keys and not any(fnmatch.fnmatchcase(ref.key, k) for k in keys):
        return "not in --keys"
    if ref.config:
        return f"has a config ({ref.config}) paramio does not interpret"
    if g.tensor is None:
        return f"type {g.type} is not a static tensor of a known element type"
    if ref.scope not in provider.scopes:
        return f"no parameters loaded for scope {ref.scope!r}"
    try:
        provider.find(ref.scope, ref.key)
    except ParameterNotFoundError:
        return f"scope {ref.scope!r} has no key {ref.key!r}"
    if maximum_size is not None and g.tensor.nbytes > maximum_size:
        return f"{g.tensor.nbytes} bytes is over the maximum size {maximum_size}"
    return None


def _attach(module: MlirModule, g: GlobalOp, entry: ParameterEntry, element: ElementType) -> str:
    ir = bindings()
    assert g.tensor is not None
    if entry.is_splat:
        splat = _splat_attr(g.type, entry.splat_pattern, element)
        if splat is not None:
            g.set_value(splat)
            _record_dtype(g, entry, element)
            return "splat"
    data = entry.memoryview() if not entry.is_splat else memoryview(entry.read())
    if data.format != "B" or data.ndim != 1:
        data = data.cast("B")
    module.keep_alive(data)
    # Alignment = element size, as MLIR's own get_from_buffer and iree-turbine choose it.
    blob = ir.DenseResourceElementsAttr.get_from_buffer(data, g.symbol, g.type, alignment=element.size)
    g.set_value(blob)
    _record_dtype(g, entry, element)
    return "resource"


def _record_dtype(g: GlobalOp, entry: ParameterEntry, element: ElementType) -> None:
    """A quantised or otherwise foreign dtype rides along as ``paramio.dtype`` on the global."""
    ir = bindings()
    dtype = entry.dtype
    if dtype is not None and element_by_dtype(dtype) is None:
        g.op.attributes["paramio.dtype"] = ir.StringAttr.get(dtype)


def _splat_attr(t: Any, pattern: bytes, element: ElementType) -> Any | None:
    """``dense<v> : t`` for a one-element pattern, or None when it must be a blob (other pattern
    lengths, NaN payloads and non-plain types, whose exact bits a scalar may not keep)."""
    ir = bindings()
    if len(pattern) != element.size or not element.scalar:
        return None
    et = ir.RankedTensorType(t).element_type
    if element.scalar == "bool":
        if pattern not in (b"\x00", b"\x01"):
            return None
        return ir.DenseElementsAttr.get_splat(t, ir.IntegerAttr.get(et, pattern[0]))
    if element.scalar in ("int", "uint"):
        value = int.from_bytes(pattern, "little", signed=element.scalar == "int")
        return ir.DenseElementsAttr.get_splat(t, ir.IntegerAttr.get(et, value))
    number = float(np.frombuffer(pattern, numpy_dtype(element.dtype))[0])
    if math.isnan(number):
        return None
    return ir.DenseElementsAttr.get_splat(t, ir.FloatAttr.get(et, number))
