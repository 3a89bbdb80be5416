"""Reading IRPA archives with every check IREE's parser makes, in IREE's order.

Beyond IREE: EXTERNAL entries are read (the path is resolved relative to the archive, and must
stay inside the archive's folder unless the caller allows more: `paramio.sources.paths`), and
linked archives (``next_header_offset``) are followed correctly; IREE's parser rejects the
first and misreads the second. Errors name the file, the entry and the byte offset.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

from paramio.core.entry import EntryKind, ParameterEntry
from paramio.core.errors import FormatError, SourceError, TruncatedError, UnsupportedFormatError
from paramio.core.source import ByteSource
from paramio.formats.bulk import use_bulk
from paramio.formats.cursor import Cursor
from paramio.formats.inputs import is_url, open_input
from paramio.formats.irpa.layout import (
    DATA_TAIL,
    ENTRY_ALIGNMENT,
    ENTRY_HEADER,
    ENTRY_SIZES,
    EXTERNAL_TAIL,
    HEADER_PREFIX,
    HEADER_PREFIX_SIZE,
    HEADER_SIZE,
    HEADER_V0_TAIL,
    MAGIC,
    MAX_SPLAT_PATTERN_LENGTH,
    SPLAT_TAIL,
    EntryType,
    align,
    reference_budget,
)
from paramio.formats.irpa.table import read_plain, tail_is_skips
from paramio.formats.regions import Prefix, first_read
from paramio.formats.registry import FormatContents
from paramio.sources.file import FileSource
from paramio.sources.paths import AllowExternal, Confinement

__all__ = [
    "check_header",
    "header_at",
    "read_archive",
    "read_header",
    "read_path",
    "read_source",
    "reference_budget",
    "structure_regions",
    "tables_at",
    "take_attributes",
]

_MAX_LINKED_HEADERS = 1 << 16
#: Bytes a data entry takes in the table, padding included (the plain path's rows).
_PLAIN_STRIDE = align(ENTRY_SIZES[EntryType.DATA], ENTRY_ALIGNMENT)

#: The first read of an archive from a source that pays per request (a URL): the header and, for
#: most archives, the tables after it. A local file is asked for the header, then the tables.
FIRST_READ = 64 * 1024


class _References:
    """Bytes of names and metadata referenced so far, against the budget; each distinct
    metadata range decoded once and shared by the entries that name it."""

    __slots__ = ("limit", "metadata", "total")

    def __init__(self, size: int) -> None:
        self.limit = reference_budget(size)
        self.total = 0
        self.metadata: dict[tuple[int, int], bytes] = {}

    def add(self, n: int, path: str, offset: int) -> None:
        self.total += n
        if self.total > self.limit:
            raise FormatError(
                f"entries reference more than {self.limit} bytes of names and metadata (4x the file "
                "plus 1 MiB): ranges shared this widely are refused",
                path=path,
                offset=offset,
            )


#: A table this long is read with NumPy even when it is not imported yet: below it, the path
#: without NumPy (`irpa/table.py`) lists faster than importing NumPy would let the bulk path
#: (``paramio dump`` processes: 201 against 280 ms at 100,000 entries; `paramio.formats.bulk`).
BULK_FROM_ENTRIES = 1 << 17


def read_path(
    path: str, *, writable: bool = False, use_mmap: bool = True, allow_external: AllowExternal = None
) -> FormatContents:
    """Read the archive at `path`. External entries must resolve inside its folder or a folder
    in `allow_external` (``True``: anywhere). A writable open also refuses an archive whose data
    entries overlap its header, tables or each other (an in-place write would corrupt it).
    Raises `FormatError` subclasses for malformed archives, `SourceError` for files that cannot
    (or may not) be opened. Only the headers and tables are read (`read_source`); a URL costs a
    first read of `FIRST_READ` bytes and one more for tables the header says lie past it;
    external entries then resolve against the URL's folder."""
    source = open_input(path, writable=writable, use_mmap=use_mmap)
    return read_source(source, path, writable=writable, allow_external=allow_external)


