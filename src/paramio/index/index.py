"""`ParameterIndex`: an ordered map from key to `ParameterEntry`, a superset of IREE's class.

IREE's ``iree.runtime.ParameterIndex`` keeps every entry added, duplicates included, and its
lookup returns the first match by linear scan. paramio keeps insertion order and O(1) lookup and
makes the duplicate rule a visible choice (`DuplicatePolicy`): by default a second entry with
the same key is an error; ``"first"`` and ``"last"`` keep one; ``"keep"`` reproduces IREE (both
kept, lookup finds the first).
"""

from __future__ import annotations

import enum
import operator
import os
import sys

from paramio.core.entries import LazyEntries
from paramio.core.entry import EntryKind, ParameterEntry
from paramio.core.errors import (
    DuplicateKeyError,
    FormatError,
    FormatWarning,
    InvalidArgumentError,
    ParameterNotFoundError,
    warn_caller,
)
from paramio.core.exports import above
from paramio.core.source import ByteSource
from paramio.core.tensor import encode_array_metadata
from paramio.formats.contract import ARCHIVE
from paramio.sources.paths import AllowExternal

TYPE_CHECKING = False  # `typing.TYPE_CHECKING` without importing typing (start-up: see paramio/__init__.py)
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
    from types import ModuleType
    from typing import Any

    import numpy as np

    from paramio.core.buffers import Buffer
    from paramio.formats.registry import FormatContents
    from paramio.sources.handles import FileHandle

__all__ = ["DuplicatePolicy", "ParameterIndex"]


class DuplicatePolicy(enum.StrEnum):
    """What `ParameterIndex.add` does with a key that is already present."""

    ERROR = "error"  #: raise `DuplicateKeyError` (the default)
    FIRST = "first"  #: keep the entry already there, drop the new one
    LAST = "last"  #: the new entry replaces the old one, in the old one's position
    KEEP = "keep"  #: keep both, as IREE does; lookups find the first


def _numpy_if_loaded() -> ModuleType | None:
    """NumPy when something imported it (no array can exist otherwise): opening and listing
    an index does not import it (a `paramio dump` process)."""
    return sys.modules.get("numpy")


def _ndarray(obj: object) -> np.ndarray | None:
    """`obj` when it is a NumPy array (found without importing NumPy)."""
    numpy = _numpy_if_loaded()
    if numpy is None or not isinstance(obj, numpy.ndarray):
        return None
    array: np.ndarray = obj
    return array


def _metadata_bytes(metadata: str | bytes | None) -> bytes:
    if metadata is None:
        return b""
    if isinstance(metadata, str):
        return metadata.encode()
    return bytes(metadata)


