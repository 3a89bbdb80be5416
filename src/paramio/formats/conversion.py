"""What a conversion keeps, carries and drops, decided before any byte is written.

Every format's writer module exposes ``prepare(entries, attributes, options) -> Prepared`` and
``plan_losses(entries, attributes) -> list[Loss]``. `paramio.write_path` asks the target's writer
first, then warns (`ConversionWarning`), raises, or stays quiet for each `Loss` (``on_loss=``),
and only then writes.

Carrying. When the target has no field for something but has a free-form place for text,
paramio keeps it there as one JSON record under the namespaced key ``paramio.carried``
(safetensors ``__metadata__``, a GGUF string key/value), and `restore` (called by
`paramio.read_path`) puts it back: file-level attributes the target has no place for (GGUF
key/values in safetensors, safetensors ``__metadata__`` in GGUF), entry metadata that is not the
``TENSORv0`` paramio would regenerate (turbine's ``PYTORCH:``, foreign bytes), and the exact type of
an entry the target stores under another type (a GGUF quantised tensor as safetensors ``U8``,
``uint8`` as GGUF ``I8``, an untyped IRPA entry). A carried type is still reported, with
``paramio_keeps=True``: other readers of the file see the stand-in type. See docs/conversions.md.

Trust. Any file can hold a ``paramio.carried`` record, so `restore` believes it only where it
cannot change a type the file itself declares: a carried type replaces only the stand-in the
writer would have used for it (safetensors ``U8[length]``; GGUF ``I8[length]`` or the
same-width signed integer of the same shape; IRPA no type or raw bytes), and only if its size
is the entry's length; carried metadata is put back only when it types the entry as it is read
(or not at all). Anything else is left as the file says, with a `FormatWarning`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from operator import attrgetter

from paramio.core.entry import EntryKind, ParameterEntry, entries_from_columns
from paramio.core.errors import ConversionWarning, FormatWarning, InvalidArgumentError, LossError, warn_caller
from paramio.core.records import MutableRecord, Record
from paramio.core.tensor import TensorInfo, decode_tensor_metadata, encode_tensor_metadata

TYPE_CHECKING = False  # `typing` is not imported to read a file (mypy reads this as typing's)
if TYPE_CHECKING:
    from paramio.formats.bulk import TableEntries
    from paramio.formats.contract import Format, FormatContents

__all__ = [
    "CARRIED_KEY",
    "LOSS_POLICIES",
    "SPLAT_EXPANSION_ALLOWANCE",
    "Carried",
    "Loss",
    "Prepared",
    "check_splat_expansion",
    "detach_carried",
    "json_safe_attributes",
    "report_losses",
    "restore",
]

#: The namespaced key (safetensors ``__metadata__`` key, GGUF key) holding carried facts.
CARRIED_KEY = "paramio.carried"
_VERSION = 1
LOSS_POLICIES = ("warn", "error", "ignore")
#: More losses than this with the same reason are warned about as one line with a count.
_GROUP_AFTER = 8


class Loss(Record):
    """Something the target file will not hold as the source did.

    `key` is the entry (None for file-level facts); `what` is the fact lost; `why` the reason.
    `paramio_keeps` is true when paramio carries the fact in ``paramio.carried`` and reads it
    back, so only other readers of the file see the stand-in.
    """

    __slots__ = ("key", "what", "why", "paramio_keeps")
    __match_args__ = __slots__
    key: str | None
    what: str
    why: str
    paramio_keeps: bool

    def __init__(self, key: str | None, what: str, why: str, paramio_keeps: bool = False) -> None:
        object.__setattr__(self, "key", key)
        object.__setattr__(self, "what", what)
        object.__setattr__(self, "why", why)
        object.__setattr__(self, "paramio_keeps", paramio_keeps)

    def __str__(self) -> str:
        head = f"entry {self.key!r}: " if self.key is not None else ""
        return f"{head}{self.what} ({self.why})"


class Carried(MutableRecord):
    """Facts kept under `CARRIED_KEY`: attributes, entry types (None: untyped), entry metadata."""

    __slots__ = ("attributes", "tensors", "metadata")
    __match_args__ = __slots__
    attributes: dict[str, object]
    tensors: dict[str, TensorInfo | None]
    metadata: dict[str, bytes]

    def __init__(
        self,
        attributes: dict[str, object] | None = None,
        tensors: dict[str, TensorInfo | None] | None = None,
        metadata: dict[str, bytes] | None = None,
    ) -> None:
        self.attributes = {} if attributes is None else attributes
        self.tensors = {} if tensors is None else tensors
        self.metadata = {} if metadata is None else metadata

    def __bool__(self) -> bool:
        return bool(self.attributes or self.tensors or self.metadata)

    def encode(self) -> str:
        """ASCII JSON (any string survives every target's text encoding)."""
        import json

        body: dict[str, object] = {"version": _VERSION}
        if self.attributes:
            body["attributes"] = self.attributes
        if self.tensors:
            body["tensors"] = {k: _tensor_json(v) for k, v in self.tensors.items()}
        if self.metadata:
            body["metadata"] = {k: _bytes_json(v) for k, v in self.metadata.items()}
        return json.dumps(body, ensure_ascii=True, separators=(",", ":"))

    @classmethod
    def decode(cls, text: object) -> Carried | None:
        """The record in `text`, or None if it is not one (foreign data is left alone)."""
        if not isinstance(text, str):
            return None
        from paramio.core.jsontext import loads  # `json.loads` without importing json (and re)
        from paramio.formats.jsondepth import MAX_JSON_DEPTH, json_depth

        try:
            body = loads(text)
        except (ValueError, RecursionError):
            return None
        if not isinstance(body, dict) or body.get("version") != _VERSION or json_depth(body) > MAX_JSON_DEPTH:
            return None
        out = cls()
        attrs = body.get("attributes", {})
        tensors = body.get("tensors", {})
        meta = body.get("metadata", {})
        if not (isinstance(attrs, dict) and isinstance(tensors, dict) and isinstance(meta, dict)):
            return None
        out.attributes = dict(attrs)
        for k, v in tensors.items():
            if v is None:  # untyped: most records of a converted IRPA file are all this
                out.tensors[k] = None
                continue
            info = _tensor_from_json(v)
            if info is not None:
                out.tensors[k] = info
        for k, v in meta.items():
            raw = _bytes_from_json(v)
            if raw is not None:
                out.metadata[k] = raw
        return out


class Prepared(MutableRecord):
    """What a writer will be given: entries and attributes after carrying, and what is lost."""

    __slots__ = ("entries", "attributes", "losses")
    __match_args__ = __slots__
    entries: list[ParameterEntry]
    attributes: dict[str, object]
    losses: list[Loss]

    def __init__(self, entries: list[ParameterEntry], attributes: dict[str, object], losses: list[Loss]) -> None:
        self.entries = entries
        self.attributes = attributes
        self.losses = losses


def attach_carried(
    kept: dict[str, object],
    field: str,
    carried: Carried,
    losses: list[Loss],
    *,
    where: str,
    had_flag: str,
    invalid: str,
    wrap: Callable[[str], object] = lambda text: text,
) -> None:
    """Store `carried` (if not empty) as ``kept[field][CARRIED_KEY]``: the one free-text field a
    target format has (safetensors ``__metadata__``, GGUF key/values). `had_flag` records that the
    field did not exist, so reading back does not invent an empty one; `invalid` is the error
    message for a field that is not a mapping."""
    if not carried:
        return
    container = kept.get(field)
    if container is None:
        carried.attributes[had_flag] = False
        container = {}
    if not isinstance(container, Mapping):
        raise InvalidArgumentError(invalid)
    if CARRIED_KEY in container:
        losses.append(Loss(None, f"{where} {CARRIED_KEY!r} replaced", "the key is reserved by paramio"))
    kept[field] = {**container, CARRIED_KEY: wrap(carried.encode())}


def detach_carried(
    attributes: dict[str, object],
    field: str,
    had_flag: str,
    unwrap: Callable[[object], object] = lambda value: value,
) -> Carried | None:
    """The inverse of `attach_carried`, for a format's `take_carried`: take the record out of
    ``attributes[field]`` and return it, dropping the field again if the writer made it only to
    hold the record (`had_flag`). None, and `attributes` unchanged, when there is no record."""
    container = attributes.get(field)
    if not isinstance(container, dict) or CARRIED_KEY not in container:
        return None
    carried = Carried.decode(unwrap(container[CARRIED_KEY]))
    if carried is None:
        return None
    rest = {k: v for k, v in container.items() if k != CARRIED_KEY}
    had = carried.attributes.pop(had_flag, True)
    if rest or had is not False:
        attributes[field] = rest
    else:
        del attributes[field]
    return carried


def _tensor_json(info: TensorInfo | None) -> object:
    if info is None:
        return None
    body: dict[str, object] = {"dtype": info.dtype, "shape": [int(s) for s in info.shape]}
    if info.extra:
        body["extra"] = dict(info.extra)
    return body


def _tensor_from_json(v: object) -> TensorInfo | None:
    if not isinstance(v, dict):
        return None
    dtype, shape, extra = v.get("dtype"), v.get("shape"), v.get("extra", {})
    if not isinstance(dtype, str) or not isinstance(shape, list) or not isinstance(extra, dict):
        return None
    if not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in shape):
        return None
    return TensorInfo(dtype, tuple(shape), extra)


