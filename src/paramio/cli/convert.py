"""``paramio convert``: ``iree-convert-parameters`` with the same flags, and its bugs fixed.

Same as IREE: inputs by ``--parameters=[scope=]file`` (scopes flattened into one output),
entries in input order, ``--exclude``/``--rename`` match the *original* name (first rename rule
wins), ``--splat`` matches the *renamed* name, ``--strip`` turns every other entry into a
one-zero-byte splat, data 64-byte aligned, metadata kept. The bytes match IREE's archive when
no fix below applies.

Better than IREE:

* dtype and shape survive: an entry typed by its format (safetensors, GGUF) but without
  metadata gets ``TENSORv0`` metadata; file-level attributes (GGUF key/values, safetensors
  ``__metadata__``) are passed to the writer;
* a key held twice is written once (``--duplicates=first``, default: the entry IREE's lookup
  serves; ``last``; ``error``) with a warning; IREE writes both and corrupts the data;
* a ``--rename`` onto an existing key is refused before anything is written (exit 1); IREE
  fails half-way and leaves a partial file;
* ``--exclude``/``--rename``/``--splat`` naming no parameter warn; a splat pattern that does not
  divide the parameter's length is refused;
* output by extension (.irpa, .safetensors, .gguf) or ``--format``; written atomically (even
  over one of the inputs), streamed (memory stays flat), with a progress bar on a terminal;
* what the output format cannot hold (a splat written as data, a type stored under a stand-in)
  is said in one warning line each before writing; ``--on_loss=error`` (or ``--on_loss``) refuses instead (exit 1,
  no file), ``--on_loss=ignore`` is quiet (see docs/conversions.md).
"""

from __future__ import annotations

import dataclasses
import glob
import os
import sys
import warnings
from collections.abc import Sequence

from paramio.cli.convert_flags import DESCRIPTION, FLAGS, main
from paramio.cli.errors import CommandFailed, UsageError, escape, warn
from paramio.cli.flags import (
    ParsedFlags,
    allowed_external,
    files_from,
    load_scopes,
)
from paramio.cli.sizes import parse_size
from paramio.core.entry import ParameterEntry
from paramio.core.errors import ConversionWarning, LossError
from paramio.core.splats import SPLAT_PATTERN_LENGTHS_TEXT, splat_fault
from paramio.core.tensor import encode_tensor_metadata
from paramio.formats.contract import ARCHIVE, Format, get_format
from paramio.formats.conversion import LOSS_POLICIES
from paramio.formats.elements import ElementError, parse_element, parse_element_type
from paramio.formats.progress import ByteProgress
from paramio.formats.registry import FORMATS, detect_format, read_path, write_path
from paramio.formats.targets import resolve_output
from paramio.formats.text import escape_keys
from paramio.index.dump import format_dump
from paramio.index.scopes import ScopeMap

__all__ = ["DESCRIPTION", "FLAGS", "ConvertPlan", "main", "run", "plan_conversion"]

_DUPLICATE_POLICIES = ("first", "last", "error")
#: What a stream (``-``, /dev/null, a FIFO) is written as: IRPA, as iree-convert-parameters does.
_STREAM_FORMAT = ARCHIVE


@dataclasses.dataclass(slots=True)
class ConvertPlan:
    """The entries to write, in order, the attributes to pass on, and what to warn about."""

    entries: list[ParameterEntry]
    attributes: dict[str, object]
    warnings: list[str]


def _split_splat(text: str) -> tuple[str, bytes]:
    name, sep, rest = text.partition("=")
    if not name:
        raise UsageError(f"--splat={text}: expected name or name=TYPE=VALUE")
    if not sep:
        return name, b"\0"
    type_text, has_value, value = rest.partition("=")
    if not has_value:
        raise UsageError(f"--splat={text}: expected name=TYPE=VALUE (e.g. f32=4.5, i8=123, x32=CAFEF00D)")
    try:
        element = parse_element_type(type_text.strip())
        pattern = parse_element(element, value) if value else b"\0"
    except ElementError as exc:
        raise UsageError(f"--splat={text}: {exc}") from None
    if splat_fault(len(pattern)) is not None:
        raise UsageError(
            f"--splat={text}: a {len(pattern)}-byte value cannot be a splat pattern ({SPLAT_PATTERN_LENGTHS_TEXT} bytes)"
        )
    return name, pattern