class ParameterIndex:
    """Parameters by key, in insertion order.

    >>> index = ParameterIndex()
    >>> index.add_splat("bias", np.float32(1.0), 16)
    >>> index["bias"].to_numpy().view(np.float32).tolist()
    [1.0, 1.0, 1.0, 1.0]
    """

    def __init__(
        self,
        entries: Iterable[ParameterEntry] = (),
        *,
        duplicates: DuplicatePolicy | str = DuplicatePolicy.ERROR,
    ) -> None:
        self.duplicates = DuplicatePolicy(duplicates)
        #: A list, or `LazyEntries` adopted from a reader (entries built on first use).
        self._entries: list[ParameterEntry] | LazyEntries = []
        self._positions: dict[str, int] = {}
        #: Format-level facts that are not entries: GGUF key/values, safetensors ``__metadata__``.
        self.attributes: dict[str, object] = {}
        #: Files this index was loaded from, in order.
        self.paths: list[str] = []
        #: What IREE objects made from this index (`create_provider`) read from.
        self._iree_keep: list[object] = []
        for e in entries:
            self.add(e)

    # -- adding ---------------------------------------------------------------------------

    def add(self, entry: ParameterEntry, *, duplicates: DuplicatePolicy | str | None = None) -> ParameterEntry:
        """Add `entry` under its key, applying the duplicate policy. Returns the entry kept."""
        policy = self.duplicates if duplicates is None else DuplicatePolicy(duplicates)
        pos = self._positions.get(entry.key)
        if pos is None:
            self._positions[entry.key] = len(self._entries)
            self._entries.append(entry)
            return entry
        if policy is DuplicatePolicy.ERROR:
            raise DuplicateKeyError(
                "key is already in the index (pass duplicates='first', 'last' or 'keep' to allow it)",
                key=entry.key,
                path=_entry_path(entry),
            )
        if policy is DuplicatePolicy.FIRST:
            return self._entries[pos]
        if policy is DuplicatePolicy.LAST:
            self._entries[pos] = entry
            return entry
        self._entries.append(entry)  # KEEP: the first stays the one found by lookup
        return entry

    def extend(self, entries: Iterable[ParameterEntry], *, duplicates: DuplicatePolicy | str | None = None) -> None:
        for e in entries:
            self.add(e, duplicates=duplicates)

    def add_buffer(
        self,
        key: str,
        buffer: Buffer,
        readable: bool = True,
        writable: bool = False,
        metadata: str | bytes | None = None,
    ) -> None:
        """Add a buffer without copying it (as IREE does). A NumPy array's dtype and shape are
        recorded as ``TENSORv0`` metadata unless `metadata` is given."""
        array = _ndarray(buffer)
        if array is not None:
            import numpy as np

            if metadata is None:
                try:
                    metadata = encode_array_metadata(array)
                except InvalidArgumentError:
                    metadata = None
            if array.ndim == 0:
                array = array.reshape(1).copy()
            array = np.ascontiguousarray(array)
            flat: Buffer = array.reshape(-1).view(np.uint8)
        else:
            flat = buffer
        from paramio.sources.memory import MemorySource  # here: opening and listing files adds no buffer

        source = MemorySource(flat, name=f"<memory:{key}>", writable=writable)
        self.add(ParameterEntry.data(key, source, 0, source.size, metadata=_metadata_bytes(metadata)))

    def add_array(self, key: str, array: np.ndarray, metadata: str | bytes | None = None) -> None:
        """Add a NumPy array, recording its dtype and shape (`TENSORv0`) unless `metadata` is given."""
        import numpy as np

        arr = np.asarray(array)
        meta = _metadata_bytes(metadata) if metadata is not None else encode_array_metadata(arr)
        self.add_buffer(key, arr, metadata=meta)

    def add_splat(
        self,
        key: str,
        pattern: Buffer | np.generic,
        total_length: int,
        metadata: str | bytes | None = None,
    ) -> None:
        """Add a splat: `pattern` repeated to `total_length` bytes.

        Raises `InvalidArgumentError` unless the pattern is 1, 2, 4, 8 or 16 bytes and divides
        `total_length` (`paramio.core.splats`) (IREE accepts both mistakes here and fails later, or never).
        """
        np = _numpy_if_loaded()
        if np is not None and isinstance(pattern, (np.generic, np.ndarray)):
            raw = pattern.tobytes()
        else:
            raw = bytes(memoryview(pattern))  # type: ignore[arg-type]
        validate_splat(key, raw, total_length)
        self.add(ParameterEntry.splat(key, raw, int(total_length), metadata=_metadata_bytes(metadata)))

    def add_from_file_handle(
        self,
        key: str,
        file_handle: FileHandle | ByteSource,
        length: int,
        offset: int = 0,
        metadata: str | bytes | None = None,
    ) -> None:
        """Add a span of a `FileHandle` (IREE's) or any `ByteSource`. Beyond IREE, a span past
        the end is refused here (`TruncatedError`), not when a program reads it."""
        from paramio.sources.handles import handle_source

        source = handle_source(file_handle)
        source.check_span(offset, length, key)
        self.add(ParameterEntry.data(key, source, offset, length, metadata=_metadata_bytes(metadata)))

    def create_provider(self, scope: str = "", max_concurrent_operations: int | None = None) -> object:
        """An ``iree.runtime.ParameterProvider`` over this index's entries under `scope`, for
        ``create_io_parameters_module`` (a real IREE object: needs ``paramio[iree]``, else
        `ImportError`). Entries added later are not seen: create a new provider."""
        # The bridge stands above this layer; the package root declares it (`paramio.core.exports`).
        create = above("index.create_provider")
        assert callable(create), create
        return create(self, scope=scope, max_concurrent_operations=max_concurrent_operations)

    def _keep_for_iree(self, obj: object) -> None:
        self._iree_keep.append(obj)

    def reserve(self, new_capacity: int) -> None:
        """Accepted for IREE compatibility; Python lists grow as needed."""

    def remove(self, key: str) -> ParameterEntry:
        """Remove and return the (first) entry under `key`."""
        pos = self._position(key)
        entry = self._entries.pop(pos)
        self._reindex()
        return entry

    def _reindex(self) -> None:
        self._positions = {}
        for i, e in enumerate(self._entries):
            self._positions.setdefault(e.key, i)

    # -- loading and writing -------------------------------------------------------------

    def load(
        self,
        file_path: str | os.PathLike[str],
        format: str | None = None,
        readable: bool = True,
        writable: bool = False,
        mmap: bool | None = None,
        *,
        mode: str | None = None,
        duplicates: DuplicatePolicy | str | None = None,
        strict: bool = False,
        allow_external: AllowExternal = None,
        copy: bool = False,
        source_options: Mapping[str, Any] | None = None,
    ) -> None:
        """Append the entries of a parameter file (IRPA, safetensors, GGUF, or a sharded set).

        `file_path` may be a URL (``https://``, ``s3://``, ``gs://``, ``az://``): only its header
        and tables are read here, entry data later with ranged reads. `source_options` go to
        `paramio.sources.open_source` for it and its siblings: ``{"cache": folder or
        DiskCache, "config": {"endpoint": ..., "access_key_id": ...}, "client_options": ...,
        "retry": ..., "timeout": ...}`` (`open` takes them as keywords).

        The format comes from `format`, else the extension, else the file's magic bytes.
        Files named inside it (IRPA external entries, shards) must resolve inside its folder
        or a folder in `allow_external` (``True``: anywhere). A writable load refuses a file
        whose data entries overlap (an in-place write would change two entries at once).
        Raises `FormatError` (naming file, entry and offset) for malformed files and
        `SourceError` for files that cannot (or may not) be opened. `strict` refuses files paramio otherwise
        reads with a `FormatWarning` (a GGUF key repeated).

        As IREE: `mmap` true or None maps the file, false reads it into memory;
        ``mode="file_async"`` reads through the file descriptor (no mapping), and giving both
        `mode` and `mmap` is an error.

        Entries view the file through a shared memory map: if another program truncates or
        rewrites the file while a view is in use, touching the view kills the process with
        SIGBUS. `copy=True` reads each file into memory once (never mapping it) and points
        the entries at that copy instead (see `paramio.sources.copied`); it cannot be
        combined with `writable` (`InvalidArgumentError`).
        """
        from paramio.formats.registry import read_path

        if copy and writable:
            raise InvalidArgumentError("copy=True reads the file into memory; it cannot also be writable")
        use_mmap = _load_mode(mmap, mode) and not copy
        contents = read_path(
            file_path,
            format=format,
            writable=writable,
            use_mmap=use_mmap,
            strict=strict,
            allow_external=allow_external,
            source_options=source_options,
        )
        if copy:
            from paramio.sources.copied import copy_entries

            contents.entries = copy_entries(contents.entries)
        if writable:
            _refuse_entry_overlaps(contents)
        if mode == "file_async" and not copy:  # IREE reads through the descriptor: its handles say fd(N)
            from paramio.sources.handles import mark_fd_source

            for source in {id(e.source): e.source for e in contents.entries if e.source is not None}.values():
                mark_fd_source(source)
        self._adopt(contents, duplicates, strict=strict)

    def load_from_file_handle(self, file_handle: FileHandle | ByteSource, format: str) -> None:
        """Append the entries of the file behind `file_handle` (memory or a file descriptor),
        parsed as `format` (``irpa``, ``gguf``, ``safetensors``), as IREE's method does."""
        from paramio.formats.handles import read_handle

        self._adopt(read_handle(file_handle, format), None)

    def _adopt(
        self, contents: FormatContents, duplicates: DuplicatePolicy | str | None, *, strict: bool = False
    ) -> None:
        lazy = contents.entries
        if isinstance(lazy, LazyEntries) and not self._entries:
            positions = lazy.take_positions()  # the reader's own duplicate check, when it made one
            if positions is None:
                keys = lazy.keys()
                positions = dict(zip(keys, range(len(keys)), strict=True))
            if len(positions) == len(lazy):  # no duplicates: adopt without building entries
                self._entries, self._positions = lazy, positions
            else:
                self._extend_from_file(lazy, duplicates, strict)
        elif isinstance(lazy, list) and not self._entries:
            # A reader's list into an empty index: one dict built at once; entry by entry
            # (`add`, its policy) only where the file repeats a key.
            positions = {e.key: i for i, e in enumerate(lazy)}
            if len(positions) == len(lazy):
                self._entries, self._positions = list(lazy), positions
            else:
                self._extend_from_file(lazy, duplicates, strict)
        else:
            self._extend_from_file(contents.entries, duplicates, strict)
        for k, v in contents.attributes.items():
            self.attributes.setdefault(k, v)
        self.paths.extend(contents.paths)

    def _extend_from_file(
        self, entries: Iterable[ParameterEntry], duplicates: DuplicatePolicy | str | None, strict: bool
    ) -> None:
        """Add a file's entries. A key the file itself repeats (IREE writes such archives and loads
        them, its lookups giving the first) is kept as IREE keeps it, with a `FormatWarning`, unless
        the caller chose a policy or `strict`; a key already in the index before this file still
        follows the index's policy."""
        if duplicates is not None or self.duplicates is not DuplicatePolicy.ERROR:
            self.extend(entries, duplicates=duplicates)
            return
        before = set(self._positions)
        seen: dict[str, int] = {}
        for number, entry in enumerate(entries):
            first = seen.setdefault(entry.key, number)
            if first == number or entry.key in before:
                self.add(entry)
                continue
            if strict:
                raise DuplicateKeyError(
                    f"the file repeats the key (entries {first} and {number}); strict reading refuses it",
                    key=entry.key,
                    path=_entry_path(entry),
                )
            if first >= 0:
                warn_caller(
                    f"{_entry_path(entry) or '<memory>'}: key {entry.key!r} appears more than once "
                    f"(entries {first} and {number}); lookups give the first, as IREE's do",
                    FormatWarning,
                )
                seen[entry.key] = -1 - first  # warn once per key
            self.add(entry, duplicates=DuplicatePolicy.KEEP)

    @classmethod
    def from_contents(
        cls, contents: FormatContents, *, duplicates: DuplicatePolicy | str = DuplicatePolicy.ERROR
    ) -> ParameterIndex:
        """A new index over what a format reader found (as `load` adopts it)."""
        index = cls(duplicates=duplicates)
        index._adopt(contents, None)
        return index

    @classmethod
    def open(
        cls,
        file_path: str | os.PathLike[str],
        format: str | None = None,
        *,
        writable: bool = False,
        duplicates: DuplicatePolicy | str = DuplicatePolicy.ERROR,
        strict: bool = False,
        allow_external: AllowExternal = None,
        copy: bool = False,
        verify: bool = False,
        **source_options: Any,
    ) -> ParameterIndex:
        """A new index over one parameter file (or sharded set), a path or a URL; see `load`.
        `copy=True` reads it into memory, so that no view can die of SIGBUS when the file
        changes; `source_options` (``cache=``, ``config=`` ...) are for a URL. `verify=True`
        reads every entry once, before returning, and checks it against the digests the file
        stores (its attributes or its sidecar): `IntegrityError` names the first entry that does
        not match, `FormatError` says the file stores none."""
        index = cls(duplicates=duplicates)
        index.load(
            file_path,
            format=format,
            writable=writable,
            strict=strict,
            allow_external=allow_external,
            copy=copy,
            source_options=source_options,
        )
        if verify:
            index._verify_digests(os.fspath(file_path))
        return index

    def _verify_digests(self, label: str) -> None:
        from paramio.core.errors import FormatError, IntegrityError
        from paramio.formats.digests import digest_items, record_of, sidecar_record

        record = record_of(self.attributes, where=label) or sidecar_record(label)
        if record is None:
            raise FormatError("stores no digests to verify against (paramio digest --write adds them)", path=label)
        first: dict[str, ParameterEntry] = {}
        for e in self._entries:
            first.setdefault(e.key, e)
        got = digest_items(list(first.items()), record.algorithm)
        for key, entry in first.items():
            expected = record.entries.get(key)
            if expected != got[key]:
                span = f" (bytes {entry.offset}..{entry.offset + entry.length})" if entry.source is not None else ""
                what = f"is not the stored {expected}" if expected is not None else "has no stored digest"
                raise IntegrityError(
                    f"{record.algorithm} digest {got[key]} {what}{span}",
                    algorithm=record.algorithm,
                    expected=expected,
                    got=got[key],
                    path=entry.source.name if entry.source is not None else label,
                    key=key,
                )

    def create_archive_file(
        self,
        file_path: str | os.PathLike[str],
        file_offset: int = 0,
        target_index: ParameterIndex | None = None,
        *,
        alignment: int = 64,
        digests: bool | str = False,
    ) -> ParameterIndex:
        """Write every entry to an IRPA archive at `file_path` and return an index over it.
        `digests` (True or an algorithm) stores a digest of every entry where IREE does not
        look (`paramio.formats.digests`); without it the bytes are IREE's own.

        Written atomically (temporary file, fsync, rename; through a symlink to its target).
        `file_offset` other than 0 is refused: IREE writes such files but cannot read them back;
        so is a path that is not a regular file (``-``, a FIFO, a device): the index is opened
        over the file written.
        """
        from paramio.formats.contract import get_format
        from paramio.formats.irpa.writer import write_archive
        from paramio.formats.sets import read_file
        from paramio.formats.targets import resolve_output

        if file_offset != 0:
            raise InvalidArgumentError("file_offset must be 0: IREE cannot read an archive that starts later")
        if resolve_output(file_path).streamed:
            raise InvalidArgumentError(
                "is not a regular file; an archive file is opened after writing, so it cannot be a stream",
                path=os.fspath(file_path),
            )
        from paramio.formats.digests import DigestSink, activated

        attributes = None
        sink: DigestSink | None = None
        if digests:
            from paramio.formats.digests import plan_sink, with_record

            sink = plan_sink(self._entries, self.attributes, digests)  # computed as the bytes are copied
            attributes = with_record(self.attributes, sink.record() if sink is not None else None)
        with activated(sink):
            write_archive(file_path, self._entries, alignment=alignment, attributes=attributes)
        result = target_index if target_index is not None else ParameterIndex(duplicates=DuplicatePolicy.KEEP)
        # The one file written, whatever its name: ``m-00001-of-00002.irpa`` is no set here.
        layout = get_format(ARCHIVE).set_layout
        assert layout is not None
        result._adopt(read_file(os.fspath(file_path), layout), DuplicatePolicy.KEEP)
        return result

    # -- mapping interface ----------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._entries)

    def __getitem__(self, item: int | str) -> ParameterEntry:
        if isinstance(item, str):
            return self._entries[self._position(item)]
        if isinstance(item, int) or hasattr(item, "__index__"):  # NumPy integers too
            i = operator.index(item)
            if not -len(self._entries) <= i < len(self._entries):
                raise IndexError(f"entry {i} out of range (have {len(self._entries)} entries in the index)")
            return self._entries[i]
        raise TypeError(f"index keys are str (by key) or int (by position), not {type(item).__name__}")

    def _position(self, key: str) -> int:
        pos = self._positions.get(key)
        if pos is None:
            raise ParameterNotFoundError("no parameter found in index with this key", key=key)
        return pos

    def get(self, key: str, default: ParameterEntry | None = None) -> ParameterEntry | None:
        pos = self._positions.get(key)
        return default if pos is None else self._entries[pos]

    def __contains__(self, key: object) -> bool:
        return key in self._positions

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def keys(self) -> list[str]:
        if isinstance(self._entries, LazyEntries):
            return self._entries.keys()
        return [e.key for e in self._entries]

    def values(self) -> list[ParameterEntry]:
        entries = self._entries
        return list(entries.all() if isinstance(entries, LazyEntries) else entries)

    def items(self) -> list[tuple[str, ParameterEntry]]:
        """(key, entry) pairs in index order, duplicates included (as IREE returns them)."""
        entries = self._entries
        if isinstance(entries, LazyEntries):
            return entries.items()
        return [(e.key, e) for e in entries]

    @property
    def entries(self) -> Sequence[ParameterEntry]:
        return tuple(self._entries)

    @property
    def total_bytes(self) -> int:
        return sum(e.length for e in self._entries)

    def __repr__(self) -> str:
        return self.dump()

    def dump(self, scope: str = "", *, escape: Callable[[list[str]], list[str]] | None = None) -> str:
        """IREE's listing of this index under `scope` (what ``iree-dump-parameters`` prints);
        an index read from an IRPA archive lists from the table without building entries.
        `escape` maps keys before printing (see `paramio.index.dump.format_dump`)."""
        from paramio.index.dump import format_dump

        return format_dump(self._entries, scope=scope, escape=escape)