def _bytes_json(raw: bytes) -> object:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        import base64

        return {"base64": base64.b64encode(raw).decode("ascii")}


def _bytes_from_json(v: object) -> bytes | None:
    if isinstance(v, str):
        return v.encode("utf-8", "surrogatepass")
    if isinstance(v, dict) and isinstance(v.get("base64"), str):
        import base64

        try:
            return base64.b64decode(v["base64"], validate=True)
        except ValueError:
            return None
    return None


# -- helpers for writers ---------------------------------------------------------------------

#: The largest file a POSIX system can hold (``off_t`` is a signed 64-bit integer): beyond it
#: ``ftruncate`` raises OverflowError and a u64 offset field would not fit the format.
MAX_FILE_SIZE = (1 << 63) - 1


def check_file_size(size: int, fmt: str) -> None:
    """Raise `InvalidArgumentError` for an output of more than `MAX_FILE_SIZE` bytes (splats of
    2**63 bytes written as data, say) before anything is written."""
    if size > MAX_FILE_SIZE:
        raise InvalidArgumentError(
            f"the {fmt} file would take {size} bytes, more than any file can hold (2**63-1); "
            "keep large splats as splats (IRPA) or leave them out"
        )


#: Splat bytes a writer expands into data without being asked: at most this, or as much as the
#: output's real data if more (a 4 KiB file whose splat claims 1 TiB must not fill the disk).
SPLAT_EXPANSION_ALLOWANCE = 1 << 30


