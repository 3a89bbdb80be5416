"""Running an IREE parameter encoder module: IREE's ``iree-encode-parameters`` for pip users.

``iree-compile --iree-parameter-encoder-output-file=encoder.mlir`` splits the work a program
does on its parameters at start-up (re-layouts, packing, folding over weights) into an encoder
module. IREE's tool that runs it is not in the ``iree-base-runtime`` wheel; this module is that
tool's engine, over ``iree.runtime`` and paramio's providers (any file, set or URL paramio opens).

The module's exported functions say what they are in reflection attributes:
``iree.encode.function`` is ``detect_target``, ``indices``, ``steps`` or ``encode``, and the
last three carry ``iree.encode.target`` (the indices function also ``iree.encode.scopes``).
Per target: ``indices()`` returns the output archives' layout, a list of ``[scope, entries]``
with entries ``[0 (splat), key, metadata, length, pattern, pattern_length]`` or ``[1 (data),
key, metadata, length, alignment]``; ``steps()`` returns an opaque list the encode function
takes; ``encode(steps, wait_fence, signal_fence)`` reads the input scopes and scatters its
results into the output scopes. As IREE's tool does, each output archive is laid out from the
indices first (IREE's builder layout: `paramio.formats.irpa.writer.plan_archive`), then served
writable under its scope while the encode function runs, so the encoder writes the bytes in
place. Outputs go to temporary files renamed into place only once every output is complete.

Without a target name the first target is used, as IREE's tool does: it finds the module's
``detect_target`` function but does not call it, and IREE 3.13's Python binding could not call
it either (it takes a ``!util.list<!hal.device>`` and ``HalDevice`` is no VM reference there:
``'HalDevice' object has no attribute '__iree_vm_ref__'``). One deliberate difference: an
``--output`` scope the target does not produce, and a produced scope with no ``--output``, are
errors before any work (IREE's tool writes an empty archive, or fails inside the encoder).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from paramio.core.entry import EntryKind, ParameterEntry
from paramio.core.errors import FormatError, InvalidArgumentError
from paramio.formats.irpa.layout import DEFAULT_DATA_ALIGNMENT
from paramio.formats.irpa.writer import ArchivePlan, plan_archive
from paramio.formats.output import AtomicOutput
from paramio.index.provider import Provider
from paramio.iree.bridge import IreeParameters, iree_runtime

__all__ = ["EncodeTarget", "EncodedArchive", "EncodedEntry", "Encoder", "encode_parameters"]

#: ``iree.encode.function`` values, and the attribute names IREE's tool reads.
_FUNCTION = "iree.encode.function"
_TARGET = "iree.encode.target"
_SCOPES = "iree.encode.scopes"
_SPLAT, _DATA = 0, 1


@dataclasses.dataclass(frozen=True, slots=True)
class EncodeTarget:
    """One target of an encoder module: its name, the scopes its indices function declares
    (``iree.encode.scopes``), and its functions' names (``steps`` is optional)."""

    name: str
    scopes: tuple[str, ...]
    indices: str | None
    steps: str | None
    encode: str | None


@dataclasses.dataclass(frozen=True, slots=True)
class EncodedEntry:
    """One parameter an encoder writes: ``kind`` is ``"data"`` or ``"splat"``; `alignment`
    applies to data, `pattern` (little-endian, its length IREE's pattern length) to splats."""

    scope: str
    key: str
    kind: str
    length: int
    metadata: bytes = b""
    alignment: int = 0
    pattern: bytes = b""

    def describe(self) -> str:
        """IREE's ``--list_parameters`` line for this entry (without the indent)."""
        if self.kind == "splat":
            value = int.from_bytes(self.pattern, "little")
            return f"{self.key}: SPLAT, {self.length} bytes, pattern=0x{value:0{len(self.pattern) * 2}x}"
        return f"{self.key}: DATA, {self.length} bytes, alignment {self.alignment}"


@dataclasses.dataclass(frozen=True, slots=True)
class EncodedArchive:
    """An output archive written: its scope, path, size in bytes and entries (with the data
    offsets the archive gives them)."""

    scope: str
    path: str
    size: int
    entries: tuple[ParameterEntry, ...]


def _label(scope: str) -> str:
    return f"scope '{scope}'" if scope else "the default scope"