def _load_mode(mmap: bool | None, mode: str | None) -> bool:
    """Whether `load` maps the file, from IREE's `mmap` and `mode` arguments."""
    if mode is None:
        return mmap is None or bool(mmap)
    if mmap is not None:
        raise InvalidArgumentError("mode and mmap are mutually exclusive")  # IREE's words
    if mode == "file_async":
        return False
    raise InvalidArgumentError(f"unsupported parameter file mode: {mode}")


def validate_splat(key: str, pattern: bytes, total_length: int) -> None:
    """Refuse splats IREE's builder or runtime would reject or misread (`paramio.core.splats`):
    a pattern over 16 bytes with the words of IREE's ``add_splat``, the others when IREE would
    only fail later."""
    from paramio.core.splats import MAX_SPLAT_PATTERN_LENGTH, check_splat  # here: listing a file adds no splat

    if len(pattern) > MAX_SPLAT_PATTERN_LENGTH:
        raise InvalidArgumentError(f"pattern must be limited to {MAX_SPLAT_PATTERN_LENGTH} bytes", key=key)
    check_splat(len(pattern), total_length, key=key)


def _refuse_entry_overlaps(contents: FormatContents) -> None:
    """Writable opens: no two data entries of one writable file may share bytes."""
    from paramio.formats.overlaps import Overlap, find_overlaps

    entries = contents.entries
    groups: list[tuple[str, list[Overlap]]] = []
    if isinstance(entries, LazyEntries) and entries.dump_columns() is not None:
        # Every row of a reader's lazy table lives in the one file it read.
        name = contents.paths[0] if contents.paths else "?"
        groups.append((name, find_overlaps(None, entries)))
    else:
        sources: dict[int, ByteSource] = {}
        for e in entries:
            if e.source is not None and e.source.writable:
                sources.setdefault(id(e.source), e.source)
        for src in sources.values():
            groups.append((src.name, find_overlaps(src, [e for e in entries if e.source is src])))
    for name, found in groups:
        if found:
            raise FormatError(
                f"{found[0].message}; an in-place write would change both, so the file cannot be "
                f"opened writable ({len(found)} overlap(s); `paramio verify` lists them)",
                path=name,
                key=found[0].key,
                offset=found[0].offset,
            )


def _entry_path(entry: ParameterEntry) -> str | None:
    return entry.source.path if entry.source is not None else None


_ = EntryKind  # re-exported through paramio.index
