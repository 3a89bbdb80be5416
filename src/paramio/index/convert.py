"""Converting parameter files: ``iree-convert-parameters``' rules as a library call.

`convert` (``paramio.convert``) reads one or more inputs, applies the rules below and writes one
output atomically; ``paramio convert`` only maps its flags onto it. `plan_conversion` applies
the rules without writing (the command uses it to size its progress bar).

IREE's rules: entries in input order, scopes flattened into one output; `exclude` and `rename`
match the *original* name (the first rename rule for a name wins); `splat` matches the
*renamed* name; `strip` turns every other entry into a one-zero-byte splat; metadata kept.

paramio's fixes: an entry typed by its format but without metadata gets ``TENSORv0`` metadata,
and file-level attributes pass to the writer (`typed=False` writes IREE's exact bytes instead);
a key held twice is written once (`duplicates` ``"first"``, the entry IREE's lookup serves,
``"last"`` or ``"error"``) with a warning; a rename onto an existing key, or a splat pattern
that does not divide its parameter's length, is refused before anything is written; rules
naming no parameter warn. Warnings are `ConversionWarning`, like what the output format cannot
hold (``on_loss``, see `paramio.write_path`).
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence

from paramio.core.entry import ParameterEntry
from paramio.core.errors import ConversionWarning, DuplicateKeyError, InvalidArgumentError
from paramio.core.splats import SPLAT_PATTERN_LENGTHS_TEXT, splat_fault
from paramio.core.tensor import encode_tensor_metadata
from paramio.formats.contract import ARCHIVE, get_format
from paramio.formats.digests import DigestRecord, record_of
from paramio.formats.elements import ElementError, parse_element, parse_element_type
from paramio.formats.registry import FORMATS, detect_format, write_path
from paramio.formats.targets import resolve_output
from paramio.index.index import ParameterIndex
from paramio.index.scopes import ScopeMap

__all__ = ["DUPLICATE_POLICIES", "ConvertPlan", "convert", "parse_splat", "plan_conversion"]

DUPLICATE_POLICIES = ("first", "last", "error")

#: What `convert` reads: a path, an index, a `ScopeMap`, a sequence of paths or indexes (one
#: flat scope, first found wins), or a mapping of scope name to path or index.
Inputs = (
    str
    | os.PathLike[str]
    | ParameterIndex
    | ScopeMap
    | Sequence[str | os.PathLike[str] | ParameterIndex]
    | Mapping[str, str | os.PathLike[str] | ParameterIndex]
)
#: A splat rule's value: a pattern's bytes, IREE's ``TYPE=VALUE`` text (``"f32=1.0"``), or None
#: (one zero byte).
SplatValue = bytes | str | None


@dataclasses.dataclass(slots=True)
class ConvertPlan:
    """The entries to write, in order, the file-level attributes to pass on, and the warnings
    the rules gave (also issued as `ConversionWarning` by `convert`)."""

    entries: list[ParameterEntry]
    attributes: dict[str, object]
    warnings: list[str]
    #: The digests the output's record carries from its inputs (by output key, with the
    #: algorithm of the record `attributes` carry): those of entries whose bytes the conversion
    #: did not change (renamed or not), read from the record the input file stores. The others
    #: (splats it made, entries from inputs without a record or with another algorithm) are
    #: computed while they are copied. None when the output stores no record.
    digests: DigestRecord | None = None


def parse_splat(value: SplatValue, *, name: str = "") -> bytes:
    """A splat rule's pattern: `value`'s bytes, IREE's ``TYPE=VALUE`` (``"i16=9"``,
    ``"x32=CAFEF00D"``) parsed as ``iree-convert-parameters --splat`` does, or one zero byte for
    None. Raises `InvalidArgumentError` for bad syntax or a pattern length no splat can have."""
    shown = value if isinstance(value, str) else repr(value)
    where = f"splat={name}={shown}" if name else f"splat {shown}"
    if value is None or value == "":
        return b"\0"
    if isinstance(value, str):
        type_text, has_value, text = value.partition("=")
        if not has_value:
            raise InvalidArgumentError(f"{where}: expected TYPE=VALUE (e.g. f32=4.5, i8=123, x32=CAFEF00D)")
        try:
            pattern = parse_element(parse_element_type(type_text.strip()), text) if text else b"\0"
        except ElementError as exc:
            raise InvalidArgumentError(f"{where}: {exc}") from None
    else:
        pattern = bytes(value)
    if splat_fault(len(pattern)) is not None:
        raise InvalidArgumentError(
            f"{where}: a {len(pattern)}-byte value cannot be a splat pattern ({SPLAT_PATTERN_LENGTHS_TEXT} bytes)"
        )
    return pattern


def _pairs(rules: Mapping[str, object] | Iterable[tuple[str, object]] | None) -> list[tuple[str, object]]:
    if rules is None:
        return []
    if isinstance(rules, Mapping):
        return list(rules.items())
    return [(str(a), b) for a, b in rules]


def _scopes(inputs: Inputs, *, strict: bool, copy: bool) -> ScopeMap:
    if isinstance(inputs, ScopeMap):
        return inputs
    scopes = ScopeMap()
    if isinstance(inputs, Mapping):
        items: list[tuple[str, object]] = list(inputs.items())
    elif isinstance(inputs, (str, os.PathLike, ParameterIndex)):
        items = [("", inputs)]
    else:
        items = [("", i) for i in inputs]
    if not items:
        raise InvalidArgumentError("no inputs to convert")
    for scope, item in items:
        if isinstance(item, ParameterIndex):
            scopes.scope(scope).extend(item.values())
            for k, v in item.attributes.items():
                scopes.scope(scope).attributes.setdefault(k, v)
        else:
            scopes.load(scope, item, strict=strict, copy=copy)  # type: ignore[arg-type]
    return scopes


def _origin(entry: ParameterEntry) -> str:
    return entry.source.name if entry.source is not None else entry.origin


def plan_conversion(
    inputs: Inputs,
    *,
    exclude: Iterable[str] = (),
    rename: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
    splat: Mapping[str, SplatValue] | Iterable[tuple[str, SplatValue]] | None = None,
    strip: bool = False,
    duplicates: str = "first",
    typed: bool = True,
    strict: bool = False,
    copy: bool = False,
) -> ConvertPlan:
    """Apply the conversion rules (module docstring) to `inputs`, writing nothing.

    Raises `DuplicateKeyError` for a rename onto an existing key or a duplicate under policy
    ``"error"``, `InvalidArgumentError` for a bad rule or a splat pattern that does not divide
    its parameter's length, and what opening the inputs raises."""
    if duplicates not in DUPLICATE_POLICIES:
        raise InvalidArgumentError(f"duplicates={duplicates!r}: expected one of {', '.join(DUPLICATE_POLICIES)}")
    scopes = _scopes(inputs, strict=strict, copy=copy)
    exclude = list(exclude)
    excluded = set(exclude)
    rename_rules = [(old, str(new)) for old, new in _pairs(rename)]
    for old, new in rename_rules:
        if not old or not new:
            raise InvalidArgumentError(f"rename={old}={new}: expected old=new, both names")
    renames: dict[str, str] = {}
    for old, new in rename_rules:
        renames.setdefault(old, new)  # first rule wins
    splat_rules = [(name, parse_splat(v, name=name)) for name, v in _pairs(splat)]  # type: ignore[arg-type]
    splats: dict[str, bytes] = {}
    for name, pattern in splat_rules:
        if not name:
            raise InvalidArgumentError("splat: a rule needs a parameter name")
        splats.setdefault(name, pattern)
    seen_original: set[str] = set()
    out: list[ParameterEntry] = []
    renamed_from: list[str | None] = []
    attributes: dict[str, object] = {}
    stored: dict[int, str] = {}  # id(output entry) -> the digest its input stores for its bytes
    for _scope, index in scopes.items():
        for k, v in index.attributes.items():
            attributes.setdefault(k, v)
        record = _stored_record(index)
        recorded: set[str] = set()  # a record digests the first entry of a key its file repeats
        for e in index.values():
            seen_original.add(e.key)
            first_of_key = e.key not in recorded
            recorded.add(e.key)
            if e.key in excluded:
                continue
            key = renames.get(e.key, e.key)
            metadata = e.metadata
            if typed and not metadata and e.declared_tensor is not None:
                metadata = encode_tensor_metadata(e.declared_tensor)
            fill = splats.get(key)
            if fill is None and strip:
                fill = b"\0"
            if fill is not None:
                if splat_fault(len(fill), e.length) is not None:
                    raise InvalidArgumentError(
                        f"splat: parameter {key!r} ({e.length} bytes) is not a whole number of {len(fill)}-byte patterns"
                    )
                converted = ParameterEntry.splat(
                    key, fill, e.length, metadata=metadata, tensor=e.declared_tensor, origin=e.origin
                )
            else:
                converted = e.replace(key=key, metadata=metadata)
                if record is not None and first_of_key and e.key in record.entries:
                    stored[id(converted)] = f"{record.algorithm}:{record.entries[e.key]}"
            out.append(converted)
            renamed_from.append(e.key if key != e.key else None)
    notes: list[str] = []
    for name in exclude:
        if name not in seen_original:
            notes.append(f"exclude={name} names no parameter")
    for old, new in rename_rules:
        if old not in seen_original:
            notes.append(f"rename={old}={new} names no parameter")
    out_keys = {e.key for e in out}
    for name, _ in splat_rules:
        if name not in out_keys:
            notes.append(f"splat={name} names no parameter (splats match the renamed name)")
    entries = _resolve_duplicates(out, renamed_from, duplicates, notes)
    if not typed:  # IREE's exact bytes: no TENSORv0, no attributes entry
        attributes = {}
    return ConvertPlan(entries, attributes, notes, _carried_digests(entries, attributes, stored))