class Encoder:
    """An encoder module loaded with the modules it needs, over input parameters.

    `modules`: paths (or bytes) of compiled modules, the encoder last (IREE's convention);
    `parameters`: a `Provider` or ``[scope=]file`` values (anything paramio opens) serving the
    scopes the encoder reads. `device`: an IREE device URI (``local-task``, ``local-sync`` ...).
    Raises `InvalidArgumentError` when the last module has no encoder functions, and IREE's
    errors (``RuntimeError``, ``ValueError``) for a module or device IREE refuses.
    """

    def __init__(
        self,
        modules: str | os.PathLike[str] | bytes | Sequence[str | os.PathLike[str] | bytes],
        parameters: Provider | Sequence[str] = (),
        *,
        device: str = "local-task",
    ) -> None:
        rt = iree_runtime()
        if isinstance(modules, (str, bytes, os.PathLike)):
            modules = [modules]
        if not modules:
            raise InvalidArgumentError("no modules given; the encoder module (.vmfb) comes last")
        self._rt = rt
        self.device_uri = device
        self.config: Any = rt.Config(device)
        self.provider = parameters if isinstance(parameters, Provider) else Provider.from_flags(list(parameters))
        self._names = [m if isinstance(m, bytes) else os.fspath(m) for m in modules]
        self.modules = [self._load(m) for m in modules]
        self.encoder: Any = self.modules[-1]
        where = self._names[-1] if isinstance(self._names[-1], str) else "the encoder module"
        self.source_name = where
        self.detect_function, self.targets = _discover(rt, self.encoder, where)
        self._inputs: IreeParameters | None = None

    def _load(self, module: str | os.PathLike[str] | bytes) -> Any:
        instance = self.config.vm_instance
        if isinstance(module, bytes):
            return self._rt.VmModule.copy_buffer(instance, module)
        with open(module, "rb") as f:
            return self._rt.VmModule.copy_buffer(instance, f.read())

    @property
    def module_name(self) -> str:
        """The encoder module's name (IREE's ``Encoder module:`` line)."""
        return str(self.encoder.name)

    def _input_parameters(self) -> IreeParameters:
        if self._inputs is None:
            self._inputs = IreeParameters(self.provider)
        return self._inputs

    def _context(self, outputs: Sequence[object] = ()) -> Any:
        rt = self._rt
        instance = self.config.vm_instance
        inputs = self._input_parameters()
        params = rt.create_io_parameters_module(instance, *inputs.providers.values(), *outputs)
        hal = rt.create_hal_module(instance, self.config.device)
        return rt.VmContext(instance, modules=[params, hal, *self.modules])

    def _call(self, context: Any, name: str, args: Any | None = None, results: int = 1) -> Any:
        rt = self._rt
        out = rt.VmVariantList(results)
        context.invoke(self.encoder.lookup_function(name), args if args is not None else rt.VmVariantList(0), out)
        return out

    def target(self, name: str | None = None) -> EncodeTarget:
        """The target named `name`; without one, the first (as IREE's tool does: see the
        module docstring on ``detect_target``). Raises `InvalidArgumentError` for an unknown name or a target lacking its
        indices or encode function."""
        if name:
            chosen = next((t for t in self.targets if t.name == name), None)
            if chosen is None:
                known = ", ".join(t.name for t in self.targets)
                raise InvalidArgumentError(
                    f"{self.source_name}: target '{name}' not found in encoder module (its targets: {known})"
                )
        else:
            chosen = self.targets[0]
        for what in ("indices", "encode"):
            if getattr(chosen, what) is None:
                raise InvalidArgumentError(
                    f"{self.source_name}: {what} function not found for target '{chosen.name}'; "
                    "encoder module may be incomplete"
                )
        return chosen

    def parameters(self, target: str | EncodeTarget | None = None) -> dict[str, list[EncodedEntry]]:
        """The entries the target writes, by output scope (its ``indices`` function). Raises
        `FormatError` when the module returns a malformed list."""
        chosen = target if isinstance(target, EncodeTarget) else self.target(target)
        assert chosen.indices is not None
        out = self._call(self._context(), chosen.indices)
        return _parse_indices(self._rt, out.get_as_list(0), f"{self.source_name}: {chosen.indices}")

    def encode(
        self,
        outputs: Mapping[str, str | os.PathLike[str]],
        *,
        target: str | EncodeTarget | None = None,
        durable: bool = True,
        progress: Callable[[int], None] | None = None,
    ) -> list[EncodedArchive]:
        """Run the encoder and write one archive per output scope (`outputs`: scope -> path).

        Every output is written under a temporary name and renamed only once the encoder has
        finished: on any failure no output is left. `progress` is called with each archive's
        data bytes once the encoder has written them (the encoder runs as one device call).
        Raises `InvalidArgumentError` when `outputs` and the target's scopes differ, IREE's
        errors when the encoder fails, `WriteError` when an output cannot be written.
        """
        chosen = target if isinstance(target, EncodeTarget) else self.target(target)
        layout = self.parameters(chosen)
        missing = [s for s in layout if s not in outputs]
        extra = [s for s in outputs if s not in layout]
        if missing or extra:
            produced = ", ".join(f"'{s}'" for s in layout) or "none"
            what = (
                f"writes {_label(missing[0])}: add --output={missing[0]}=FILE"
                if missing
                else f"produces no {_label(extra[0])}"
            )
            raise InvalidArgumentError(f"{self.source_name}: target '{chosen.name}' {what} (its scopes: {produced})")
        rt = self._rt
        staged: list[tuple[str, AtomicOutput, ArchivePlan, list[ParameterEntry]]] = []
        try:
            providers: list[object] = []
            for scope, path in outputs.items():
                entries, alignment = _archive_entries(layout[scope])
                plan = plan_archive(entries, alignment=alignment)
                out = AtomicOutput(path, durable=durable)
                staged.append((scope, out, plan, entries))
                out.truncate(plan.total_size)
                out.pwrite(plan.header_and_tables, 0)
                providers.append(_output_provider(rt, scope, out, plan, entries))
            self._run_encode(chosen, providers)
            del providers
            written: list[EncodedArchive] = []
            for scope, out, plan, entries in staged:
                out.finish()
                placed = tuple(
                    e if off is None else e.replace(offset=off)
                    for e, off in zip(entries, plan.data_offsets, strict=True)
                )
                written.append(EncodedArchive(scope, os.fspath(outputs[scope]), plan.total_size, placed))
                if progress is not None:
                    progress(sum(e.length for e in entries if not e.is_splat))
            for _, out, _, _ in staged:
                out.publish()
            if durable:
                from paramio.formats.output import sync_folder

                for _, out, _, _ in staged:
                    sync_folder(out.target.final)
            return written
        except BaseException:
            for _, out, _, _ in staged:
                out.abort()
            raise

    def _run_encode(self, target: EncodeTarget, outputs: Sequence[object]) -> None:
        rt = self._rt
        context = self._context(outputs)
        steps = None
        if target.steps is not None:
            steps = self._call(context, target.steps).get_as_list(0)
        assert target.encode is not None
        args = rt.VmVariantList(3)
        if steps is not None:
            args.push_list(steps)
        else:
            args.push_ref(None)
        device = self.config.device
        signal = rt.HalFence.create_at(device.create_semaphore(0), 1)
        args.push_ref(rt.HalFence(1))  # nothing to wait for: an empty fence
        args.push_ref(signal)
        context.invoke(self.encoder.lookup_function(target.encode), args, rt.VmVariantList(0))
        signal.wait()


