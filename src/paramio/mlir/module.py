"""An MLIR module read with IREE's bindings, its ``util.global`` ops, and parameter references.

`MlirModule.load` parses text (``.mlir``) or bytecode (``.mlirbc``; detected by its magic, not
its name) with ``iree.compiler.ir``; `save` prints text or writes bytecode through
`paramio.formats.output.AtomicOutput`, streaming, so a module is never held twice. Parse errors
become `FormatError` naming the file with MLIR's own diagnostics.

A ``#flow.parameter.named`` attribute has no Python class in the bindings, so `parameter_ref`
reads its printed form, ``#flow.parameter.named<"scope"::"key"[, {config}]>``, with a small
reader of exactly that grammar (not a search over the IR). IREE prints the strings raw, without
escapes, so scopes and keys with ``"``, ``\\`` or control characters cannot round-trip through
IREE's text; paramio refuses to write them (`parameter_ref_text`).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from typing import Any

from paramio.core.errors import FormatError, InvalidArgumentError
from paramio.mlir._bindings import bindings
from paramio.mlir.elements import TensorType, element_by_mlir

__all__ = ["GlobalOp", "MlirModule", "ParameterRef", "parameter_ref", "parameter_ref_text", "tensor_type_of"]

_PARAM_PREFIX = "#flow.parameter.named<"


@dataclasses.dataclass(frozen=True, slots=True)
class ParameterRef:
    """``#flow.parameter.named<"scope"::"key">``: where a global's value comes from at run time."""

    scope: str
    key: str
    #: the config dict's text (``{length = 64 : i64}``), or "" when there is none.
    config: str = ""


class GlobalOp:
    """One ``util.global``: its symbol, type and initial value.

    The bindings have no Python class for a complex ``dense<...>`` value: reading one raises
    `TypeError` (and reading it through a ``NamedAttribute`` aborts the process), so values are
    read only through `_read`, which turns that into "unreadable".
    """

    def __init__(self, op: Any) -> None:
        ir = bindings()
        self.op = op
        attrs = op.attributes
        self.symbol: str = ir.StringAttr(attrs["sym_name"]).value
        self.mutable: bool = "is_mutable" in attrs
        self.visibility: str = ir.StringAttr(attrs["sym_visibility"]).value if "sym_visibility" in attrs else "public"
        self.type: Any = ir.TypeAttr(attrs["type"]).value
        self.tensor: TensorType | None = tensor_type_of(self.type)
        self.has_value: bool = "initial_value" in attrs

    def _read(self) -> Any | None:
        if not self.has_value:
            return None
        try:
            return self.op.attributes["initial_value"]
        except TypeError:  # a complex dense<...>: no Python class for it
            return None

    @property
    def readable(self) -> bool:
        """Whether the initial value can be read through the bindings (see the class docstring)."""
        return self._read() is not None

    @property
    def value(self) -> Any:
        value = self._read()
        if value is None:
            raise InvalidArgumentError(f"global @{self.symbol}: its initial value cannot be read through the bindings")
        return value

    def value_kind(self) -> str:
        """``dense``, ``resource``, ``parameter``, ``elided``, ``other`` or ``none``."""
        if not self.has_value:
            return "none"
        ir = bindings()
        value = self._read()
        if value is None or isinstance(value, ir.DenseElementsAttr):
            return "dense"  # None: a complex dense<...>, the only value the bindings cannot read
        try:
            ir.DenseResourceElementsAttr(value)
        except ValueError:
            pass
        else:
            return "elided" if str(value).startswith("dense_resource<__elided__>") else "resource"
        if str(value).startswith(_PARAM_PREFIX):
            return "parameter"
        return "other"

    def set_value(self, value: Any) -> None:
        self.op.attributes["initial_value"] = value
        self.has_value = True

    def clear_value(self) -> None:
        del self.op.attributes["initial_value"]
        self.has_value = False


def tensor_type_of(t: Any) -> TensorType | None:
    """The `TensorType` of an MLIR type object, or None if it is not a static tensor paramio knows."""
    ir = bindings()
    if not isinstance(t, ir.RankedTensorType) and not ir.RankedTensorType.isinstance(t):
        return None
    rt = ir.RankedTensorType(t)
    if not rt.has_static_shape or rt.encoding is not None:
        return None
    element = element_by_mlir(str(rt.element_type))
    if element is None:
        return None
    return TensorType(str(rt), element, tuple(int(d) for d in rt.shape))


