"""Export: inline constants of an MLIR module -> a typed archive + ``#flow.parameter.named`` uses.

The bytes are serialized by IREE's own ``iree-io-export-parameters`` pass, run in-process on the
parsed module, so each value is laid out exactly as IREE lays it out (``dense``, ``dense_resource``,
i1 one byte per element, splats of immutable globals as SPLAT entries). paramio adds what the pass
and ``iree-compile --iree-parameter-export`` leave out:

* every global, public or private (the compile flag inlines private constants before its export
  runs and writes nothing; the pass alone is what exports them);
* ``--keys`` globs and a minimum size, chosen per global before the pass runs (globals left out
  keep their inline value);
* large ``arith.constant`` values, hoisted into private globals first (`hoist_constants`);
* dtype and shape (``TENSORv0`` metadata) on every entry, and any format paramio writes;
* a clear refusal, naming the global, of what IREE's serializer cannot do (complex elements,
  elided resources), instead of the pass's "failed to open file";
* a refusal, naming the global and both sizes, of a ``dense_resource`` blob whose size is not
  its type's (the pass pads a short blob with zeros and truncates a long one), and of a type too
  large for the pass to size (it wraps the size to 0 or writes no file at all).

The pass writes a temporary IRPA next to the archive; paramio reads it (mapped, not loaded) and
writes the final archive atomically, then removes it. Memory stays that of the parsed module.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import os
import shutil
import tempfile
from collections.abc import Sequence
from typing import Any

from paramio.core.entry import ParameterEntry
from paramio.core.errors import FormatError, InvalidArgumentError
from paramio.core.tensor import TensorInfo, encode_tensor_metadata
from paramio.formats.contract import ARCHIVE, declared_extensions
from paramio.mlir._bindings import bindings, passmanager
from paramio.mlir.module import GlobalOp, MlirModule, parameter_ref_text, tensor_type_of

__all__ = ["ExportReport", "Exported", "Skipped", "export_parameters", "hoist_constants"]


@dataclasses.dataclass(frozen=True, slots=True)
class Exported:
    """One global moved into the archive."""

    symbol: str
    key: str
    dtype: str
    shape: tuple[int, ...]
    nbytes: int
    kind: str  # "data" or "splat"


@dataclasses.dataclass(frozen=True, slots=True)
class Skipped:
    """A global with an inline value that stayed inline, and why."""

    symbol: str
    reason: str


@dataclasses.dataclass(frozen=True, slots=True)
class ExportReport:
    archive: str
    scope: str
    exported: tuple[Exported, ...]
    skipped: tuple[Skipped, ...]
    hoisted: tuple[str, ...]


def _matches(symbol: str, keys: Sequence[str]) -> bool:
    return not keys or any(fnmatch.fnmatchcase(symbol, k) for k in keys)


def hoist_constants(module: MlirModule, *, minimum_size: int = 0) -> list[str]:
    """Move every ``arith.constant`` tensor of at least `minimum_size` bytes (and at least one)
    inside functions into a private immutable global, loaded where the constant was. Equal
    constants (MLIR uniques attributes, so equal values are one attribute) share one global.
    Returns the new globals' names (``constant``, ``constant_1``, ...)."""
    ir = bindings()
    found: list[Any] = []

    def visit(op: Any) -> Any:
        if op.name == "arith.constant" and len(op.results) == 1:
            t = tensor_type_of(op.results[0].type)
            if t is not None and t.element.exportable and t.nbytes >= max(minimum_size, 1):
                found.append(op)
        return ir.WalkResult.ADVANCE

    module.module.operation.walk(visit)
    taken = module.symbols()
    names: list[str] = []
    by_value: dict[Any, str] = {}
    body = module.module.body
    with module.context, ir.Location.unknown():
        first = body.operations[0] if len(body.operations) else None
        for op in found:
            value = op.attributes["value"]
            if not isinstance(value, ir.DenseElementsAttr):
                try:
                    ir.DenseResourceElementsAttr(value)
                except ValueError:
                    continue
            t = op.results[0].type
            name = by_value.get(value)
            if name is None:
                name = by_value[value] = _unique("constant", taken)
                attrs = {
                    "sym_name": ir.StringAttr.get(name),
                    "sym_visibility": ir.StringAttr.get("private"),
                    "type": ir.TypeAttr.get(t),
                    "initial_value": value,
                }
                ip = ir.InsertionPoint(first) if first is not None else ir.InsertionPoint(body)
                ir.Operation.create("util.global", attributes=attrs, ip=ip)
                names.append(name)
            load = ir.Operation.create(
                "util.global.load",
                results=[t],
                attributes={"global": ir.FlatSymbolRefAttr.get(name)},
                ip=ir.InsertionPoint(op),
            )
            op.results[0].replace_all_uses_with(load.results[0])
            op.erase()
    return names