def read_source(
    source: ByteSource, path: str, *, writable: bool = False, allow_external: AllowExternal = None, bulk: bool = True
) -> FormatContents:
    """`read_path` on a source already open (an overlay opens its file with read-only views).

    Reads the header (from a remote source, a first read of `FIRST_READ` bytes, which usually
    holds the tables too), then the entry table and metadata segment it names, through the
    source; entries point into `source`. External entries of an archive named by URL are its URL's siblings.
    A large table (`paramio.formats.bulk.use_bulk`) is checked at once (`bulk.read_table`) unless
    `bulk` is false; whatever that path leaves, and every smaller table, goes entry by entry."""
    prefix = Prefix(source, first_read(source, HEADER_SIZE, FIRST_READ))
    if source.size >= HEADER_SIZE:
        header = header_at(source, prefix, 0)
        table, meta = tables_at(prefix, 0, header)
        lazy = None
        if bulk and use_bulk(header[0], BULK_FROM_ENTRIES):
            from paramio.formats.irpa.bulk import read_table

            lazy = read_table(source, table, meta, header)
        if lazy is not None:
            if writable:
                _refuse_overlaps(source, lazy.entries)
            return FormatContents(lazy.entries, lazy.attributes, [path])
        plain = _read_plain(source, table, meta, header, path, allow_external) if bulk else None
        if plain is not None:
            if writable:
                _refuse_overlaps(source, plain.entries)
            return plain
    skipped: list[tuple[str, bytes]] = []
    remote = is_url(path)  # a remote archive's external files are its URL's siblings
    confinement = Confinement.beside("" if remote else path, allow_external)
    first = (header, table, meta) if source.size >= HEADER_SIZE else None
    entries = _read_all(source, prefix, skipped, confinement, siblings=remote, first=first)
    entries, attributes = take_attributes(entries, skipped)
    if writable:
        _refuse_overlaps(source, entries)
    return FormatContents(entries, attributes, [path])


def _read_plain(
    source: ByteSource,
    table: memoryview,
    meta: memoryview,
    header: tuple[int, ...],
    path: str,
    allow_external: AllowExternal,
) -> FormatContents | None:
    """The archive through `paramio.formats.irpa.table` (data rows checked as columns, entries
    built on first use), its trailing SKIP rows through the loop; None leaves it all to the loop."""
    plain = read_plain(source, table, meta, header)
    if plain is None:
        return None
    entries, done, referenced = plain
    count = header[0]
    skipped: list[tuple[str, bytes]] = []
    if done < count:
        if not tail_is_skips(table, header[2], done, count):
            return None
        refs = _References(source.size)
        refs.total = referenced
        rest: list[ParameterEntry] = []
        confinement = Confinement.beside("" if is_url(path) else path, None)  # SKIP rows name no file
        _read_one(source, table, meta, 0, header, rest, skipped, confinement, refs, False, first=done)
        assert not rest  # SKIP rows make no entry
    attributes: dict[str, object] = {}
    if skipped or "__paramio_attributes__" in entries.keys():
        from paramio.formats.irpa.attributes import ATTRIBUTES_KEY, decode_record

        for name, metadata in skipped:
            if name == ATTRIBUTES_KEY:
                record = decode_record(metadata)
                if record is not None:
                    return FormatContents(entries, record, [path])
        if ATTRIBUTES_KEY in entries.keys():
            return None  # perhaps an old-style attributes entry: `take_attributes` decides
    return FormatContents(entries, attributes, [path])


def _refuse_overlaps(source: ByteSource, entries: object) -> None:
    from paramio.formats.overlaps import find_overlaps

    problems = find_overlaps(source, entries, structure_regions(source))
    if problems:
        first = problems[0]
        raise FormatError(
            f"{first.message}; an in-place write would corrupt the archive, so it cannot be opened "
            f"writable ({len(problems)} overlap(s); `paramio verify` lists them)",
            path=source.name,
            key=first.key,
            offset=first.offset,
        )


def header_at(source: ByteSource, prefix: Prefix, base: int) -> tuple[int, ...]:
    """The checked v0 header at `base` (`check_header`), read through `prefix`."""
    n = max(0, min(HEADER_SIZE, source.size - base))
    (raw,) = prefix.spans([(base, n)])
    return check_header(raw, base, source.size, source.name)


def tables_at(prefix: Prefix, base: int, header: tuple[int, ...]) -> tuple[memoryview, memoryview]:
    """(entry table, metadata segment) of the header at `base`, in one read through `prefix`
    (the header checked that both lie inside the file)."""
    _count, e_off, e_len, m_off, m_len, _s_off, _s_len, _next = header
    table, meta = prefix.spans([(base + e_off, e_len), (base + m_off, m_len)])
    return table, meta


def _walk_headers(
    source: ByteSource, prefix: Prefix, first: tuple[int, ...] | None = None
) -> Iterator[tuple[int, tuple[int, ...]]]:
    """``(base, header)`` of the archive header (`first`, when already read) and every linked
    one, in order. Raises `FormatError` for a bad header or a cycle."""
    base = 0
    seen: set[int] = set()
    while True:
        header = first if first is not None and base == 0 else header_at(source, prefix, base)
        yield base, header
        nxt = header[7]
        if nxt == 0:
            return
        base += nxt
        if base in seen or len(seen) > _MAX_LINKED_HEADERS:
            raise FormatError("linked archive headers form a cycle", path=source.name, offset=base)
        seen.add(base)


