"""Updating parameter bytes in place: single writes, batch scatter, batch gather.

An in-place write changes only an entry's data bytes, never an index table, so a crash can
tear at most the entry being written; the file always parses. Lengths must match exactly (an
archive's layout is fixed); a typed entry also refuses an array of another dtype, since the
bytes would silently mean something else. A batch (`scatter`) is all-or-nothing: every array is
checked and the space for every entry is reserved (holes of a sparse file allocated) before the
first byte is written, so a full disk fails the batch with the file untouched.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from paramio.arrays.frameworks import host_bytes
from paramio.core.dtypes import numpy_dtype
from paramio.core.entry import EntryKind, ParameterEntry
from paramio.core.errors import InvalidArgumentError, SourceError
from paramio.core.source import ByteSource
from paramio.index.index import DuplicatePolicy, ParameterIndex
from paramio.sources.paths import AllowExternal

__all__ = [
    "WritableArchive",
    "check_target",
    "check_write",
    "gather_entries",
    "lock_file",
    "release_writers",
    "reserve_target",
    "write_in_place",
]


def check_write(entry: ParameterEntry, data: memoryview, dtype: str | None) -> None:
    """Refuse a write whose length (or, for typed entries, dtype) differs from the entry's."""
    if len(data) != entry.length:
        raise InvalidArgumentError(
            f"cannot write {len(data)} bytes into a {entry.length}-byte entry (lengths must match)",
            key=entry.key,
            path=entry.source.path if entry.source is not None else None,
        )
    want = entry.dtype
    if dtype is not None and want is not None and dtype != want and dtype != "uint8":
        raise InvalidArgumentError(f"entry holds {want}, not {dtype}", key=entry.key)


def check_target(entry: ParameterEntry) -> None:
    """Refuse entries with no writable storage (splats, read-only sources)."""
    src = entry.source
    if entry.kind is EntryKind.SPLAT or src is None:
        raise InvalidArgumentError("a splat entry has no storage to write in place", key=entry.key)
    if not src.writable:
        raise SourceError("source is read-only (open it writable or attach an overlay)", path=src.name, key=entry.key)


def reserve_target(entry: ParameterEntry) -> None:
    """Make sure a later write of the entry's bytes cannot fail for want of space. Raises
    `SourceError` (ENOSPC) when the filesystem cannot allocate them."""
    check_target(entry)
    reserve = getattr(entry.source, "reserve", None)
    if reserve is not None:
        reserve(entry.offset, entry.length)


def lock_file(path: str) -> int:
    """An advisory exclusive lock (``flock``) on `path`, as a descriptor to close to release
    it. Raises `SourceError` when another writer (process or object) holds it."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise SourceError(f"cannot open to lock: {exc.strerror or exc}", path=path) from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        raise SourceError(
            "file is open for writing by another writer (it holds the advisory lock); close that writer first",
            path=path,
        ) from exc
    return fd


def release_writers(sources: Iterable[ByteSource]) -> None:
    """Close the writable sources among `sources`, which releases the writer's lock each holds
    (views already taken stay valid: the mapping lives as long as they do)."""
    for src in sources:
        if src.writable:
            src.close()


def write_in_place(entry: ParameterEntry, data: memoryview) -> None:
    """Overwrite a DATA entry's bytes in its (writable) source."""
    check_target(entry)
    entry.source.write(entry.offset, data)  # type: ignore[union-attr]


def _out_bytes(out: object, key: str) -> memoryview:
    if type(out).__module__.split(".")[0] == "torch":
        import torch

        t = out
        if t.device.type != "cpu" or not t.is_contiguous():  # type: ignore[attr-defined]
            raise InvalidArgumentError("gather needs contiguous CPU tensors as outputs", key=key)
        return memoryview(t.reshape(-1).view(torch.uint8).numpy()).cast("B")  # type: ignore[attr-defined]
    try:
        view = memoryview(out)  # type: ignore[arg-type]
    except TypeError as exc:
        raise InvalidArgumentError(f"cannot gather into a {type(out).__name__}", key=key) from exc
    if view.readonly or not view.c_contiguous:
        raise InvalidArgumentError("gather needs writable, C-contiguous outputs", key=key)
    return view.cast("B") if view.ndim else view