def _unique(base: str, taken: set[str]) -> str:
    name, n = base, 0
    while name in taken:
        n += 1
        name = f"{base}_{n}"
    taken.add(name)
    return name


def export_parameters(
    module: MlirModule,
    archive: str | os.PathLike[str],
    *,
    scope: str = "",
    minimum_size: int = 0,
    keys: Sequence[str] = (),
    constants: bool = False,
    format: str | None = None,
    on_loss: str = "warn",
) -> ExportReport:
    """Move the inline tensor values of `module`'s globals into `archive` and make each global
    ``#flow.parameter.named<"scope"::"symbol">``. The module is changed in place; save it after.

    `keys` are globs over symbol names (default: all); values under `minimum_size` bytes stay
    inline; `constants` first hoists ``arith.constant`` tensors into globals. `format` defaults
    to the archive's extension. Raises `InvalidArgumentError` for a scope or symbol IREE cannot
    print or a loss refused by `on_loss`, `FormatError` if IREE's serializer fails; then no
    archive is written and the globals are as they were (hoisted constants stay hoisted).
    """
    if minimum_size < 0:
        raise InvalidArgumentError(f"minimum size {minimum_size} is negative")
    parameter_ref_text(scope, "k", "tensor<f32>")  # the scope must be printable for IREE
    hoisted = hoist_constants(module, minimum_size=minimum_size) if constants else []
    chosen: list[GlobalOp] = []
    skipped: list[Skipped] = []
    hidden: list[GlobalOp] = []  # inline values the pass must not see, put back afterwards
    for g in module.globals():
        kind = g.value_kind()
        if kind in ("parameter", "none"):
            continue
        if kind == "other":  # a scalar or #util.* value: not a tensor constant, keep it from the pass
            hidden.append(g)
            continue
        reason = _why_not(g, kind, minimum_size, keys)
        if reason is None:
            parameter_ref_text(scope, g.symbol, "tensor<f32>")  # the key must be printable for IREE
            _check_size(module, g, kind)
            chosen.append(g)
            continue
        if reason:
            skipped.append(Skipped(g.symbol, reason))
        hidden.append(g)
    with module.context:
        # Clones keep the values without reading them (a complex value cannot be read, see GlobalOp).
        saved = [(g, g.op.clone(ip=False)) for g in hidden]
        originals = [(g, g.op.clone(ip=False)) for g in chosen]  # put back if the export fails
        failed = True
        try:
            for g in hidden:
                g.clear_value()
            exported = _run_export(module, archive, scope, chosen, format, on_loss) if chosen else []
            failed = False
        finally:
            ir = bindings()
            for g, clone in saved + (originals if failed else []):
                ir.InsertionPoint(g.op).insert(clone)
                g.op.erase()
            if not failed:
                for _, clone in originals:
                    clone.erase()
    return ExportReport(os.fspath(archive), scope, tuple(exported), tuple(skipped), tuple(hoisted))


def _why_not(g: GlobalOp, kind: str, minimum_size: int, keys: Sequence[str]) -> str | None:
    """None if `g` is exported; "" if it is left out by choice; else the reason it cannot be."""
    if not _matches(g.symbol, keys):
        return ""
    if g.tensor is None:
        return f"type {g.type} is not a static tensor of a known element type"
    if not g.tensor.element.exportable:
        return f"IREE cannot serialize {g.tensor.element.mlir} values"
    if kind == "resource" and not g.tensor.element.resource_exportable:
        return f"IREE cannot serialize dense_resource values of {g.tensor.element.mlir}"
    if kind == "elided":
        return "its dense_resource value is elided (no data in the file)"
    if g.tensor.nbytes < minimum_size:
        return ""
    return None


# IREE's serializer sizes a value in bits in an int64: a type of 2**60 bytes or more wraps (a
# 2**62-byte splat is written with length 0, a larger type makes the pass write no file).
_LARGEST = (1 << 60) - 1


def _check_size(module: MlirModule, g: GlobalOp, kind: str) -> None:
    """Refuse what the pass would write with another size than `g`'s type holds."""
    t = g.tensor
    assert t is not None
    if t.nbytes > _LARGEST:
        raise InvalidArgumentError(
            f"global @{g.symbol}: {t.text} holds {t.nbytes} bytes, more than IREE's export can size ({_LARGEST} bytes)"
        )
    if kind == "resource":
        size = _blob_size(module, g, t.nbytes)
        if size is None:  # longer: measure it (once, on the way to the error)
            size = _blob_size(module, g, None)
        if size is None:
            raise FormatError(
                f"global @{g.symbol}: its value {g.value} names no blob in the module's resources", path=module.path
            )
        if size != t.nbytes:
            raise FormatError(
                f"global @{g.symbol}: its dense_resource blob holds {size} bytes but {t.text} needs {t.nbytes}",
                path=module.path,
            )