def structure_regions(source: ByteSource) -> list[tuple[int, int, str]]:
    """``(start, end, what)`` of every header, entry table and metadata segment in `source`
    (following linked headers): the bytes no data entry may share. Reads the headers only.
    Raises `FormatError`."""
    regions: list[tuple[int, int, str]] = []
    for base, header in _walk_headers(source, Prefix(source, HEADER_SIZE)):
        _count, e_off, e_len, m_off, m_len, _s_off, _s_len, _nxt = header
        regions.append((base, base + HEADER_SIZE, "the archive header"))
        if e_len:
            regions.append((base + e_off, base + e_off + e_len, "the entry table"))
        if m_len:
            regions.append((base + m_off, base + m_off + m_len, "the metadata segment"))
    return regions


def take_attributes(
    entries: list[ParameterEntry], skipped: list[tuple[str, bytes]]
) -> tuple[list[ParameterEntry], dict[str, object]]:
    """The file-level attributes paramio stored: the SKIP record if there is one, else an
    old-style attributes entry (taken out of `entries`); see `paramio.formats.irpa.attributes`."""
    from paramio.formats.irpa.attributes import ATTRIBUTES_KEY, decode_record, split_legacy_attributes

    for name, metadata in skipped:
        if name == ATTRIBUTES_KEY:
            record = decode_record(metadata)
            if record is not None:
                return entries, record
    rest, legacy = split_legacy_attributes(entries)
    return rest, legacy if legacy is not None else {}


def read_archive(
    source: ByteSource,
    *,
    skipped: list[tuple[str, bytes]] | None = None,
    confinement: Confinement | None = None,
    siblings: bool = False,
) -> list[ParameterEntry]:
    """Every entry of the archive(s) in `source`, in table order, read from its headers and
    tables only. SKIP entries are left out, as IREE leaves them; their ``(name, metadata)`` go
    to `skipped` when given. External files are resolved by `confinement` (default: inside the
    archive's folder; for a source with no path, the working directory), or with `siblings` as
    `source.sibling` (a remote archive's folder)."""
    if confinement is None:
        confinement = Confinement.beside(source.path or os.path.join(os.getcwd(), source.name or "archive"))
    return _read_all(
        source, Prefix(source, first_read(source, HEADER_SIZE, FIRST_READ)), skipped, confinement, siblings=siblings
    )


def _read_all(
    source: ByteSource,
    prefix: Prefix,
    skipped: list[tuple[str, bytes]] | None,
    confinement: Confinement,
    *,
    siblings: bool,
    first: tuple[tuple[int, ...], memoryview, memoryview] | None = None,
) -> list[ParameterEntry]:
    """The entries of every (linked) header; `first` is the header at 0 and its tables when
    the caller has read them already."""
    entries: list[ParameterEntry] = []
    refs = _References(source.size)
    for base, header in _walk_headers(source, prefix, first[0] if first else None):
        table, meta = (first[1], first[2]) if first and base == 0 else tables_at(prefix, base, header)
        _read_one(source, table, meta, base, header, entries, skipped, confinement, refs, siblings)
    return entries


def read_header(cur: Cursor, base: int, name: str) -> tuple[int, ...]:
    """`check_header` on the header at `base` of the whole-file buffer under `cur`."""
    return check_header(cur.buf[base : base + HEADER_SIZE], base, cur.end, name)