def check_splat_expansion(
    entries: Sequence[ParameterEntry], fmt: str, path: str, *, keeps_splats: bool, expand_splats: bool
) -> None:
    """Refuse, before anything is written, an output whose splats (which `fmt` stores as data)
    expand past `SPLAT_EXPANSION_ALLOWANCE` or the real data's size unless `expand_splats`, or
    past the free space of the filesystem it is built on (`InvalidArgumentError`, `WriteError`)."""
    if keeps_splats:
        return
    splat_bytes = data_bytes = 0
    largest: ParameterEntry | None = None
    for e in entries:
        if e.is_splat:
            splat_bytes += e.length
            if largest is None or e.length > largest.length:
                largest = e
        else:
            data_bytes += e.length
    if largest is None:
        return
    check_file_size(splat_bytes + data_bytes, fmt)  # past any file: the most specific refusal
    allowed = max(SPLAT_EXPANSION_ALLOWANCE, data_bytes)
    if splat_bytes > allowed and not expand_splats:
        raise InvalidArgumentError(
            f"the {fmt} output would hold {splat_bytes} bytes of splats written as data (the largest: "
            f"{largest.key!r}, {largest.length} bytes), more than the {allowed} paramio writes unasked; "
            "pass expand_splats=True (--expand-splats) to write them, or write IRPA, which keeps splats",
            path=path,
        )
    free = _free_bytes(path)
    if free is not None and splat_bytes + data_bytes > free:
        from paramio.core.errors import WriteError

        raise WriteError(
            f"the {fmt} output would take {splat_bytes + data_bytes} bytes ({splat_bytes} of them splats "
            f"written as data) but its filesystem has {free} bytes free",
            path=path,
        )