def gather_entries(entries: Sequence[ParameterEntry], out: Sequence[object] | None = None) -> list[object]:
    """Copy each entry into ``out[i]`` (same byte size) or into new typed NumPy arrays."""
    if out is not None and len(out) != len(entries):
        raise InvalidArgumentError(f"{len(entries)} keys but {len(out)} output arrays")
    results: list[object] = []
    for i, e in enumerate(entries):
        if out is None:
            arr = _new_array(e)
            e.readinto(arr.reshape(-1).view(np.uint8))
            results.append(arr)
            continue
        dst = _out_bytes(out[i], e.key)
        if len(dst) != e.length:
            raise InvalidArgumentError(f"output has {len(dst)} bytes, the entry {e.length}", key=e.key)
        e.readinto(dst)
        results.append(out[i])
    return results


def _new_array(e: ParameterEntry) -> np.ndarray:
    info = e.tensor
    if info is not None:
        try:
            dt = numpy_dtype(info.dtype)
            if dt.itemsize * info.count == e.length:
                return np.empty(info.shape, dtype=dt)
        except (InvalidArgumentError, AttributeError):
            pass
    return np.empty(e.length, dtype=np.uint8)


class WritableArchive:
    """A parameter file opened read-write: update entries in place, gather them in batches.

    >>> with WritableArchive(path) as w:            # doctest: +SKIP
    ...     w.write("layer0.weight", new_weight)    # same byte length, or InvalidArgumentError
    ...     w.flush()                               # msync + fsync: durable from here

    Opening takes an advisory lock on the file until `close`: a second `WritableArchive` (or
    writable provider layer, or ``ParameterIndex.open(..., writable=True)``), in this process or
    another, is refused with `SourceError`. A file marked read-only
    (no write bit) and an archive whose entries overlap its tables or each other are refused.
    """

    def __init__(
        self, path: str | os.PathLike[str], *, format: str | None = None, allow_external: AllowExternal = None
    ) -> None:
        self.path = os.fspath(path)
        self._open = False
        # Each file opened writable takes the writer's lock itself (`FileSource`), held until `close`.
        self.index = ParameterIndex.open(
            self.path, format=format, writable=True, duplicates=DuplicatePolicy.KEEP, allow_external=allow_external
        )
        self._open = True

    def write(self, key: str, array: object) -> None:
        """Overwrite `key` with `array`'s bytes (NumPy, torch, buffer...)."""
        self.scatter({key: array})

    def scatter(self, arrays: Mapping[str, object]) -> None:
        """Write several entries, all or none: every length is checked and every entry's space
        reserved before any byte is written."""
        plan = []
        for key, array in arrays.items():
            entry = self.index[key]
            data, dtype = host_bytes(array)
            check_write(entry, data, dtype)
            check_target(entry)
            plan.append((entry, data))
        for entry, _ in plan:
            reserve_target(entry)
        for entry, data in plan:
            write_in_place(entry, data)

    def gather(self, keys: Iterable[str], out: Sequence[object] | None = None) -> list[object]:
        return gather_entries([self.index[k] for k in keys], out)

    def _sources(self) -> list[ByteSource]:
        return list({id(e.source): e.source for e in self.index.entries if e.source is not None}.values())

    def flush(self) -> None:
        """Make every write so far durable (msync the map, fsync the file)."""
        for src in self._sources():
            src.flush()

    def close(self) -> None:
        """Flush, then release the lock (views already taken stay valid)."""
        if not self._open:
            return
        self._open = False
        sources = self._sources()
        try:
            for src in sources:
                src.flush()
        finally:
            release_writers(sources)

    def __del__(self) -> None:
        if getattr(self, "_open", False):
            self._open = False
            release_writers(self._sources())

    def __enter__(self) -> WritableArchive:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