def check_header(raw: memoryview | bytes, base: int, size: int, name: str) -> tuple[int, ...]:
    """The v0 header at `base` of a file of `size` bytes, whose first bytes (up to
    `HEADER_SIZE`) are `raw`, checked as IREE checks it: ``(entry_count, entries_offset,
    entries_length, metadata_offset, metadata_length, storage_offset, storage_length,
    next_header_offset)``. Raises `FormatError` subclasses naming the field's offset."""
    if size < base + HEADER_PREFIX_SIZE:
        raise TruncatedError(
            f"not enough bytes for a valid IRPA header ({size - base} of {HEADER_PREFIX_SIZE}); "
            "file may be empty or truncated",
            path=name,
            offset=base,
        )
    magic, major, minor, header_size, next_offset, _flags = HEADER_PREFIX.unpack_from(raw, 0)
    if magic != MAGIC:
        raise FormatError(
            f"IRPA file magic missing or invalid {magic:08X}; expected {MAGIC:08X}", path=name, offset=base
        )
    if header_size > size:
        raise TruncatedError(
            f"header of reported size {header_size} is larger than the file ({size} bytes)", path=name, offset=base + 8
        )
    if next_offset != 0 and size < base + next_offset + HEADER_PREFIX_SIZE:
        raise TruncatedError(
            f"linked header at {base + next_offset:#x} lies past the end of the file ({size:#x})",
            path=name,
            offset=base + 16,
        )
    if major != 0:
        raise UnsupportedFormatError(f"IRPA major version {major}.{minor} not supported", path=name, offset=base + 4)
    if minor > 0:
        raise UnsupportedFormatError(
            f"IRPA version 0.{minor} not supported (newer than paramio)", path=name, offset=base + 6
        )
    if header_size != HEADER_SIZE:
        raise FormatError(
            f"IRPA v0 header expected to be exactly {HEADER_SIZE} bytes but was reported as {header_size}",
            path=name,
            offset=base + 8,
        )
    if base + HEADER_SIZE > size:
        raise TruncatedError("header runs past the end of the file", path=name, offset=base)
    count, e_off, e_len, m_off, m_len, s_off, s_len = HEADER_V0_TAIL.unpack_from(raw, HEADER_PREFIX_SIZE)
    for what, off, length, field in (
        ("entry table", e_off, e_len, 40),
        ("metadata segment", m_off, m_len, 56),
        ("storage segment", s_off, s_len, 72),
    ):
        if length and base + off + length > size:
            raise TruncatedError(
                f"{what} {base + off:#x}..{base + off + length:#x} ({length} bytes) ends past the end "
                f"of the file ({size:#x})",
                path=name,
                offset=base + field,
            )
    return count, e_off, e_len, m_off, m_len, s_off, s_len, next_offset


def _read_one(
    source: ByteSource,
    table: memoryview,
    meta: memoryview,
    base: int,
    header: tuple[int, ...],
    entries: list[ParameterEntry],
    skipped: list[tuple[str, bytes]] | None,
    confinement: Confinement,
    refs: _References,
    siblings: bool,
    *,
    first: int = 0,
) -> None:
    """The entries of the table of the header at `base`; `table` and `meta` hold its entry
    table and metadata segment (error offsets stay offsets in the file). `first` > 0 starts at
    that row, the rows before it being data entries of 80 bytes each already read
    (`paramio.formats.irpa.table`), with `refs` counting what they reference."""
    name = source.name
    count, e_off, e_len, m_off, m_len, s_off, s_len, _next_offset = header
    table_base = base + e_off
    pos = table_base + first * _PLAIN_STRIDE
    remaining = e_len - first * _PLAIN_STRIDE
    meta_base = base + m_off
    storage_base = base + s_off
    for i in range(first, count):
        if remaining < ENTRY_HEADER.size:
            raise TruncatedError(
                f"entry table truncated: entry {i} of {count} needs {ENTRY_HEADER.size} bytes for its "
                f"header but {max(remaining, 0)} remain",
                path=name,
                offset=pos,
            )
        at = pos - table_base  # where the entry sits in `table`
        (entry_size, etype, _eflags, n_off, n_len, md_off, md_len, _min_align) = ENTRY_HEADER.unpack_from(table, at)
        if entry_size < ENTRY_HEADER.size or entry_size > remaining:
            raise TruncatedError(
                f"entry table truncated: entry {i} claims {entry_size} bytes but {remaining} remain",
                path=name,
                offset=pos,
            )
        _meta_check(m_len, n_off, n_len, "name", name, pos + 20, None)
        refs.add(n_len, name, pos + 20)
        key_bytes = _meta_ref(meta, m_len, n_off, n_len, "name", name, pos + 20, None)
        key = key_bytes.decode("utf-8", "surrogateescape")
        _meta_check(m_len, md_off, md_len, "metadata", name, pos + 36, key)
        refs.add(md_len, name, pos + 36)
        metadata = refs.metadata.get((meta_base + md_off, md_len), b"") if md_len else b""
        if md_len and not metadata:
            metadata = _meta_ref(meta, m_len, md_off, md_len, "metadata", name, pos + 36, key)
            refs.metadata[(meta_base + md_off, md_len)] = metadata
        tail = pos + ENTRY_HEADER.size
        tail_at = at + ENTRY_HEADER.size
        if etype == EntryType.SKIP:
            if skipped is not None:
                skipped.append((key, metadata))
        elif etype == EntryType.SPLAT:
            if entry_size < ENTRY_SIZES[EntryType.SPLAT]:
                raise TruncatedError(
                    f"splat entry length underflow ({entry_size} < 85)", path=name, key=key, offset=pos
                )
            length, pattern, plen = SPLAT_TAIL.unpack_from(table, tail_at)
            if plen > MAX_SPLAT_PATTERN_LENGTH:
                raise FormatError(
                    f"splat pattern length {plen} out of bounds {MAX_SPLAT_PATTERN_LENGTH}",
                    path=name,
                    key=key,
                    offset=tail + 24,
                )
            entries.append(
                ParameterEntry.splat(key, pattern[:plen], length, metadata=metadata, origin="irpa", file_index=i)
            )
        elif etype == EntryType.DATA:
            if entry_size < ENTRY_SIZES[EntryType.DATA]:
                raise TruncatedError(f"data entry length underflow ({entry_size} < 76)", path=name, key=key, offset=pos)
            s_rel, s_length = DATA_TAIL.unpack_from(table, tail_at)
            if s_length == 0:
                offset = 0  # as IREE: an empty entry gets offset 0 and no range check
            else:
                if s_rel + s_length > s_len:
                    raise TruncatedError(
                        f"storage reference {s_rel:#x}..{s_rel + s_length:#x} lies outside the storage "
                        f"segment ({s_len} bytes)",
                        path=name,
                        key=key,
                        offset=tail,
                    )
                offset = storage_base + s_rel
            entries.append(
                ParameterEntry.data(key, source, offset, s_length, metadata=metadata, origin="irpa", file_index=i)
            )
        elif etype == EntryType.EXTERNAL:
            if entry_size < ENTRY_SIZES[EntryType.EXTERNAL]:
                raise TruncatedError(
                    f"external entry length underflow ({entry_size} < 92)", path=name, key=key, offset=pos
                )
            p_off, p_len, r_off, r_len = EXTERNAL_TAIL.unpack_from(table, tail_at)
            ext_path = _meta_ref(meta, m_len, p_off, p_len, "external path", name, tail, key)
            entries.append(
                _external_entry(source, key, metadata, ext_path, r_off, r_len, i, confinement, tail, siblings)
            )
        else:
            raise UnsupportedFormatError(f"entry type {etype} is not supported", path=name, key=key, offset=pos + 8)
        step = align(entry_size, ENTRY_ALIGNMENT)
        pos += step
        remaining -= step


