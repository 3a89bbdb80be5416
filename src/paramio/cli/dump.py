"""``paramio dump``: ``iree-dump-parameters``' exact text, plus ``--json``, ``--table`` and
``--metadata``.

The text is IREE's byte for byte for keys IREE prints faithfully (printable keys); a key
holding control characters is escaped (``\\n``, ``\\x1b``) where IREE prints it raw and lets
it forge rows. File-level metadata (GGUF key/values, safetensors ``__metadata__``) is printed
after the tables only with ``--metadata``, so the default text stays IREE's for every format;
``--json`` always carries it. Extraction works where IREE's does not: with any
``--parameter_mode`` (accepted and ignored: files are mapped), for splats (expanded), for every
format and for external entries. Files may be given as ``--parameters=[scope=]file`` or bare.

``--json`` prints one object (schema version 1, documented in docs/cli.md)::

    {"version": 1, "entries": [{"scope": "", "key": "w", "kind": "data", "dtype": "float32",
      "shape": [4], "length": 16, "offset": 384, "end": 400, "alignment": 128,
      "pattern": null, "metadata": null, "metadata_encoding": null, "origin": "small.irpa",
      "format": "irpa"}, ...],
     "scopes": [{"scope": "", "attributes": {...}}]}

``alignment`` is the largest power of two dividing the file offset, capped at 4096 (null for
splats); ``metadata`` is the UTF-8 text, or base64 when the bytes are not UTF-8;
an IRPA external entry adds ``external_file``, the file its bytes come from (its real path,
symlinks resolved).

IRPA external entries: IREE refuses archives holding them (``UNIMPLEMENTED; parser does not
support entry type 3``), so no IREE text exists to match. Their rows keep IREE's row format
(Start and End are offsets in the external file), and the block adds, before its closing blank
line, one comment line per external entry naming the file: ``// `key` bytes from `path```.
"""

from __future__ import annotations

import os
import sys

from paramio.cli.dump_flags import DESCRIPTION, FLAGS, main
from paramio.cli.errors import CommandFailed, UsageError
from paramio.cli.flags import (
    ParsedFlags,
    allowed_external,
    files_from,
    load_scopes,
)
from paramio.core.entry import EntryKind, ParameterEntry
from paramio.formats.text import escape, escape_keys
from paramio.index.dump import external_entries
from paramio.index.scopes import ScopeMap, split_scoped_key

TYPE_CHECKING = False  # `typing.TYPE_CHECKING` without importing typing (start-up: see paramio/__init__.py)
if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from paramio.cli.jsonout import JSON_SCHEMA_VERSION
    from paramio.formats.verify import offset_alignment

# Imports a listing does not need are made where used: a dump is often a whole process
# (tests/core/test_startup.py pins what it imports).


def __getattr__(name: str) -> object:
    if name == "offset_alignment":  # re-exported (`__all__`) from `paramio.formats.verify`, lazily
        from paramio.formats import verify

        return verify.offset_alignment
    if name == "JSON_SCHEMA_VERSION":  # re-exported from `paramio.cli.jsonout`, lazily
        from paramio.cli import jsonout

        return jsonout.JSON_SCHEMA_VERSION
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["DESCRIPTION", "FLAGS", "JSON_SCHEMA_VERSION", "entry_record", "main", "run", "offset_alignment"]


def _metadata_fields(metadata: bytes) -> tuple[str | None, str | None]:
    if not metadata:
        return None, None
    try:
        return metadata.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        import base64

        return base64.b64encode(metadata).decode("ascii"), "base64"


def entry_record(scope: str, e: ParameterEntry) -> dict[str, object]:
    """One entry as the JSON schema describes it."""
    from paramio.formats.verify import offset_alignment

    splat = e.is_splat
    meta, encoding = _metadata_fields(e.metadata)
    info = e.tensor
    record: dict[str, object] = {
        "scope": scope,
        "key": e.key,
        "kind": e.kind.value,
        "dtype": info.dtype if info is not None else None,
        "shape": list(info.shape) if info is not None else None,
        "length": e.length,
        "offset": None if splat else e.offset,
        "end": None if splat else e.offset + e.length,
        "alignment": None if splat else offset_alignment(e.offset),
        "pattern": e.pattern.hex() if splat else None,
        "metadata": meta,
        "metadata_encoding": encoding,
        "origin": e.source.name if e.source is not None else None,
        "format": e.origin,
    }
    if e.kind is EntryKind.EXTERNAL and e.source is not None:
        record["external_file"] = e.source.name
    return record


def _iter_entries(scopes: ScopeMap) -> Iterator[tuple[str, ParameterEntry]]:
    for scope, index in scopes.items():
        for e in index.values():
            yield scope, e


def run(flags: ParsedFlags) -> int:
    extracts = [_split_extract(t) for t in flags.many("extract")]
    if not extracts:
        return _dump(flags, extracts)
    from paramio.formats.targets import resolve_output

    if any(resolve_output(path).fd == 1 for *_, path in extracts):  # `-`, /dev/stdout, /dev/fd/1
        # The parameter's bytes own standard output; the listing and messages go to stderr.
        import contextlib

        sys.stdout.flush()
        with contextlib.redirect_stdout(sys.stderr):
            return _dump(flags, extracts)
    return _dump(flags, extracts)