def _stored_record(index: ParameterIndex) -> DigestRecord | None:
    """The digest record `index`'s file stores, or None (none, or a damaged one: then every
    digest is computed anew, as `paramio.write_path` does for a record it cannot carry)."""
    from paramio.core.errors import FormatError

    try:
        return record_of(index.attributes)
    except FormatError:
        return None


def wanted_digests(carried: DigestRecord | None, digests: bool | str | None) -> object:
    """What a conversion passes as ``write_path(digests=...)``: the inputs' `carried` record, or
    as `convert`'s `digests` asks (True or an algorithm name: a record, carried digests kept
    when the algorithm is theirs; False: none)."""
    if digests is None:
        return carried
    if digests is False:
        return False
    if digests is True:
        return carried if carried is not None else True
    if not isinstance(digests, str):
        raise InvalidArgumentError(f"digests={digests!r}: expected True, False, None or an algorithm name")
    return carried if carried is not None and carried.algorithm == digests else digests


def _carried_digests(
    entries: list[ParameterEntry], attributes: dict[str, object], stored: dict[int, str]
) -> DigestRecord | None:
    """The digests the output carries (`ConvertPlan.digests`): for the first entry of each key
    whose bytes are an input's entry's, that entry's stored digest, when it has the algorithm of
    the record the output stores."""
    from paramio.core.errors import FormatError

    try:
        record = record_of(attributes)
    except FormatError:
        return None
    if record is None:
        return None
    carried: dict[str, str] = {}
    for e in entries:
        if e.key in carried:
            continue
        algorithm, _, value = stored.get(id(e), "").partition(":")
        if algorithm == record.algorithm:
            carried[e.key] = value
    return DigestRecord(record.algorithm, carried)