def _free_bytes(path: str) -> int | None:
    """Bytes free to this user where `path` is built (its folder; a URL or a stream is built in
    the temporary folder), or None if the filesystem does not say."""
    import tempfile

    from paramio.formats.targets import OutputKind, resolve_output

    try:
        target = resolve_output(path)
        folder = (
            os.path.dirname(target.final) or "."
            if target.final is not None and target.kind is not OutputKind.REMOTE
            else tempfile.gettempdir()
        )
        st = os.statvfs(folder)
    except (OSError, ValueError, InvalidArgumentError):
        return None
    return st.f_bavail * st.f_frsize


def regenerated_metadata(info: TensorInfo | None) -> bytes:
    """The metadata an IRPA writer makes for an entry read back with type `info`."""
    return encode_tensor_metadata(info) if info is not None else b""


def metadata_needs_carrying(entry: ParameterEntry) -> bool:
    """True when `entry`'s metadata bytes would not come back by regenerating ``TENSORv0``."""
    return bool(entry.metadata) and bytes(entry.metadata) != regenerated_metadata(entry.tensor)


def json_safe_attributes(attributes: Mapping[str, object]) -> tuple[dict[str, object], list[Loss]]:
    """Attributes JSON can hold, and a loss for each one it cannot."""
    import json

    kept: dict[str, object] = {}
    losses: list[Loss] = []
    for k, v in attributes.items():
        try:
            json.dumps(v)
        except (TypeError, ValueError, RecursionError) as exc:
            losses.append(Loss(None, f"attribute {k!r} dropped", f"its value is not JSON-serialisable: {exc}"))
            continue
        kept[str(k)] = v
    return kept, losses


def splat_loss(entry: ParameterEntry, fmt: str) -> Loss:
    return Loss(
        entry.key,
        f"splat of {entry.length} bytes (pattern {entry.pattern.hex() or '00'}) written as data",
        f"{fmt} has no splat entries; the bytes are the same",
    )


def describe(info: TensorInfo) -> str:
    return f"{info.dtype}{list(info.shape)}"


# -- reporting -------------------------------------------------------------------------------


def report_losses(losses: Sequence[Loss], on_loss: str, *, path: str | os.PathLike[str], fmt: str) -> None:
    """Warn (`ConversionWarning`, one per loss, or one per reason when many share it), raise
    `LossError` listing them (``on_loss="error"``), or nothing (``"ignore"``)."""
    if on_loss not in LOSS_POLICIES:
        raise InvalidArgumentError(f"on_loss={on_loss!r}: expected one of {', '.join(LOSS_POLICIES)}")
    if not losses or on_loss == "ignore":
        return
    p = os.fspath(path)
    if on_loss == "error":
        head = "; ".join(str(x) for x in losses[:5])
        more = f"; and {len(losses) - 5} more" if len(losses) > 5 else ""
        raise LossError(
            f"{fmt} cannot hold everything given ({len(losses)} losses; on_loss='error'): {head}{more}",
            losses=tuple(losses),
            path=p,
        )
    for line in summarise(losses):
        warn_caller(f"{p}: {line}", ConversionWarning)


