"""Declare: an archive's typed entries as ``util.global`` declarations a program can use.

Each entry with a dtype paramio can spell in MLIR and a shape becomes
``util.global private @name = #flow.parameter.named<"scope"::"key"> : tensor<...>``, built and
printed by the bindings (so the text is what IREE parses). Names are the keys made into MLIR
bare identifiers (``[A-Za-z_][A-Za-z0-9_$.]*``: other characters become ``_``) and made unique
with ``_1``, ``_2`` ... suffixes. Entries without a type, with a quantised or sub-byte dtype, or
with a name IREE cannot print are listed as skipped, with the reason.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from paramio.core.errors import InvalidArgumentError
from paramio.index.provider import Provider
from paramio.mlir._bindings import bindings
from paramio.mlir.elements import element_by_dtype, tensor_type_text
from paramio.mlir.module import parameter_ref_text

__all__ = ["Declaration", "Declarations", "declare_parameters", "symbol_name"]

_FIRST = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_")
_REST = _FIRST | set("0123456789$.")


@dataclasses.dataclass(frozen=True, slots=True)
class Declaration:
    symbol: str
    scope: str
    key: str
    type: str
    text: str


@dataclasses.dataclass(frozen=True, slots=True)
class Declarations:
    declared: tuple[Declaration, ...]
    skipped: tuple[tuple[str, str, str], ...]  # (scope, key, reason)

    def text(self) -> str:
        return "".join(d.text + "\n" for d in self.declared)


def symbol_name(key: str) -> str:
    """`key` as an MLIR bare identifier: characters outside ``[A-Za-z0-9_$.]`` become ``_``,
    and a leading digit, ``$`` or ``.`` gets a ``_`` in front."""
    out = "".join(c if c in _REST else "_" for c in key) or "_"
    return out if out[0] in _FIRST else "_" + out


def declare_parameters(
    provider: Provider, *, scopes: Sequence[str] | None = None, visibility: str = "private", mutable: bool = False
) -> Declarations:
    """Declarations for every typed entry of `provider` (all scopes, or `scopes`), in order."""
    if visibility not in ("private", "public", "nested"):
        raise InvalidArgumentError(f"visibility {visibility!r}: expected private, public or nested")
    ir = bindings()
    context = ir.Context()
    taken: set[str] = set()
    declared: list[Declaration] = []
    skipped: list[tuple[str, str, str]] = []
    with context, ir.Location.unknown():
        module = ir.Module.create()
        for scope in provider.scopes if scopes is None else scopes:
            for entry in provider.entries(scope):
                key = entry.key
                info = entry.tensor
                if info is None:
                    skipped.append((scope, key, "no dtype/shape recorded"))
                    continue
                element = element_by_dtype(info.dtype)
                if element is None:
                    skipped.append((scope, key, f"dtype {info.dtype} has no MLIR element type"))
                    continue
                type_text = tensor_type_text(element, info.shape)
                try:
                    ref = parameter_ref_text(scope, key, type_text)
                except InvalidArgumentError as exc:
                    skipped.append((scope, key, str(exc)))
                    continue
                name = _unique(symbol_name(key), taken)
                attrs = {
                    "sym_name": ir.StringAttr.get(name),
                    "sym_visibility": ir.StringAttr.get(visibility),
                    "type": ir.TypeAttr.get(ir.Type.parse(type_text)),
                    "initial_value": ir.Attribute.parse(ref),
                }
                if mutable:
                    attrs["is_mutable"] = ir.UnitAttr.get()
                op = ir.Operation.create("util.global", attributes=attrs, ip=ir.InsertionPoint(module.body))
                declared.append(Declaration(name, scope, key, type_text, str(op)))
        module.operation.verify()
    return Declarations(tuple(declared), tuple(skipped))


def _unique(base: str, taken: set[str]) -> str:
    name, n = base, 0
    while name in taken:
        n += 1
        name = f"{base}_{n}"
    taken.add(name)
    return name