def _resolve_duplicates(
    entries: list[ParameterEntry], renamed_from: list[str | None], policy: str, notes: list[str]
) -> list[ParameterEntry]:
    groups: dict[str, list[int]] = {}
    for i, e in enumerate(entries):
        groups.setdefault(e.key, []).append(i)
    keep = list(entries)
    dropped: set[int] = set()
    for key, idxs in groups.items():
        if len(idxs) == 1:
            continue
        renamed = [i for i in idxs if renamed_from[i] is not None]
        if renamed:
            i = renamed[0]
            other = next(j for j in idxs if j != i)
            raise _duplicate(
                key,
                f"rename={renamed_from[i]}={key}: {key!r} is already a parameter "
                f"(from {_origin(entries[other])}); nothing was written",
            )
        sources = ", ".join(_origin(entries[i]) for i in idxs)
        if policy == "error":
            raise _duplicate(key, f"parameter {key!r} appears {len(idxs)} times ({sources}); nothing was written")
        chosen = idxs[0] if policy == "first" else idxs[-1]
        keep[idxs[0]] = entries[chosen]
        dropped.update(idxs[1:])
        notes.append(f"parameter {key!r} appears {len(idxs)} times ({sources}); kept the {policy}")
    return [e for i, e in enumerate(keep) if i not in dropped]


def _duplicate(key: str, message: str) -> DuplicateKeyError:
    err = DuplicateKeyError(message)  # the message names the key already
    err.key = key
    return err