def _output_provider(
    rt: Any, scope: str, out: AtomicOutput, plan: ArchivePlan, entries: list[ParameterEntry]
) -> object:
    """An IREE provider serving `scope` from the output being written, writable: the encoder
    scatters its results into the archive's data spans in place."""
    index = rt.ParameterIndex()
    handle = rt.FileHandle.wrap_fd(out.fd, readable=True, writable=True)
    for e, offset in zip(entries, plan.data_offsets, strict=True):
        if offset is None:
            index.add_splat(e.key, e.pattern, e.length)
        else:
            index.add_from_file_handle(e.key, handle, e.length, offset)
    return index.create_provider(scope=scope)


def _discover(rt: Any, module: Any, where: str) -> tuple[str | None, tuple[EncodeTarget, ...]]:
    """The detect_target function's name and the targets, in the order their functions appear."""
    detect: str | None = None
    found: dict[str, dict[str, str]] = {}
    for name in module.function_names:
        fn = module.lookup_function(name, rt.Linkage.EXPORT)
        if fn is None:
            continue
        attrs = dict(fn.reflection)
        role = attrs.get(_FUNCTION)
        if not role:
            continue
        if role == "detect_target":
            detect = name
            continue
        target = attrs.get(_TARGET)
        if not target:
            raise InvalidArgumentError(f"{where}: encoder function '{name}' has no {_TARGET}")
        functions = found.setdefault(target, {})
        if role in ("indices", "steps", "encode"):
            functions[role] = name
            if role == "indices":
                functions["scopes"] = attrs.get(_SCOPES, "")
    if not found:
        raise InvalidArgumentError(
            f"{where}: no encoder functions found in module; ensure the module was produced "
            "by iree-compile with --iree-parameter-encoder-output-file"
        )
    targets = tuple(
        EncodeTarget(
            name,
            tuple(s for s in f.get("scopes", "").split(",") if s),
            f.get("indices"),
            f.get("steps"),
            f.get("encode"),
        )
        for name, f in found.items()
    )
    return detect, targets


