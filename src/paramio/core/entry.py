"""One parameter: a key, a byte length, optional metadata, and where its bytes come from."""

from __future__ import annotations

import builtins
import enum
import sys

from paramio.core.dtypes import dtype_by_name, numpy_dtype
from paramio.core.errors import InvalidArgumentError
from paramio.core.source import ByteSource, handle_for
from paramio.core.tensor import TensorInfo, decode_tensor_metadata

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    import numpy as np  # imported where an array is made: reading and listing need no NumPy
else:
    np = None  # bound by the first `to_numpy` (a global test is cheaper there than an import)

__all__ = ["EntryKind", "ParameterEntry", "ParameterIndexEntry", "decoded_tensor", "entries_from_columns"]

_UNSET: object = object()
#: `to_numpy` view plans by (dtype name, shape, byte length): tensors of one model repeat a few
#: shapes, and resolving the dtype and proving the shape cost more than making the view.
_PLANS: dict[tuple[str, tuple[int, ...], int], tuple[np.dtype[np.generic], tuple[int, ...] | None]] = {}
_MAX_PLANS = 4096
#: Decoded ``TENSORv0``/``PYTORCH`` metadata by its bytes: the entries of one archive repeat a
#: few dtype/shape texts, and parsing the JSON costs more than the rest of `to_numpy`. The
#: `TensorInfo` values are frozen, so entries may share them.
_DECODED: dict[bytes, TensorInfo | None] = {}
_MAX_DECODED = 4096
_MAX_DECODED_SIZE = 4096
#: `to_numpy(copy=True)` copies entries up to this size from the mapping, larger ones by `readinto`.
_SMALL_COPY = 1 << 18


_BYTES_PLAN: list[tuple[np.dtype[np.generic], None]] = []


def _bytes_plan() -> tuple[np.dtype[np.generic], None]:
    """The view plan of an untyped entry: its bytes, as ``uint8`` (made once)."""
    if not _BYTES_PLAN:
        import numpy as np

        _BYTES_PLAN.append((np.dtype(np.uint8), None))
    return _BYTES_PLAN[0]


def _whole_view(source: ByteSource) -> memoryview | bool:
    """`source.whole_view()` (False for None), kept on the source (`ByteSource.whole_view_cache`)
    for sources whose views are windows of one stable buffer (a mapped file, a memory buffer)."""
    whole = source.whole_view()
    result: memoryview | bool = whole if whole is not None else False
    try:
        source.whole_view_cache = result
    except AttributeError:  # a source that made the attribute read-only: asked each time
        pass
    return result


class EntryKind(enum.StrEnum):
    """What backs an entry's bytes."""

    DATA = "data"  #: a span of a byte source
    SPLAT = "splat"  #: a short pattern repeated to `length` bytes; no storage
    EXTERNAL = "external"  #: a span of another file named by an IRPA external entry


_FIELDS = (
    "key",
    "kind",
    "length",
    "metadata",
    "source",
    "offset",
    "pattern",
    "declared_tensor",
    "origin",
    "file_index",
    "_tensor_cache",
)


def decoded_tensor(metadata: bytes) -> TensorInfo | None:
    """`decode_tensor_metadata`, remembered for small metadata: a model repeats a few of them."""
    cacheable = type(metadata) is bytes and len(metadata) <= _MAX_DECODED_SIZE
    cached = _DECODED.get(metadata, _UNSET) if cacheable else _UNSET
    if cached is _UNSET:
        cached = decode_tensor_metadata(metadata)
        if cacheable:
            if len(_DECODED) >= _MAX_DECODED:
                _DECODED.clear()
            _DECODED[metadata] = cached
    return cached  # type: ignore[return-value]