def entries_to_write(plan: ConvertPlan, fmt: str, *, typed: bool, stacklevel: int = 2) -> list[ParameterEntry]:
    """What a conversion writes of `plan` into format `fmt`, one machine or many: the plan's
    warnings issued (to the caller `stacklevel` frames up), and without `typed` the declared
    tensor metadata left out where `fmt` would store it in the data's metadata."""
    for note in plan.warnings:
        warnings.warn(note, ConversionWarning, stacklevel=stacklevel + 1)
    entries = list(plan.entries)
    if not typed and get_format(fmt).types_in_metadata:
        entries = [e.replace(declared_tensor=None) if e.declared_tensor is not None else e for e in entries]
    return entries


def output_format(output: str | os.PathLike[str], format: str | None = None) -> str:
    """The format `convert` writes `output` in: `format`, else the one its name says; a stream
    (``-``, a FIFO, a character device) with no format is written as IREE's archive, as
    ``iree-convert-parameters`` does. Raises `InvalidArgumentError` when neither tells."""
    if format is not None:
        fmt = format.lower()
        if fmt not in FORMATS:
            raise InvalidArgumentError(f"format={format!r}: expected one of {', '.join(FORMATS)}")
        return fmt
    try:
        return detect_format(output, for_writing=True)
    except Exception:
        if resolve_output(output).streamed:
            return ARCHIVE
        raise


def convert(
    inputs: Inputs,
    output: str | os.PathLike[str],
    *,
    exclude: Iterable[str] = (),
    rename: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
    splat: Mapping[str, SplatValue] | Iterable[tuple[str, SplatValue]] | None = None,
    strip: bool = False,
    duplicates: str = "first",
    typed: bool = True,
    format: str | None = None,
    on_loss: str = "warn",
    expand_splats: bool = False,
    max_shard_size: int | None = None,
    strict: bool = False,
    copy: bool = False,
    progress: Callable[[int], None] | None = None,
    plan: ConvertPlan | None = None,
    engine: str = "local",
    address: str | None = None,
    digests: bool | str | None = None,
) -> ConvertPlan:
    """Convert `inputs` into `output` (atomically) with ``iree-convert-parameters``' rules and
    paramio's fixes (module docstring); returns what was planned and written.

    ``paramio.convert("model.safetensors", "model.irpa", rename={"a": "b"}, splat={"c":
    "f32=0"})``. `output`'s format is `format` or its extension; `max_shard_size` writes a
    sharded set. `plan`: one `plan_conversion` already made for these inputs and rules.
    Raises what `plan_conversion` and `paramio.write_path` raise (`LossError` under
    ``on_loss="error"``: nothing is written).

    ``engine="ray"`` (and `address`: ``auto``, ``ray://HOST:PORT``, ``HOST:PORT``) runs the
    conversion on a Ray cluster, one task per output member, same bytes (`paramio.scaleout`);
    the default, ``"local"``, imports no Ray.

    `digests`: None (the default) stores a digest record when an input stores one (its digests
    carried for bytes the conversion did not change, the rest computed while copying); True or
    an algorithm name always stores one (what the inputs store with that algorithm carried);
    False stores none."""
    if engine != "local" or address is not None:
        from paramio.core.exports import above

        run = above("index.convert_on_engine")
        return run(  # type: ignore[operator,no-any-return]
            inputs,
            output,
            engine=engine,
            address=address,
            exclude=exclude,
            rename=rename,
            splat=splat,
            strip=strip,
            duplicates=duplicates,
            typed=typed,
            format=format,
            on_loss=on_loss,
            expand_splats=expand_splats,
            max_shard_size=max_shard_size,
            strict=strict,
            copy=copy,
            progress=progress,
            plan=plan,
            digests=digests,
        )
    fmt = output_format(output, format)
    if max_shard_size is not None and resolve_output(output).streamed:
        raise InvalidArgumentError(f"max_shard_size writes a set of files; {os.fspath(output)} is a stream")
    if plan is None:
        plan = plan_conversion(
            inputs,
            exclude=exclude,
            rename=rename,
            splat=splat,
            strip=strip,
            duplicates=duplicates,
            typed=typed,
            strict=strict,
            copy=copy,
        )
    entries = entries_to_write(plan, fmt, typed=typed)
    sizing: dict[str, object] = {} if max_shard_size is None else {"max_shard_size": max_shard_size}
    write_path(
        output,
        entries,
        format=fmt,
        attributes=plan.attributes,
        digests=wanted_digests(plan.digests, digests),
        progress=progress,
        on_loss=on_loss,
        expand_splats=expand_splats,
        **sizing,
    )
    return plan