class _BlobText:
    """A file-like sink for a printed module: keeps the length of the last quoted string after
    the ``{-#`` that opens the resources (with one global, its blob's hex), and nothing else."""

    def __init__(self) -> None:
        self.resources = False
        self.inside = False
        self.length = 0
        self.last = -1
        self.tail = b""  # the end of the unquoted text, for a marker split across writes

    def write(self, chunk: bytes) -> int:
        pos = 0
        while pos < len(chunk):
            quote = chunk.find(b'"', pos)
            end = len(chunk) if quote < 0 else quote
            if self.inside:
                self.length += end - pos
            else:
                text = self.tail + chunk[pos:end]
                if b"{-#" in text:
                    self.resources = True
                self.tail = text[-2:]
            if quote < 0:
                break
            if self.inside and self.resources:
                self.last = self.length
            self.inside = not self.inside
            self.length = 0
            self.tail = b""
            pos = quote + 1
        return len(chunk)


def _blob_size(module: MlirModule, g: GlobalOp, expected: int | None) -> int | None:
    """The bytes `g`'s ``dense_resource`` blob holds, or None if more than `expected` (if given).

    The bindings give no blob's size: print a module holding only `g` with MLIR's resource limit
    set so that a blob longer than `expected` is left out (no copy of it is made); a blob that
    fits is printed once as hex (transiently twice its size) and measured."""
    ir = bindings()
    # MLIR leaves out a blob whose quoted text ("0x", 4 alignment bytes, the data, in hex) is over the limit.
    limit = None if expected is None else 2 * expected + 12
    with module.context, ir.Location.unknown():
        holder = ir.Module.create()
        holder.body.append(g.op.clone())
        sink = _BlobText()
        holder.operation.print(file=sink, binary=True, large_resource_limit=limit)
    return None if sink.last < 0 else sink.last // 2 - 5  # "0x" and 8 hex digits of alignment


def _run_export(
    module: MlirModule,
    archive: str | os.PathLike[str],
    scope: str,
    chosen: list[GlobalOp],
    format: str | None,
    on_loss: str,
) -> list[Exported]:
    from paramio.formats.registry import write_path
    from paramio.index.index import DuplicatePolicy, ParameterIndex

    ir = bindings()
    pm = passmanager()
    target = os.path.abspath(os.fspath(archive))
    folder = tempfile.mkdtemp(prefix=".paramio-mlir-", dir=_temp_parent(target))
    try:
        temp = os.path.join(folder, "export" + declared_extensions()[ARCHIVE][0])
        with module.context:
            pipeline = f"builtin.module(iree-io-export-parameters{{path={temp} minimum-size=0}})"
            try:
                pm.PassManager.parse(pipeline).run(module.module.operation)
            except ir.MLIRError as exc:
                from paramio.mlir.module import _diagnostics

                raise FormatError(f"IREE's parameter export failed: {_diagnostics(exc)}", path=module.path) from exc
        if not os.path.exists(temp):
            raise FormatError(
                "IREE's parameter export failed without a diagnostic and wrote no archive", path=module.path
            )
        index = ParameterIndex.open(temp, format=ARCHIVE, duplicates=DuplicatePolicy.KEEP)
        entries: list[ParameterEntry] = []
        exported: list[Exported] = []
        with module.context:
            for g in chosen:
                t = g.tensor
                assert t is not None
                e = index.get(g.symbol)
                if e is None:
                    raise FormatError(f"IREE's export pass wrote no entry for global @{g.symbol}", path=module.path)
                if e.length != t.nbytes:
                    raise FormatError(
                        f"IREE's export pass wrote {e.length} bytes for global @{g.symbol} but {t.text} holds {t.nbytes}",
                        path=module.path,
                    )
                info = TensorInfo(t.element.dtype, t.shape)
                meta = encode_tensor_metadata(info)
                if e.is_splat:
                    entries.append(
                        ParameterEntry.splat(g.symbol, e.splat_pattern, e.length, metadata=meta, tensor=info)
                    )
                else:
                    src, off = e.file_storage
                    entries.append(ParameterEntry.data(g.symbol, src, off, e.length, metadata=meta, tensor=info))
                exported.append(Exported(g.symbol, g.symbol, info.dtype, info.shape, e.length, e.kind.value))
                # The pass wrote ""::"symbol" (no scope given to it): set the scope paramio was given.
                g.set_value(ir.Attribute.parse(parameter_ref_text(scope, g.symbol, t.text)))
        write_path(target, entries, format=format, on_loss=on_loss)
        return exported
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _temp_parent(target: str) -> str:
    """The archive's folder when IREE's pass-option parser can take its path, else the system's."""
    folder = os.path.dirname(target) or "."
    if any(c in folder for c in " {}=,'\"\\") or not folder.isprintable():
        return tempfile.gettempdir()
    return folder