def _meta_check(meta_len: int, off: int, length: int, what: str, path: str, field_offset: int, key: str | None) -> None:
    if length and off + length > meta_len:
        raise TruncatedError(
            f"{what} reference {off:#x}..{off + length:#x} lies outside the metadata segment ({meta_len} bytes)",
            path=path,
            key=key,
            offset=field_offset,
        )


def _meta_ref(
    meta: memoryview,
    meta_len: int,
    off: int,
    length: int,
    what: str,
    path: str,
    field_offset: int,
    key: str | None,
) -> bytes:
    if length == 0:
        return b""
    if off + length > meta_len:
        raise TruncatedError(
            f"{what} reference {off:#x}..{off + length:#x} lies outside the metadata segment ({meta_len} bytes)",
            path=path,
            key=key,
            offset=field_offset,
        )
    return bytes(meta[off : off + length])


def _external_entry(
    source: ByteSource,
    key: str,
    metadata: bytes,
    raw_path: bytes,
    r_off: int,
    r_len: int,
    index: int,
    confinement: Confinement,
    field: int,
    siblings: bool,
) -> ParameterEntry:
    try:
        if siblings:  # a remote archive: beside its URL, same rules
            full = raw_path.decode("utf-8", "surrogateescape")
            ext: ByteSource = source.sibling(full)
        else:
            full = confinement.resolve(raw_path, key=key)
            ext = FileSource(full)
    except FormatError as exc:
        raise FormatError(exc.reason, path=source.name, key=key, offset=field) from exc
    except SourceError as exc:
        where = "" if exc.path == source.name else f"external file {exc.path}: "
        raise SourceError(where + exc.reason, path=source.name, key=key, offset=field) from exc
    if r_off + r_len > ext.size:
        raise TruncatedError(
            f"external range {r_off:#x}..{r_off + r_len:#x} ends past the end of {full} ({ext.size:#x})",
            path=source.name,
            key=key,
            offset=field + 16,
        )
    return ParameterEntry.data(
        key, ext, r_off, r_len, metadata=metadata, origin="irpa", file_index=index, kind=EntryKind.EXTERNAL
    )