def _dump(flags: ParsedFlags, extracts: list[tuple[str, str, str, str]]) -> int:
    scopes = load_scopes(files_from(flags), allowed_external(flags), strict=flags.on("strict"))
    items = flags.number("metadata_items")
    if items < 0:
        raise UsageError(f"--metadata_items={items}: expected 0 (all) or a positive count")
    if flags.on("json"):
        from paramio.cli.jsonout import print_json
        from paramio.cli.metadata import metadata_record

        doc = {
            "entries": [entry_record(s, e) for s, e in _iter_entries(scopes)],
            "scopes": [{"scope": s, "attributes": metadata_record(i.attributes, items)} for s, i in scopes.items()],
        }
        print_json(doc, indent=1)
    elif flags.on("table"):
        _print_table(scopes)
    else:
        for scope, index in scopes.items():
            sys.stdout.write(_with_external_files(index.dump(scope, escape=escape_keys), external_entries(index)))
    if flags.on("metadata") and not flags.on("json"):
        from paramio.cli.metadata import format_metadata

        for scope, index in scopes.items():
            sys.stdout.write(format_metadata(scope, index.attributes, items))
    quiet_extract = flags.on("json")
    for flag, scope, key, path in extracts:
        try:
            entry = scopes.lookup(scope, key)
        except KeyError as exc:
            raise CommandFailed(f"{exc}; extracting parameter with flag `{escape(flag)}`") from exc
        label = f"{scope}::{key}" if scope else key
        if not quiet_extract:
            sys.stdout.write(
                f"Extracting parameter `{escape(label, quote=False)}` ({entry.length}b) to `{escape(path, quote=False)}`...\n"
            )
            sys.stdout.flush()
        extract_entry(entry, path, quiet=flags.on("quiet"))
    return 0


def _with_external_files(block: str, entries: Sequence[ParameterEntry]) -> str:
    """IREE's block, plus a comment line per external entry (`entries`: the index's, found
    without building a reader's column table) saying which file holds its bytes (IREE cannot
    read such archives, so nothing of IREE's text changes)."""
    lines = [
        f"// `{escape(e.key, quote=False)}` bytes from `{escape(e.source.name, quote=False)}`\n"
        for e in entries
        if e.kind is EntryKind.EXTERNAL and e.source is not None
    ]
    if not lines:
        return block
    return block[:-1] + "".join(lines) + "\n"


def _split_extract(text: str) -> tuple[str, str, str, str]:
    ident, sep, path = text.partition("=")
    if not sep or not ident or not path:
        raise UsageError(f"--extract={text}: expected [scope::]key=file")
    scope, key = split_scoped_key(ident)
    return text, scope, key, path


def extract_entry(entry: ParameterEntry, path: str | os.PathLike[str], *, quiet: bool = True) -> None:
    """Write the entry's bytes (splats expanded) to `path`, atomically, by the output rules of
    `paramio.formats.targets` (``-`` is standard output); a progress bar on a terminal unless
    `quiet` (the default for callers from Python)."""
    from paramio.formats.conversion import check_splat_expansion
    from paramio.formats.output import AtomicOutput
    from paramio.formats.progress import ByteProgress

    zero_splat = entry.is_splat and not any(entry.pattern)
    # An explicit extract expands its splat, but never past the free space (an all-zero one is a hole).
    check_splat_expansion([entry], "extracted", os.fspath(path), keeps_splats=zero_splat, expand_splats=True)
    total = 0 if zero_splat else entry.length
    with ByteProgress(total, f"extracting to {escape(os.fspath(path))}", quiet=quiet) as bar, AtomicOutput(path) as out:
        out.truncate(entry.length)
        pos = 0
        if not zero_splat:  # all zero: the sized file already reads as zeros
            for chunk in entry.iter_chunks():
                out.pwrite(chunk, pos)
                pos += len(chunk)
                bar.advance(len(chunk))
        out.commit()


def _print_table(scopes: ScopeMap) -> None:
    rows = [entry_record(s, e) for s, e in _iter_entries(scopes)]
    headers = ("scope", "key", "kind", "dtype", "shape", "offset", "length", "align", "file")

    def cells(r: dict[str, object]) -> tuple[str, ...]:
        shape = r["shape"]
        return (
            escape(str(r["scope"])) or "<global>",
            escape(str(r["key"])),
            str(r["kind"]),
            escape(str(r["dtype"])) if r["dtype"] is not None else "-",
            "x".join(str(d) for d in shape) if isinstance(shape, list) else "-",
            str(r["offset"]) if r["offset"] is not None else "-",
            str(r["length"]),
            str(r["alignment"]) if r["alignment"] is not None else "-",
            escape(os.path.basename(str(r["origin"]))) if r["origin"] else "-",
        )

    body = [cells(r) for r in rows]
    try:
        from rich.console import Console
        from rich.table import Table
        from rich.text import Text
    except ImportError:
        widths = [max([len(h)] + [len(c[i]) for c in body]) for i, h in enumerate(headers)]
        for line in (headers, *body):
            sys.stdout.write("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() + "\n")
        return
    table = Table(*headers, title=f"{len(rows)} parameters, {sum(int(str(r['length'])) for r in rows)} bytes")
    for col in (table.columns[1], table.columns[8]):
        col.overflow = "fold"
    for c in body:
        table.add_row(*(Text(x) for x in c))  # Text: names are never read as rich markup
    tty = sys.stdout.isatty()
    # Off a terminal: no colour codes at all, and wide enough that names are not folded.
    console = Console(
        file=sys.stdout, soft_wrap=False, color_system="auto" if tty else None, width=None if tty else 240
    )
    console.print(table)