class MlirModule:
    """A parsed module and the context that owns it (keep both alive together)."""

    def __init__(self, module: Any, context: Any, path: str | None = None) -> None:
        self.module = module
        self.context = context
        self.path = path
        self._keep: list[object] = []  # buffers that resource blobs borrow

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> MlirModule:
        """Parse the text or bytecode file at `path`.

        Raises `FormatError` (MLIR's diagnostics) for a malformed file, `OSError` if unreadable.
        """
        ir = bindings()
        p = os.fspath(path)
        with open(p, "rb"):  # an unreadable file is the OSError it is, not a parse error
            pass
        context = ir.Context()
        try:
            module = ir.Module.parseFile(p, context)
        except ir.MLIRError as exc:
            raise FormatError(_diagnostics(exc), path=p) from exc
        return cls(module, context, p)

    @classmethod
    def parse(cls, text: str | bytes, *, name: str = "<string>") -> MlirModule:
        """Parse MLIR text or bytecode held in memory."""
        ir = bindings()
        context = ir.Context()
        try:
            module = ir.Module.parse(text, context)
        except ir.MLIRError as exc:
            raise FormatError(_diagnostics(exc), path=name) from exc
        return cls(module, context, name)

    def keep_alive(self, obj: object) -> None:
        self._keep.append(obj)

    def globals(self) -> Iterator[GlobalOp]:
        """Each top-level ``util.global``, in module order."""
        for op in list(self.module.body.operations):
            if op.operation.name == "util.global":
                yield GlobalOp(op.operation)

    def symbols(self) -> set[str]:
        ir = bindings()
        out: set[str] = set()
        for op in self.module.body.operations:
            if "sym_name" in op.operation.attributes:
                out.add(ir.StringAttr(op.operation.attributes["sym_name"]).value)
        return out

    def verify(self) -> None:
        """Raises `FormatError` with MLIR's diagnostics if the module does not verify."""
        ir = bindings()
        try:
            self.module.operation.verify()
        except ir.MLIRError as exc:
            raise FormatError(_diagnostics(exc), path=self.path) from exc

    def text(self) -> str:
        return str(self.module)

    def save(self, path: str | os.PathLike[str], *, bytecode: bool | None = None) -> None:
        """Write the module to `path` atomically: bytecode if `bytecode` (default: the name ends
        in ``.mlirbc``), else text with its ``dialect_resources`` section."""
        from paramio.formats.output import AtomicOutput

        p = os.fspath(path)
        binary = p.endswith(".mlirbc") if bytecode is None else bytecode
        out = AtomicOutput(p)
        with out:
            with os.fdopen(os.dup(out.fd), "wb") as f:
                if binary:
                    self.module.operation.write_bytecode(f)
                else:
                    self.module.operation.print(file=f, binary=True)
            out.commit()


def _diagnostics(exc: Any) -> str:
    diags = getattr(exc, "error_diagnostics", None) or []
    parts = [f"{d.location}: {d.message}" for d in diags]
    return "; ".join(parts) if parts else str(exc).replace("\n", " ")


def parameter_ref(text: str) -> ParameterRef | None:
    """The reference in a printed ``#flow.parameter.named<...> : type`` attribute, or None if
    `text` is another attribute. Raises `FormatError` if it starts like one but is unreadable."""
    if not text.startswith(_PARAM_PREFIX):
        return None
    pos = len(_PARAM_PREFIX)
    first, pos = _raw_string(text, pos)
    scope, key = "", first
    if text.startswith("::", pos):
        key, pos = _raw_string(text, pos + 2)
        scope = first
    config = ""
    if text.startswith(", {", pos):
        end = _closing_brace(text, pos + 2)
        config, pos = text[pos + 2 : end + 1], end + 1
    if not text.startswith(">", pos):
        raise FormatError(f"cannot read the parameter reference {text!r} (a quote inside a key?)")
    return ParameterRef(scope, key, config)


def _closing_brace(text: str, start: int) -> int:
    depth = 0
    for i in range(start, len(text)):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return i
    raise FormatError(f"cannot read the parameter reference {text!r}: unbalanced braces")


def _raw_string(text: str, pos: int) -> tuple[str, int]:
    if not text.startswith('"', pos):
        raise FormatError(f"cannot read the parameter reference {text!r}: expected a quoted string at {pos}")
    end = text.find('"', pos + 1)
    if end < 0:
        raise FormatError(f"cannot read the parameter reference {text!r}: unterminated string")
    return text[pos + 1 : end], end + 1


def _check_name(what: str, name: str) -> None:
    if '"' in name or "\\" in name or not name.isprintable():
        raise InvalidArgumentError(
            f"{what} {name!r} has a quote, backslash or non-printable character: IREE prints "
            "parameter names unescaped, so it could not read the module back"
        )


def parameter_ref_text(scope: str, key: str, type_text: str) -> str:
    """``#flow.parameter.named<"scope"::"key"> : type`` as IREE's export pass prints it (an
    empty scope is written ``""::``). Raises `InvalidArgumentError` for names IREE cannot print."""
    _check_name("scope", scope)
    _check_name("key", key)
    return f'{_PARAM_PREFIX}"{scope}"::"{key}"> : {type_text}'