def summarise(losses: Sequence[Loss]) -> list[str]:
    """One line per loss; losses sharing a reason beyond `_GROUP_AFTER` become one counted line."""
    groups: dict[str, list[Loss]] = {}
    for x in losses:
        groups.setdefault(x.why, []).append(x)
    lines: list[str] = []
    for why, group in groups.items():
        if len(group) <= _GROUP_AFTER:
            lines.extend(str(x) for x in group)
        else:
            keys = ", ".join(repr(x.key) for x in group[:3])
            lines.append(f"{len(group)} entries ({keys}, ...): {group[0].what} and alike ({why})")
    return lines


# -- reading back ----------------------------------------------------------------------------


def restore(fmt: str | Format, contents: FormatContents) -> FormatContents:
    """Put back what a paramio writer carried under `CARRIED_KEY` (no-op when there is none):
    the format (a name or its `Format`) says where its writer put the record (`take_carried`)
    and which types are its writer's stand-ins (`stands_in`)."""
    from paramio.formats.contract import get_format

    format = get_format(fmt) if isinstance(fmt, str) else fmt
    attrs = contents.attributes
    carried = format.take_carried(attrs)
    if carried is None:
        return contents
    for k, v in carried.attributes.items():
        attrs.setdefault(k, v)
    if carried.tensors or carried.metadata:
        by_column = _restored_by_column(format, contents, carried)
        contents.entries = by_column if by_column is not None else _restored(format, contents, carried)
    return contents


def _restored_by_column(format: Format, contents: FormatContents, carried: Carried) -> TableEntries | None:
    """`_restored` for a reader's unchanged `TableEntries` when every claim is untyped and no
    metadata is carried (a file converted from untyped IRPA entries): each verdict is asked once
    per (type, length) of an entry that has it, and the rows are retyped without building an
    entry. None for anything else."""
    from paramio.formats.bulk import TableEntries

    entries = contents.entries
    claims = carried.tensors
    if type(entries) is not TableEntries or carried.metadata or any(claims.values()) or not entries.unchanged():
        return None
    where = contents.paths[0] if contents.paths else format.name
    _, lengths, declared = entries.rows()
    tensors = list(declared)
    verdicts: dict[tuple[int, int], bool] = {}
    for i, (key, info, length) in enumerate(zip(entries.keys(), tensors, lengths, strict=True)):
        if key not in claims:
            continue
        verdict = verdicts.get((id(info), length))
        if verdict is None:
            verdict = verdicts[(id(info), length)] = stands_in(format, entries[i], None)
        if verdict:
            tensors[i] = None
        else:
            _distrust(where, entries[i], "type no type", f"the file declares {_text(info)}")
    return entries.retyped(tensors)


def _restored(format: Format, contents: FormatContents, carried: Carried) -> list[ParameterEntry]:
    """`contents`' entries with the carried types and metadata put back where `restore` trusts
    them (a `FormatWarning` for each claim it does not)."""
    where = contents.paths[0] if contents.paths else format.name
    tensors, metadata = carried.tensors, carried.metadata
    entries = list(contents.entries)
    # Changed rows as columns, rebuilt at the end (`_rebuild`): per entry, `replace` cost more
    # than every check of the restore together.
    rows: list[int] = []
    declared: list[TensorInfo | None] = []
    metas: list[bytes] = []
    # An untyped claim's verdict by the entry's type object and length: what `stands_in` answers
    # from (readers share one `TensorInfo` among the tensors of one dtype and shape).
    untyped: dict[tuple[int, int], bool] = {}
    for i, e in enumerate(entries):
        key = e.key
        claimed = key in tensors
        if not claimed and key not in metadata:
            continue
        info = e.tensor
        new_declared, new_meta = e.declared_tensor, e.metadata
        changed = False
        if claimed:
            claim = tensors[key]
            if claim is None:
                verdict = untyped.get((id(info), e.length))
                if verdict is None:
                    verdict = untyped[(id(info), e.length)] = stands_in(format, e, None)
            else:
                verdict = stands_in(format, e, claim)
            if verdict:
                new_declared = info = claim
                changed = True
            else:
                _distrust(where, e, f"type {_text(claim)}", f"the file declares {_text(e.tensor)}")
        if key in metadata:
            meta = metadata[key]
            typed = decode_tensor_metadata(meta)
            if typed is None or typed == info:
                new_meta = meta
                changed = True
            else:
                _distrust(where, e, f"metadata typing it {_text(typed)}", f"it reads as {_text(info)}")
        if changed:
            rows.append(i)
            declared.append(new_declared)
            metas.append(new_meta)
    if rows:
        _rebuild(entries, rows, declared, metas)
    return entries