def _parse_indices(rt: Any, scopes: Any, where: str) -> dict[str, list[EncodedEntry]]:
    """The ``indices`` result as entries by scope, every field checked (the module is input)."""
    if scopes is None:
        raise FormatError(f"{where}: returned no list")
    result: dict[str, list[EncodedEntry]] = {}
    for i in range(scopes.size):
        pair = scopes.get_as_list(i)
        if pair is None or pair.size < 2:
            raise FormatError(f"{where}: scope {i} is not a [scope, entries] list")
        name = _buffer(rt, pair, 0)
        scope = "" if name is None else _text(name, where)
        entries = pair.get_as_list(1)
        if entries is None:
            raise FormatError(f"{where}: {_label(scope)} has no entries list")
        out = result.setdefault(scope, [])
        for j in range(entries.size):
            out.append(_parse_entry(rt, entries.get_as_list(j), scope, f"{where}: {_label(scope)} entry {j}"))
    return result


def _buffer(rt: Any, items: Any, i: int) -> Any:
    """Element `i` of a VM list as a ``VmBuffer``, or None (a null reference, or no buffer)."""
    if items.get_variant(i) is None:
        return None
    try:
        return items.get_as_object(i, rt.VmBuffer)
    except (ValueError, TypeError):
        return None


def _text(buf: Any, where: str) -> str:
    try:
        return bytes(buf).decode("utf-8")
    except UnicodeDecodeError:
        raise FormatError(f"{where}: a name is not UTF-8") from None


def _int(entry: Any, i: int, where: str) -> int:
    value = entry.get_variant(i)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise FormatError(f"{where}: field {i} is {value!r}, not a count")
    return value


def _parse_entry(rt: Any, entry: Any, scope: str, where: str) -> EncodedEntry:
    if entry is None or entry.size < 5:
        raise FormatError(f"{where}: not an entry list")
    kind = _int(entry, 0, where)
    key_buf = _buffer(rt, entry, 1)
    if key_buf is None:
        raise FormatError(f"{where}: parameter entry missing key")
    key = _text(key_buf, where)
    md = _buffer(rt, entry, 2)
    metadata = b"" if md is None else bytes(md)
    length = _int(entry, 3, where)
    if kind == _SPLAT:
        if entry.size < 6:
            raise FormatError(f"{where}: splat entry '{key}' has no pattern length")
        pattern_value = entry.get_variant(4)
        width = _int(entry, 5, where)
        if not isinstance(pattern_value, int) or width not in (1, 2, 4, 8):
            raise FormatError(f"{where}: splat entry '{key}' has a {width}-byte pattern (1, 2, 4 or 8)")
        pattern = (pattern_value & ((1 << (8 * width)) - 1)).to_bytes(width, "little")
        return EncodedEntry(scope, key, "splat", length, metadata, pattern=pattern)
    if kind != _DATA:
        raise FormatError(f"{where}: entry '{key}' has type {kind} (0 splat or 1 data)")
    alignment = _int(entry, 4, where)
    if alignment == 0 or alignment & (alignment - 1):
        raise FormatError(f"{where}: entry '{key}' asks for alignment {alignment}, not a power of two")
    return EncodedEntry(scope, key, "data", length, metadata, alignment=alignment)


def _archive_entries(entries: Sequence[EncodedEntry]) -> tuple[list[ParameterEntry], int]:
    """paramio entries to plan an archive from, and the alignment: the entries' own (IREE's
    builder layout) or, when they ask for several, the largest (every one then holds)."""
    out = [
        ParameterEntry.splat(e.key, e.pattern, e.length, metadata=e.metadata)
        if e.kind == "splat"
        else ParameterEntry(key=e.key, kind=EntryKind.DATA, length=e.length, metadata=e.metadata)
        for e in entries
    ]
    alignment = max((e.alignment for e in entries if e.kind == "data"), default=DEFAULT_DATA_ALIGNMENT)
    return out, alignment


def encode_parameters(
    module: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    parameters: Provider | Sequence[str],
    outputs: Mapping[str, str | os.PathLike[str]],
    *,
    target: str | None = None,
    device: str = "local-task",
    durable: bool = True,
    progress: Callable[[int], None] | None = None,
) -> list[EncodedArchive]:
    """Run the encoder `module` (or modules, the encoder last) over `parameters` and write an
    archive per output scope: ``iree-encode-parameters --module=... --parameters=...
    --output=scope=path``. See `Encoder.encode` for the errors."""
    encoder = Encoder(module, parameters, device=device)
    return encoder.encode(outputs, target=target, durable=durable, progress=progress)