def _split_rename(text: str) -> tuple[str, str]:
    old, sep, new = text.partition("=")
    if not sep or not old or not new:
        raise UsageError(f"--rename={text}: expected old=new")
    return old, new


def _origin(entry: ParameterEntry) -> str:
    return entry.source.name if entry.source is not None else entry.origin


def plan_conversion(
    scopes: ScopeMap,
    *,
    exclude: Sequence[str] = (),
    rename: Sequence[tuple[str, str]] = (),
    splat: Sequence[tuple[str, bytes]] = (),
    strip: bool = False,
    duplicates: str = "first",
    typed: bool = True,
) -> ConvertPlan:
    """Apply IREE's conversion rules to every entry of every scope, then paramio's fixes.

    Raises `CommandFailed` for a rename onto an existing key, a duplicate under policy
    ``error``, or a splat pattern that does not divide its parameter's length.
    """
    excluded = set(exclude)
    renames: dict[str, str] = {}
    for old, new in rename:
        renames.setdefault(old, new)  # first rule wins
    splats: dict[str, bytes] = {}
    for name, pattern in splat:
        splats.setdefault(name, pattern)
    seen_original: set[str] = set()
    out: list[ParameterEntry] = []
    renamed_from: list[str | None] = []
    attributes: dict[str, object] = {}
    for _scope, index in scopes.items():
        for k, v in index.attributes.items():
            attributes.setdefault(k, v)
        for e in index.values():
            seen_original.add(e.key)
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
                    raise CommandFailed(
                        f"--splat: parameter '{escape(key)}' ({e.length} bytes) is not a whole number of "
                        f"{len(fill)}-byte patterns"
                    )
                converted = ParameterEntry.splat(
                    key, fill, e.length, metadata=metadata, tensor=e.declared_tensor, origin=e.origin
                )
            else:
                converted = e.replace(key=key, metadata=metadata)
            out.append(converted)
            renamed_from.append(e.key if key != e.key else None)
    warnings: list[str] = []
    for name in exclude:
        if name not in seen_original:
            warnings.append(f"--exclude={escape(name)} names no parameter")
    for old, new in rename:
        if old not in seen_original:
            warnings.append(f"--rename={escape(old)}={escape(new)} names no parameter")
    out_keys = {e.key for e in out}
    for name, _ in splat:
        if name not in out_keys:
            warnings.append(f"--splat={escape(name)} names no parameter (splats match the renamed name)")
    entries = _resolve_duplicates(out, renamed_from, duplicates, warnings)
    return ConvertPlan(entries, attributes, warnings)


def _resolve_duplicates(
    entries: list[ParameterEntry], renamed_from: list[str | None], policy: str, warnings: list[str]
) -> list[ParameterEntry]:
    first_at: dict[str, int] = {}
    groups: dict[str, list[int]] = {}
    for i, e in enumerate(entries):
        first_at.setdefault(e.key, i)
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
            raise CommandFailed(
                f"--rename={escape(renamed_from[i] or '')}={escape(key)}: '{escape(key)}' is already a parameter "
                f"(from {escape(_origin(entries[other]))}); nothing was written"
            )
        sources = ", ".join(escape(_origin(entries[i])) for i in idxs)
        if policy == "error":
            raise CommandFailed(f"parameter '{escape(key)}' appears {len(idxs)} times ({sources}); nothing was written")
        chosen = idxs[0] if policy == "first" else idxs[-1]
        keep[idxs[0]] = entries[chosen]
        dropped.update(idxs[1:])
        warnings.append(f"parameter '{escape(key)}' appears {len(idxs)} times ({sources}); kept the {policy}")
    return [e for i, e in enumerate(keep) if i not in dropped]


