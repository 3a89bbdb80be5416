"""A writable overlay archive: copy-on-write per entry over read-only layers.

The overlay is an ordinary IRPA file holding only the entries written so far. A key it already
holds is updated in place (the bytes change, the tables never do). A key it lacks is added by
rewriting the whole overlay atomically (temporary file, fsync, rename, fsync of the folder) with
the new entries appended, existing bytes copied in the kernel. So the overlay file is always a
complete, parseable archive: a crash leaves either the old one or the new one, and can tear at
most the one entry being updated in place. Base files are never modified.

Add many new keys with one `add` call (`Provider.scatter` does): each call rewrites the file once.
"""

from __future__ import annotations

import fcntl
import os
import stat
import threading
from collections.abc import Mapping, Sequence

from paramio.core.dtypes import dtype_by_name
from paramio.core.entry import ParameterEntry
from paramio.core.errors import InvalidArgumentError, SourceError
from paramio.core.tensor import encode_tensor_metadata
from paramio.index.index import DuplicatePolicy, ParameterIndex
from paramio.index.writable import reserve_target, write_in_place
from paramio.sources.file import FileSource, file_kind
from paramio.sources.memory import MemorySource

__all__ = ["Overlay", "PendingRewrite"]

_LOCK_TRIES = 8
_WRITE_BITS = stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH


def _file_id(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return st.st_dev, st.st_ino


class PendingRewrite:
    """A new overlay archive written and fsynced under a temporary name, not yet in place.

    `Provider.scatter` prepares one per scope and commits them only when all were written, so
    a full disk leaves every overlay as it was. `abort` discards it."""

    def __init__(self, overlay: Overlay, out: object, lock_fd: int) -> None:
        self._overlay = overlay
        self._out = out
        self._lock_fd = lock_fd

    def commit(self) -> None:
        """Rename the new archive over the overlay; the overlay's index is reopened on it."""
        self._overlay._commit(self)

    def abort(self) -> None:
        from paramio.formats.output import AtomicOutput

        assert isinstance(self._out, AtomicOutput)
        self._out.abort()
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1


class Overlay:
    """The overlay archive at `path` (opened if it exists, created on the first new key).

    Views of its entries (`ParameterEntry.to_numpy`) are read-only: the file is replaced when
    a key is added, and a writable view of the old file would take later writes nowhere.
    Write through `Provider.write`/`scatter` (or `update`), which always reach the current file.

    The first write takes an advisory lock (``flock``) on the file, held until `close`: a second
    writer (another `Provider` in this process or in another) is refused with `SourceError`
    instead of losing updates. Readers take no lock.
    """

    def __init__(self, path: str | os.PathLike[str], *, durable: bool = True, alignment: int = 64) -> None:
        self.path = os.path.abspath(os.fspath(path))
        self.durable = durable
        self.alignment = alignment
        self._lock = threading.RLock()
        self._lock_fd = -1
        self._opened: tuple[int, int] | None = None
        #: The lock created the file (empty) and no rewrite has filled it yet.
        self._placeholder = False
        self._index = self._open()

    def _open(self) -> ParameterIndex:
        from paramio.formats.irpa.reader import read_source

        self._opened = _file_id(self.path)
        if self._opened is None or os.path.getsize(self.path) == 0:
            # Missing, or the empty placeholder a writer's lock creates before its first rewrite.
            return ParameterIndex(duplicates=DuplicatePolicy.KEEP)
        # A file marked read-only is still served (`which`, `run` only read it); writes are
        # refused by `acquire`.
        writable = bool(os.stat(self.path).st_mode & _WRITE_BITS)
        source = FileSource(self.path, writable=writable, writable_views=False)
        contents = read_source(source, self.path, writable=writable)
        return ParameterIndex.from_contents(contents, duplicates=DuplicatePolicy.KEEP)

    @property
    def index(self) -> ParameterIndex:
        """The overlay's current entries. Replaced (not mutated) when a key is added, so a
        reader holding it keeps a consistent, if older, view."""
        return self._index

    @property
    def locked(self) -> bool:
        """Whether this overlay holds the writer's lock."""
        return self._lock_fd >= 0

    def __contains__(self, key: object) -> bool:
        return key in self._index

    def get(self, key: str) -> ParameterEntry | None:
        return self._index.get(key)

    def acquire(self) -> bool:
        """Take the writer's lock (done by every write); True when the index had to be
        reopened because another writer changed the file since it was opened. Raises
        `SourceError` when another writer holds the lock."""
        with self._lock:
            if self._lock_fd >= 0:
                return False
            for _ in range(_LOCK_TRIES):
                try:
                    fd = os.open(self.path, os.O_RDONLY | os.O_CREAT | os.O_NONBLOCK | os.O_CLOEXEC, 0o644)
                except OSError as exc:
                    raise SourceError(
                        f"cannot open the overlay to lock it: {exc.strerror or exc}", path=self.path
                    ) from exc
                st = os.fstat(fd)
                if not stat.S_ISREG(st.st_mode):
                    os.close(fd)
                    raise SourceError(f"overlay is not a regular file ({file_kind(st.st_mode)})", path=self.path)
                if not st.st_mode & _WRITE_BITS:  # root could write it; the user said no
                    os.close(fd)
                    raise SourceError(
                        f"overlay is marked read-only (mode {stat.S_IMODE(st.st_mode):04o}); refusing to write it",
                        path=self.path,
                    )
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError as exc:
                    os.close(fd)
                    raise SourceError(
                        "overlay is being written by another Provider or process (it holds the overlay's "
                        "advisory lock); close that writer first",
                        path=self.path,
                    ) from exc
                if _file_id(self.path) != (st.st_dev, st.st_ino):
                    os.close(fd)  # replaced between our open and our lock: lock the new file
                    continue
                self._lock_fd = fd
                self._placeholder = st.st_size == 0
                if self._opened != (st.st_dev, st.st_ino):  # created or replaced since we opened it
                    self._index = self._open()
                    return True
                return False
            raise SourceError("overlay keeps being replaced by another writer; cannot lock it", path=self.path)

    def update(self, key: str, data: memoryview) -> None:
        """Overwrite an entry the overlay already holds, in place."""
        with self._lock:
            self.acquire()
            entry = self._index[key]
            reserve_target(entry)
            write_in_place(entry, data)

    def add(self, items: Sequence[tuple[ParameterEntry, memoryview]]) -> None:
        """Copy-on-write: add entries shaped like each base entry, holding the new bytes.

        One atomic rewrite of the overlay for the whole batch. A key the overlay already has
        is refused (use `update`).
        """
        try:
            pending = self.prepare(items)
            if pending is not None:
                pending.commit()
        except BaseException:
            self.release_placeholder()
            raise

    def prepare(
        self, items: Sequence[tuple[ParameterEntry, memoryview]], updates: Mapping[str, memoryview] | None = None
    ) -> PendingRewrite | None:
        """Write the overlay with `items` added (and the held keys in `updates` given new
        bytes) to a temporary file, fsynced; nothing changes until `PendingRewrite.commit`.
        Raises `InvalidArgumentError` (a held key, a wrong length) before writing, `WriteError`
        when the new file cannot be written (the overlay is then untouched)."""
        if not items:
            return None
        from paramio.formats.irpa.writer import plan_archive
        from paramio.formats.output import AtomicOutput, copy_entry

        with self._lock:
            self.acquire()
            new: list[ParameterEntry] = []
            seen: set[str] = set()
            for base, data in items:
                if base.key in self._index or base.key in seen:
                    raise InvalidArgumentError("the overlay already holds this key", key=base.key, path=self.path)
                if len(data) != base.length:
                    raise InvalidArgumentError(
                        f"cannot write {len(data)} bytes into a {base.length}-byte entry", key=base.key
                    )
                seen.add(base.key)
                src = MemorySource(data, name=f"<overlay:{base.key}>")
                new.append(ParameterEntry.data(base.key, src, 0, len(data), metadata=_typed_metadata(base)))
            old: list[ParameterEntry] = []
            for e in self._index.entries:
                fresh = (updates or {}).get(e.key)
                if fresh is not None:
                    e = e.replace(source=MemorySource(fresh, name=f"<overlay:{e.key}>"), offset=0)
                old.append(e)
            entries = [*old, *new]
            plan = plan_archive(entries, alignment=self.alignment)
            out = AtomicOutput(self.path, durable=self.durable)
            lock_fd = -1
            try:
                out.truncate(plan.total_size)
                out.pwrite(plan.header_and_tables, 0)
                for e, off in zip(entries, plan.data_offsets, strict=True):
                    if off is not None:
                        copy_entry(e, out, off)
                out.wait_for_copies()
                if self.durable:
                    os.fsync(out.fd)  # a full disk shows here at the latest, before any commit
                # The lock moves with the file: taken on the new inode before it is renamed in.
                lock_fd = os.dup(out.fd)
                fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BaseException:
                if lock_fd >= 0:
                    os.close(lock_fd)
                out.abort()
                raise
            return PendingRewrite(self, out, lock_fd)

    def _commit(self, pending: PendingRewrite) -> None:
        from paramio.formats.output import AtomicOutput

        out = pending._out
        assert isinstance(out, AtomicOutput)
        with self._lock:
            try:
                out.commit()
            except BaseException:
                pending.abort()
                raise
            if self._lock_fd >= 0:
                os.close(self._lock_fd)
            self._lock_fd, pending._lock_fd = pending._lock_fd, -1
            self._placeholder = False
            # Old sources stay alive while readers hold their entries; the GC closes them.
            self._index = self._open()

    def flush(self) -> None:
        """msync and fsync every in-place update so far."""
        with self._lock:
            seen: set[int] = set()
            for e in self._index.entries:
                if e.source is not None and id(e.source) not in seen:
                    seen.add(id(e.source))
                    e.source.flush()

    def release_placeholder(self) -> None:
        """If the lock created the overlay file and nothing was written to it (a failed first
        write), remove it and release the lock: the overlay is again "not yet created"."""
        with self._lock:
            if self._lock_fd < 0 or not self._placeholder:
                return
            st = os.fstat(self._lock_fd)
            if st.st_size == 0 and _file_id(self.path) == (st.st_dev, st.st_ino):
                os.unlink(self.path)
            os.close(self._lock_fd)
            self._lock_fd = -1
            self._placeholder = False
            self._opened = None

    def close(self) -> None:
        """Flush and release the writer's lock (another writer may then take the overlay)."""
        with self._lock:
            self.release_placeholder()
            if self._lock_fd >= 0:
                self.flush()
                os.close(self._lock_fd)
                self._lock_fd = -1

    def __del__(self) -> None:
        if getattr(self, "_lock_fd", -1) >= 0:
            try:
                os.close(self._lock_fd)
            except OSError:
                pass

    def __repr__(self) -> str:
        return f"<Overlay {self.path} ({len(self._index)} entries)>"


def _typed_metadata(base: ParameterEntry) -> bytes:
    """The base entry's metadata, or ``TENSORv0`` made from a format's declared type, so the
    overlay stays typed when the base is safetensors or GGUF."""
    if base.metadata or base.declared_tensor is None:
        return base.metadata
    try:
        dtype_by_name(base.declared_tensor.dtype)
    except InvalidArgumentError:
        return b""
    return encode_tensor_metadata(base.declared_tensor)