def _rebuild(
    entries: list[ParameterEntry], rows: list[int], declared: list[TensorInfo | None], metas: list[bytes]
) -> None:
    """Replace ``entries[rows[j]]`` by a copy with `declared[j]` and `metas[j]` (what
    ``replace(declared_tensor=..., metadata=...)`` makes: the decoded metadata is dropped).
    Data entries of one source and origin (a file's: the usual case) are made at once by
    `entries_from_columns`; any others through `replace`."""
    old = list(map(entries.__getitem__, rows))
    sources = set(map(id, map(_source_of, old)))
    if (
        len(sources) == 1
        and set(map(_kind_of, old)) == {EntryKind.DATA}
        and len(set(map(_origin_of, old))) == 1
        and old[0].source is not None
        and None not in map(_file_index_of, old)
    ):
        first = old[0]
        assert first.source is not None
        made = entries_from_columns(
            keys=list(map(_key_of, old)),
            lengths=list(map(_length_of, old)),
            offsets=list(map(_offset_of, old)),
            source=first.source,
            origin=first.origin,
            declared=declared,
            metadata=metas,
            file_indices=list(map(_file_index_of, old)),
        )
        if len(rows) == len(entries):  # every entry: `rows` is 0, 1, ...
            entries[:] = made
        else:
            for i, e in zip(rows, made, strict=True):
                entries[i] = e
        return
    for i, e, info, meta in zip(rows, old, declared, metas, strict=True):
        entries[i] = e.replace(declared_tensor=info, metadata=meta)


_source_of = attrgetter("source")
_kind_of = attrgetter("kind")
_origin_of = attrgetter("origin")
_file_index_of = attrgetter("file_index")
_key_of = attrgetter("key")
_length_of = attrgetter("length")
_offset_of = attrgetter("offset")


def stands_in(format: Format, entry: ParameterEntry, claim: TensorInfo | None) -> bool:
    """Whether `entry`, as `format` types it, may take the carried type `claim` (None: an
    untyped entry): the claim's size must be the entry's length, and the entry's type the claim
    itself or the stand-in the format's writer uses for it (`Format.stands_in`)."""
    if claim is not None:
        size = claim.nbytes()
        if size is not None and size != entry.length:
            return False
        if entry.tensor == claim:
            return True
    return format.stands_in(entry, claim)


def flat_bytes(entry: ParameterEntry, *dtypes: str) -> bool:
    """Whether `entry` is typed as a flat run of its bytes in one of `dtypes` (a writer's
    stand-in for a type it cannot store: ``uint8[length]``)."""
    seen = entry.tensor
    return seen is not None and seen.dtype in dtypes and tuple(seen.shape) == (entry.length,)


def itemsize(name: str) -> int | None:
    """The element size of dtype `name`, or None for a name paramio does not know."""
    from paramio.core.dtypes import dtype_by_name

    try:
        return dtype_by_name(name).itemsize
    except InvalidArgumentError:
        return None


def _text(info: TensorInfo | None) -> str:
    return describe(info) if info is not None else "no type"


def _distrust(where: str, entry: ParameterEntry, claim: str, actual: str) -> None:
    warn_caller(
        f"{where}: entry {entry.key!r}: {CARRIED_KEY} claims {claim} but {actual}; "
        "the file's own type is kept (the record does not match what paramio writes)",
        FormatWarning,
    )