class _Fields:
    """`ParameterEntry`'s storage, without its guard against assignment: `entries_from_columns`
    fills these with plain slot stores and then makes them entries (same slots; the subclass adds
    only behaviour), a sixth of the keyword constructor's cost per entry. Measured against the
    alternatives for 10,000 entries (issue 23.8, benchmarks/results/readers-before-after.md):
    ``object.__new__`` + the slot descriptors' setters 3.0x, the keyword constructor 4.5x,
    ``__new__`` + ``__setstate__`` 5.7x the time of this class swap, so it stays."""

    __slots__ = _FIELDS

    key: str
    kind: EntryKind
    length: int
    metadata: bytes
    source: ByteSource | None
    offset: int
    pattern: bytes
    declared_tensor: TensorInfo | None
    origin: str
    file_index: int | None
    _tensor_cache: object


class ParameterEntry(_Fields):
    """A parameter in an index: a plain, immutable record; `replace()` makes changed copies.

    Attributes match IREE's ``ParameterIndexEntry`` (`key`, `length`, `metadata`, `is_file`,
    `is_splat`, `splat_pattern`, `file_view`, `file_storage`), so code written for IREE's Python
    API keeps working, plus typed access (`tensor`, `to_numpy`) and zero-copy views.

    The constructor takes keywords only (two of the fields are byte counts that must not be
    swapped); `data()` and `splat()` are the usual ways to make one. Readers that already decoded
    the entry's metadata pass it as `decoded` (a model repeats a few metadata texts).
    """

    __slots__ = ()

    #: Typed view facts given by the format (safetensors, GGUF); otherwise read from metadata.
    declared_tensor: TensorInfo | None
    #: Where the entry came from, for dumps and provenance: the format name ("irpa", ...).
    origin: str
    #: The entry's position in its file's own table, when read from a file.
    file_index: int | None

    def __init__(
        self,
        *,
        key: str,
        kind: EntryKind,
        length: int,
        metadata: bytes = b"",
        source: ByteSource | None = None,
        offset: int = 0,
        pattern: bytes = b"",
        declared_tensor: TensorInfo | None = None,
        origin: str = "memory",
        file_index: int | None = None,
        decoded: TensorInfo | None | object = _UNSET,
    ) -> None:
        # Slot descriptors store past the immutability guard (`__setattr__`) at the cost of a
        # plain store: readers build hundreds of thousands of entries.
        _set_key(self, key)
        _set_kind(self, kind)
        _set_length(self, length)
        _set_metadata(self, metadata)
        _set_source(self, source)
        _set_offset(self, offset)
        _set_pattern(self, pattern)
        _set_declared(self, declared_tensor)
        _set_origin(self, origin)
        _set_file_index(self, file_index)
        _set_cache(self, decoded)

    def __setattr__(self, name: str, value: object) -> None:
        import dataclasses  # the error a frozen dataclass raises (`paramio.core.records.Record`)

        raise dataclasses.FrozenInstanceError(f"cannot assign to field {name!r}: entries are immutable; use replace()")

    def __delattr__(self, name: str) -> None:
        import dataclasses

        raise dataclasses.FrozenInstanceError(f"cannot delete field {name!r}: entries are immutable")

    # -- construction ---------------------------------------------------------------------

    @classmethod
    def data(
        cls,
        key: str,
        source: ByteSource,
        offset: int,
        length: int,
        *,
        metadata: bytes = b"",
        tensor: TensorInfo | None = None,
        origin: str = "memory",
        file_index: int | None = None,
        kind: EntryKind = EntryKind.DATA,
    ) -> ParameterEntry:
        if cls is ParameterEntry:  # readers make one per entry: see `_entry`
            return _entry(key, kind, length, metadata, source, offset, b"", tensor, origin, file_index)
        return cls(
            key=key,
            kind=kind,
            length=length,
            metadata=metadata,
            source=source,
            offset=offset,
            declared_tensor=tensor,
            origin=origin,
            file_index=file_index,
        )

    @classmethod
    def splat(
        cls,
        key: str,
        pattern: bytes,
        length: int,
        *,
        metadata: bytes = b"",
        tensor: TensorInfo | None = None,
        origin: str = "memory",
        file_index: int | None = None,
    ) -> ParameterEntry:
        if cls is ParameterEntry:
            return _entry(key, EntryKind.SPLAT, length, metadata, None, 0, bytes(pattern), tensor, origin, file_index)
        return cls(
            key=key,
            kind=EntryKind.SPLAT,
            length=length,
            metadata=metadata,
            pattern=bytes(pattern),
            declared_tensor=tensor,
            origin=origin,
            file_index=file_index,
        )

    def replace(self, **changes: object) -> ParameterEntry:
        """A copy with fields changed (e.g. ``key=`` for a rename); the decoded metadata is
        kept only when neither the metadata nor the declared tensor changes."""
        if not _PUBLIC_FIELDS.issuperset(changes):
            raise TypeError(f"ParameterEntry has no field(s) {sorted(set(changes) - _PUBLIC_FIELDS)}")
        if type(self) is not ParameterEntry:  # a subclass may construct its own way
            fields = {name: getattr(self, name) for name in _PUBLIC_FIELDS}
            fields.update(changes)
            if "metadata" not in changes and "declared_tensor" not in changes:
                fields["decoded"] = self._tensor_cache
            return type(self)(**fields)
        # Readers replace an entry each (carried types put back): plain slot stores, as in
        # `entries_from_columns`, are half the keyword constructor's time.
        new = _Fields()
        new.key = self.key
        new.kind = self.kind
        new.length = self.length
        new.metadata = self.metadata
        new.source = self.source
        new.offset = self.offset
        new.pattern = self.pattern
        new.declared_tensor = self.declared_tensor
        new.origin = self.origin
        new.file_index = self.file_index
        new._tensor_cache = self._tensor_cache
        for name, value in changes.items():
            setattr(new, name, value)
        if "metadata" in changes or "declared_tensor" in changes:
            new._tensor_cache = _UNSET
        new.__class__ = ParameterEntry
        return new  # type: ignore[return-value]  # (its class swapped: see `entries_from_columns`)

    # copy.copy/deepcopy restore slots through setattr, which an immutable class refuses.
    def __getstate__(self) -> list[object]:
        return [getattr(self, name) for name in _FIELDS]

    def __setstate__(self, state: list[object]) -> None:
        for setter, value in zip(_SETTERS, state, strict=True):
            setter(self, value)

    # -- IREE-compatible attributes -------------------------------------------------------

    @property
    def is_file(self) -> bool:
        return self.kind is not EntryKind.SPLAT

    @property
    def is_splat(self) -> bool:
        return self.kind is EntryKind.SPLAT

    @property
    def splat_pattern(self) -> bytes:
        if not self.is_splat:
            raise ValueError("Entry is not splat")
        return self.pattern

    @property
    def file_storage(self) -> tuple[ByteSource, int]:
        """``(FileHandle, offset)``, as IREE: the handle of the entry's source (a `ByteSource`
        too; see `paramio.sources.handles`); the source itself is `source`."""
        if self.source is None:
            raise ValueError("Entry is not file storage based")
        return handle_for(self.source), self.offset

    @property
    def file_view(self) -> memoryview:
        if self.source is None:
            raise ValueError("Entry is not file storage based")
        return self.source.view(self.offset, self.length)

    # -- bytes ----------------------------------------------------------------------------

    def memoryview(self) -> memoryview:
        """The entry's bytes without a copy. Splats have no storage: use `read()` for them."""
        if self.source is None:
            raise InvalidArgumentError("a splat entry has no storage to view; use read()", key=self.key)
        return self.source.view(self.offset, self.length)

    def read(self) -> bytes:
        """A copy of the entry's bytes, splats expanded."""
        if self.source is not None:
            return self.source.read(self.offset, self.length)
        return expand_pattern(self.pattern, self.length)

    def readinto(self, out: builtins.memoryview | bytearray | np.ndarray, offset: int = 0) -> int:
        """Copy ``out``'s size in bytes from `offset` within the entry into `out`."""
        dst = builtins.memoryview(out).cast("B")  # type: ignore[arg-type]
        if offset < 0 or offset + len(dst) > self.length:
            raise InvalidArgumentError(
                f"range {offset}..{offset + len(dst)} is outside the entry's {self.length} bytes",
                key=self.key,
            )
        if self.source is not None:
            return self.source.readinto(self.offset + offset, dst)
        fill_pattern(dst, self.pattern, offset)
        return len(dst)

    def iter_chunks(self, chunk_size: int = 1 << 22) -> Iterator[builtins.memoryview]:
        """The bytes in order, in views of at most `chunk_size`: bounded memory for any size."""
        pos = 0
        if self.source is not None:
            while pos < self.length:
                n = min(chunk_size, self.length - pos)
                yield self.source.view(self.offset + pos, n)
                pos += n
            return
        if self.length == 0:
            return
        block = bytearray(min(chunk_size, self.length))
        fill_pattern(builtins.memoryview(block), self.pattern, 0)
        plen = len(self.pattern) or 1
        # Chunks start at multiples of len(block); keep it a multiple of the pattern length.
        step = max(plen, (len(block) // plen) * plen) if len(block) >= plen else len(block)
        view = builtins.memoryview(block)
        while pos < self.length:
            n = min(step, self.length - pos)
            yield view[:n]
            pos += n

    # -- typed access ---------------------------------------------------------------------

    @property
    def tensor(self) -> TensorInfo | None:
        """Element type and shape, from the format or from ``TENSORv0``/``PYTORCH`` metadata."""
        if self.declared_tensor is not None:
            return self.declared_tensor
        cached = self._tensor_cache
        if cached is _UNSET:
            cached = decoded_tensor(self.metadata)
            _set_cache(self, cached)
        return cached  # type: ignore[return-value]

    @property
    def dtype(self) -> str | None:
        t = self.tensor
        return t.dtype if t is not None else None

    @property
    def shape(self) -> tuple[int, ...] | None:
        t = self.tensor
        return t.shape if t is not None else None

    def to_numpy(self, *, copy: bool = False) -> np.ndarray:
        """The entry as a NumPy array: typed and shaped when the entry says how, else ``uint8``.

        Zero-copy (a read-only view of the mapped file) unless `copy` is true, the entry is a
        splat, or the data's offset is not a multiple of the element size (then a copy is made:
        NumPy cannot view misaligned elements safely on every platform).

        A view of a mapped file is valid only while the file keeps its bytes: if another
        program truncates or rewrites it, touching the view kills the process with SIGBUS.
        Open with ``ParameterIndex.open(path, copy=True)`` when that can happen.
        """
        global np
        if np is None:
            import numpy as np

        info = self.declared_tensor
        if info is None:
            info = self.tensor
        plan = _PLANS.get((info.dtype, info.shape, self.length)) if info is not None else _bytes_plan()
        if plan is None:
            plan = self._view_plan(info)
        dtype, shape = plan
        if shape is None:
            shape = (self.length,)
        source = self.source
        if source is None:
            raw = np.frombuffer(self.read(), dtype=np.uint8)
            return raw.view(dtype).reshape(shape)
        whole = source.whole_view_cache
        if whole is None:
            whole = _whole_view(source)
        if copy or (dtype.itemsize > 1 and self.offset % dtype.itemsize != 0):
            if isinstance(whole, memoryview) and self.length <= _SMALL_COPY:
                # A small copy from the mapping beats a read syscall; large ones read (no page faults).
                # (NumPy copies from an unaligned view correctly; only the view is not handed out.)
                try:
                    view = np.ndarray(shape, dtype, whole, self.offset)
                except (TypeError, ValueError):
                    pass  # not inside the source: readinto below says how
                else:
                    return view.copy()
            arr = np.empty(shape, dtype=dtype)
            self.readinto(arr.reshape(-1).view(np.uint8))
            return arr
        # One call makes the typed, shaped view (the plan proved dtype x shape == length).
        if isinstance(whole, memoryview):
            try:
                return np.ndarray(shape, dtype, whole, self.offset)
            except (TypeError, ValueError):
                pass  # not inside the source: its own check below says how
        return np.ndarray(shape, dtype, source.view(self.offset, self.length))

    def _view_plan(self, info: TensorInfo | None) -> tuple[np.dtype[np.generic], tuple[int, ...] | None]:
        """(dtype, shape) `to_numpy` views the bytes as, checked once per (dtype, shape, length)
        and cached; shape None means ``(length,)`` of ``uint8``."""
        import numpy as np

        if info is None:
            return _bytes_plan()
        dtype = _bytes_plan()[0]
        shape: tuple[int, ...] | None = None
        try:
            d = dtype_by_name(info.dtype)
            if not d.is_subbyte and d.nbytes(info.count) == self.length:
                dtype, shape = numpy_dtype(info.dtype), info.shape
        except (InvalidArgumentError, AttributeError):
            pass
        if shape is not None and len(shape) > 1:  # a valid file may declare a shape NumPy cannot make (>64 dims, say)
            try:
                np.lib.stride_tricks.as_strided(np.empty(1, f"V{dtype.itemsize}"), shape, (0,) * len(shape))
            except (ValueError, OverflowError) as exc:  # a dim past 2**63 (with a 0 beside it)
                raise InvalidArgumentError(
                    f"NumPy cannot make a {dtype} array of shape {list(shape)}: {exc}", key=self.key
                ) from exc
        plan = (dtype, shape)
        if len(_PLANS) >= _MAX_PLANS:
            _PLANS.clear()
        _PLANS[(info.dtype, info.shape, self.length)] = plan
        return plan

    def __repr__(self) -> str:
        """IREE's ``ParameterIndexEntry`` repr, quirk included (no closing ``>`` after a file
        entry's span): ``<ParameterIndexEntry 'k' splat b'\\x02':600>``,
        ``<ParameterIndexEntry 'k' FileHandle<fd(5)>:384:24``."""
        if self.is_splat:
            return f"<ParameterIndexEntry {self.key!r} splat {self.pattern!r}:{self.length}>"
        if self.source is None:
            return f"<ParameterIndexEntry {self.key!r} ?:{self.offset}:{self.length}"
        handle, offset = self.file_storage
        return f"<ParameterIndexEntry {self.key!r} {handle!r}:{offset}:{self.length}"


_SETTERS = tuple(_Fields.__dict__[name].__set__ for name in _FIELDS)
(
    _set_key,
    _set_kind,
    _set_length,
    _set_metadata,
    _set_source,
    _set_offset,
    _set_pattern,
    _set_declared,
    _set_origin,
    _set_file_index,
    _set_cache,
) = _SETTERS
_PUBLIC_FIELDS = frozenset(_FIELDS[:-1])


def _entry(
    key: str,
    kind: EntryKind,
    length: int,
    metadata: bytes,
    source: ByteSource | None,
    offset: int,
    pattern: bytes,
    tensor: TensorInfo | None,
    origin: str,
    file_index: int | None,
) -> ParameterEntry:
    """A `ParameterEntry` as the keyword constructor makes it, by plain slot stores and a class
    swap (see `_Fields`): `ParameterEntry.data` and `splat`, which readers call once per entry."""
    e = _Fields()
    e.key = key
    e.kind = kind
    e.length = length
    e.metadata = metadata
    e.source = source
    e.offset = offset
    e.pattern = pattern
    e.declared_tensor = tensor
    e.origin = origin
    e.file_index = file_index
    e._tensor_cache = _UNSET
    e.__class__ = ParameterEntry
    return e  # type: ignore[return-value]  # (its class swapped, which no type checker follows)


def entries_from_columns(
    *,
    keys: Sequence[str],
    lengths: Sequence[int],
    offsets: Sequence[int],
    source: ByteSource,
    origin: str,
    declared: Sequence[TensorInfo | None] | None = None,
    metadata: Sequence[bytes] | None = None,
    decoded: Sequence[TensorInfo | None] | None = None,
    file_indices: Sequence[int] | None = None,
) -> list[ParameterEntry]:
    """Data entries of one source from a reader's columns, as the keyword constructor would make
    them row by row, for the readers' whole-table path (``items()`` of 100,000 entries).

    `declared` is the format's tensor per row; `metadata` the metadata bytes per row and `decoded`
    what `decoded_tensor` gives for them (None: decoded on first use); `file_indices` the rows'
    positions in the file's table (default 0, 1, ...). Every column is as long as `keys`."""
    n = len(keys)
    columns = (lengths, offsets, declared, metadata, decoded, file_indices)
    if any(c is not None and len(c) != n for c in columns):
        raise InvalidArgumentError(f"entry columns differ in length from the {n} keys")
    none: Sequence[None] = (None,) * n
    kind = EntryKind.DATA
    made: list[_Fields] = []
    append = made.append
    for key, length, offset, tensor, meta, info, row in zip(
        keys,
        lengths,
        offsets,
        declared if declared is not None else none,
        metadata if metadata is not None else (b"",) * n,
        decoded if decoded is not None else (_UNSET,) * n,
        file_indices if file_indices is not None else range(n),
        strict=True,
    ):
        e = _Fields()
        e.key = key
        e.kind = kind
        e.length = length
        e.metadata = meta
        e.source = source
        e.offset = offset
        e.pattern = b""
        e.declared_tensor = tensor
        e.origin = origin
        e.file_index = row
        e._tensor_cache = info
        e.__class__ = ParameterEntry
        append(e)
    # Each item is a ParameterEntry now (its class swapped above), which no type checker can follow.
    return made  # type: ignore[return-value]


#: IREE's name for the class (``iree.runtime.ParameterIndexEntry``): the same class, so
#: `isinstance` checks written either way hold.
ParameterIndexEntry = ParameterEntry


def expand_pattern(pattern: bytes, length: int) -> bytes:
    """`pattern` repeated to exactly `length` bytes (a zero byte if the pattern is empty).
    Raises `InvalidArgumentError` when that cannot be held in memory (a splat may claim up
    to 2**64-1 bytes; `iter_chunks` and `readinto` read any part of it)."""
    if length <= 0:
        return b""
    p = pattern or b"\x00"
    reps = -(-length // len(p))
    try:
        if length > sys.maxsize:
            raise OverflowError
        return (p * reps)[:length]
    except (OverflowError, MemoryError):
        raise InvalidArgumentError(
            f"a splat of {length} bytes does not fit in memory; read it with iter_chunks() or readinto()"
        ) from None


def fill_pattern(out: memoryview, pattern: bytes, phase: int) -> None:
    """Fill `out` with `pattern` as if `out` started `phase` bytes into the repeated pattern."""
    p = pattern or b"\x00"
    n = len(out)
    if n == 0:
        return
    start = phase % len(p)
    rotated = p[start:] + p[:start]
    reps = -(-n // len(p))
    import numpy as np

    arr = np.frombuffer(rotated, dtype=np.uint8)
    np.copyto(np.frombuffer(out, dtype=np.uint8), np.tile(arr, reps)[:n]) if n <= (1 << 20) else _fill_large(
        out, rotated
    )


def _fill_large(out: memoryview, rotated: bytes) -> None:
    import numpy as np

    block = np.tile(np.frombuffer(rotated, dtype=np.uint8), max(1, (1 << 20) // len(rotated)))
    dst = np.frombuffer(out, dtype=np.uint8)
    pos = 0
    while pos < len(dst):
        n = min(len(block), len(dst) - pos)
        dst[pos : pos + n] = block[:n]
        pos += n