def run(flags: ParsedFlags) -> int:
    output = flags.text("output")
    if not output:
        raise UsageError("--output=file is required (.irpa, .safetensors or .gguf)")
    duplicates = flags.text("duplicates").lower()
    if duplicates not in _DUPLICATE_POLICIES:
        raise UsageError(f"--duplicates={duplicates}: expected first, last or error")
    fmt = flags.text("format").lower() or None
    if fmt is not None and fmt not in FORMATS:
        raise UsageError(f"--format={fmt}: expected one of {', '.join(FORMATS)}")
    on_loss = flags.text("on_loss").lower()
    if on_loss not in LOSS_POLICIES:
        raise UsageError(f"--on_loss={on_loss}: expected warn, error or ignore")
    mode = flags.text("parameter_mode")
    if mode not in ("file", "preload", "mmap"):
        raise UsageError(f"--parameter_mode={mode}: expected file or preload")
    streamed = resolve_output(output).streamed  # refuses a directory, socket or block device up front
    if fmt is None:
        try:
            fmt = detect_format(output, for_writing=True)
        except Exception:
            if not streamed:
                raise UsageError(
                    f"--output={output}: unknown output format; use an extension .irpa, .safetensors or .gguf, or --format="
                ) from None
            fmt = _STREAM_FORMAT
    size = flags.text("max_shard_size")
    max_shard_size = parse_size("max_shard_size", size) if size else None
    if max_shard_size is not None and streamed:
        raise UsageError(f"--max_shard_size writes a set of files; --output={output} is a stream")
    renames = [_split_rename(t) for t in flags.many("rename")]
    splats = [_split_splat(t) for t in flags.many("splat")]
    inputs = files_from(flags)
    if not inputs:
        raise UsageError("no inputs: give one or more --parameters=[scope=]file")
    scopes = load_scopes(inputs, allowed_external(flags), strict=flags.on("strict"), copy=mode == "preload")
    plan = plan_conversion(
        scopes,
        exclude=flags.many("exclude"),
        rename=renames,
        splat=splats,
        strip=flags.on("strip"),
        duplicates=duplicates,
        typed=flags.on("typed"),
    )
    quiet = flags.on("quiet")
    for w in plan.warnings:
        warn("convert", w)
    target = get_format(fmt)
    total = sum(e.length for e in plan.entries if not e.is_splat or not target.splats)
    with ByteProgress(total, f"writing {output}", quiet=quiet) as bar:
        entries, attributes = plan.entries, plan.attributes
        if not flags.on("typed"):  # IREE's exact bytes: no TENSORv0, no attributes entry
            attributes = {}
            if target.types_in_metadata:
                entries = [e.replace(declared_tensor=None) if e.declared_tensor is not None else e for e in entries]
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConversionWarning)
            try:
                sizing = {} if max_shard_size is None else {"max_shard_size": max_shard_size}
                write_path(
                    output,
                    entries,
                    format=fmt,
                    attributes=attributes,
                    progress=bar.callback,
                    on_loss=on_loss,
                    expand_splats=flags.on("expand_splats"),
                    **sizing,
                )
            except LossError as exc:
                raise CommandFailed(f"{exc}; nothing was written") from None
            finally:
                for caught_w in caught:
                    if issubclass(caught_w.category, ConversionWarning):
                        warn("convert", escape(str(caught_w.message), quote=False))
                    else:
                        warnings.warn_explicit(caught_w.message, caught_w.category, caught_w.filename, caught_w.lineno)
    if not quiet and not streamed:  # a stream cannot be read back for the listing
        written = output if max_shard_size is None else _set_opened_by(output, target)
        if written is not None:
            sys.stdout.write(format_dump(read_path(written, format=fmt).entries, escape=escape_keys))
    return 0


def _set_opened_by(output: str, target: Format) -> str | None:
    """The file that opens the sharded set just written for `output`: its index file, or a GGUF
    split set's first shard; None when neither is there (a URL's GGUF set is not listed)."""
    if os.path.exists(output):
        return output  # the writer kept one file: it all fit in one shard
    if target.index_suffix is not None:
        index = (
            output[: -len(target.extension)] + target.index_suffix
            if output.lower().endswith(target.extension)
            else None
        )
        if index is not None and (os.path.exists(index) or "://" in index):
            return index
    folder, name = os.path.split(output)
    stem = name[: -len(target.extension)] if name.lower().endswith(target.extension) else name
    firsts = sorted(
        glob.glob(os.path.join(glob.escape(folder or "."), f"{glob.escape(stem)}-00001-of-*{target.extension}"))
    )
    return firsts[0] if firsts else None
