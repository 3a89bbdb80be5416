"""`Provider`: answers ``scope::key`` from layered indices, with an explicit precedence.

Each scope holds layers (files or in-memory indices) in the order given, and optionally one
writable overlay on top. A lookup asks the overlay first, then the layers in precedence order:

``first`` (default)  the first layer given wins: what IREE's tools do with several
                     ``--parameters`` files for one scope (measured);
``last``             the last layer given wins (patches passed after the base);
``error``            a key held by two layers of one scope raises `DuplicateKeyError` when the
                     second layer is added.

The overlay always wins over the layers: it holds what the program wrote. `which` says which
layer serves a key and which it shadows. Writes go in place to a writable layer, else
copy-on-write into the scope's overlay; base files opened read-only are never modified.
A `scatter` is all-or-nothing (checks, space and new overlay files first; then the writes),
and writers are exclusive: an overlay or writable layer held by another writer is refused.
"""

from __future__ import annotations

import dataclasses
import enum
import os
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence

from paramio.core.entry import EntryKind, ParameterEntry
from paramio.core.errors import DuplicateKeyError, InvalidArgumentError, ParameterNotFoundError
from paramio.formats.contract import ARCHIVE
from paramio.index.index import DuplicatePolicy, ParameterIndex
from paramio.index.overlay import Overlay, PendingRewrite
from paramio.index.scopes import parse_parameters_flag, split_scoped_key
from paramio.index.writable import check_target, check_write, gather_entries, release_writers, reserve_target
from paramio.sources.paths import AllowExternal

__all__ = ["EntryRecord", "Layer", "Precedence", "Provider", "Which", "splat_standin"]


class Precedence(enum.StrEnum):
    """Which layer of a scope wins when several hold a key."""

    FIRST = "first"
    LAST = "last"
    ERROR = "error"


@dataclasses.dataclass(frozen=True, slots=True)
class Layer:
    """One index serving a scope: a file (`name` is its path) or an in-memory index."""

    scope: str
    index: ParameterIndex
    name: str
    format: str | None = None
    writable: bool = False


@dataclasses.dataclass(frozen=True, slots=True)
class EntryRecord:
    """Where one layer keeps a key: the facts `paramio which` prints (as data; the CLI
    renders them)."""

    layer: str
    format: str | None
    kind: str
    offset: int | None
    length: int
    data_file: str | None = None
    dtype: str | None = None
    shape: tuple[int, ...] | None = None
    pattern: str | None = None
    overlay: bool = False

    @classmethod
    def of(cls, entry: ParameterEntry, layer: str, fmt: str | None, *, overlay: bool = False) -> EntryRecord:
        from paramio.sources.retry import redact_path

        data_file = entry.source.path if entry.source is not None else None
        layer = redact_path(layer)  # a presigned URL's query is its credential
        data_file = redact_path(data_file) if data_file is not None else None
        return cls(
            layer=layer,
            format=fmt,
            kind=entry.kind.value,
            offset=entry.offset if entry.kind is not EntryKind.SPLAT else None,
            length=entry.length,
            data_file=data_file if data_file is not None and data_file != layer else None,
            dtype=entry.dtype,
            shape=entry.shape,
            pattern=entry.pattern.hex() if entry.is_splat else None,
            overlay=overlay,
        )

    def to_dict(self) -> dict[str, object]:
        d = dataclasses.asdict(self)
        d["shape"] = list(self.shape) if self.shape is not None else None
        return d


@dataclasses.dataclass(frozen=True, slots=True)
class Which:
    """The answer to `Provider.which`: the entry that serves a key and those it shadows."""

    scope: str
    key: str
    precedence: str
    served: EntryRecord
    shadows: tuple[EntryRecord, ...]

    def to_dict(self) -> dict[str, object]:
        return {
            "scope": self.scope,
            "key": self.key,
            "precedence": self.precedence,
            "served_by": self.served.to_dict(),
            "shadows": [s.to_dict() for s in self.shadows],
        }


def splat_standin(index: ParameterIndex) -> ParameterIndex:
    """`index` with every entry replaced by a zero splat of the same length (metadata kept).

    A program run on the stand-in needs the keys and lengths only, no weight bytes: the way to
    check a compiled module's parameter plumbing, or benchmark it, without the real weights.
    """
    out = ParameterIndex(duplicates=DuplicatePolicy.KEEP)
    for e in index.entries:
        out.add(
            ParameterEntry.splat(
                e.key, b"\x00", e.length, metadata=e.metadata, tensor=e.declared_tensor, origin=e.origin
            )
        )
    out.paths = list(index.paths)
    return out


class Provider:
    """Parameters by scope and key over layers; see the module docstring for the rules."""

    def __init__(self, *, precedence: Precedence | str = Precedence.FIRST) -> None:
        self.precedence = Precedence(precedence)
        self._layers: dict[str, list[Layer]] = {}
        self._overlays: dict[str, Overlay] = {}
        self._lock = threading.RLock()
        self._keep: list[object] = []

    def keep_alive(self, obj: object) -> None:
        """Hold `obj` as long as this provider lives (bridges whose handles borrow our files)."""
        self._keep.append(obj)

    # -- building ---------------------------------------------------------------------

    @classmethod
    def from_flags(
        cls,
        values: Iterable[str],
        *,
        precedence: Precedence | str = Precedence.FIRST,
        writable: bool = False,
        overlays: Iterable[str] = (),
        allow_external: AllowExternal = None,
    ) -> Provider:
        """From ``--parameters=[scope=]file`` values (and ``--overlay=[scope=]file`` values).
        `allow_external` as in `add_file`."""
        p = cls(precedence=precedence)
        for v in values:
            spec = parse_parameters_flag(v)
            p.add_file(spec.path, spec.scope, writable=writable, allow_external=allow_external)
        for v in overlays:
            spec = parse_parameters_flag(v)
            p.attach_overlay(spec.path, spec.scope)
        return p

    def add_file(
        self,
        path: str | os.PathLike[str],
        scope: str = "",
        *,
        format: str | None = None,
        writable: bool = False,
        allow_external: AllowExternal = None,
        copy: bool = False,
    ) -> Layer:
        """Add a parameter file as the next layer of `scope`. `writable=True` maps it shared,
        lets writes change it in place and locks it (advisory) until `close`. Files it names
        (external entries, shards) must resolve beside it or in `allow_external`. `copy=True`
        reads it into memory instead of mapping it, so views survive another program rewriting
        the file (no SIGBUS)."""
        from paramio.formats.registry import detect_format

        p = os.fspath(path)
        fmt = format or detect_format(p)
        # A file opened writable takes the writer's lock itself (`FileSource`), released by `close`.
        index = ParameterIndex.open(
            p,
            format=fmt,
            writable=writable,
            duplicates=DuplicatePolicy.KEEP,
            allow_external=allow_external,
            copy=copy,
        )
        try:
            return self.add_layer(Layer(scope, index, p, fmt, writable))
        except BaseException:
            if writable:
                release_writers({id(e.source): e.source for e in index.entries if e.source is not None}.values())
            raise

    def add_index(self, index: ParameterIndex, scope: str = "", *, name: str = "<memory>") -> Layer:
        return self.add_layer(Layer(scope, index, name, None, False))

    def add_layer(self, layer: Layer) -> Layer:
        with self._lock:
            layers = self._layers.setdefault(layer.scope, [])
            if self.precedence is Precedence.ERROR:
                for other in layers:
                    both = set(other.index.keys()) & set(layer.index.keys())
                    if both:
                        key = sorted(both)[0]
                        raise DuplicateKeyError(
                            f"key is in two layers of scope {layer.scope!r} ({other.name} and "
                            f"{layer.name}) and precedence is 'error'",
                            key=key,
                            path=layer.name,
                        )
            layers.append(layer)
        return layer

    def attach_overlay(self, path: str | os.PathLike[str], scope: str = "", *, durable: bool = True) -> Overlay:
        """Writes to read-only layers of `scope` go to the overlay archive at `path` from now on.
        An existing overlay file is reopened (its entries shadow the layers at once)."""
        with self._lock:
            if scope in self._overlays:
                raise InvalidArgumentError(f"scope {scope!r} already has an overlay ({self._overlays[scope].path})")
            ov = self._overlays[scope] = Overlay(path, durable=durable)
            self._layers.setdefault(scope, [])
        return ov

    def overlay(self, scope: str = "") -> Overlay | None:
        return self._overlays.get(scope)

    # -- reading ------------------------------------------------------------------------

    @property
    def scopes(self) -> list[str]:
        return list(self._layers)

    def layers(self, scope: str = "") -> tuple[Layer, ...]:
        return tuple(self._layers.get(scope, ()))

    def _ordered(self, scope: str) -> list[Layer]:
        layers = self._layers.get(scope)
        if layers is None:
            known = ", ".join(map(repr, self._layers)) or "none"
            raise ParameterNotFoundError(f"no scope {scope!r} (scopes: {known})")
        return list(reversed(layers)) if self.precedence is Precedence.LAST else list(layers)

    def find(self, scope: str, key: str) -> tuple[ParameterEntry, Layer | None]:
        """The entry serving ``scope::key`` and its layer (None: the overlay)."""
        ov = self._overlays.get(scope)
        if ov is not None:
            e = ov.get(key)
            if e is not None:
                return e, None
        for layer in self._ordered(scope):
            e = layer.index.get(key)
            if e is not None:
                return e, layer
        raise ParameterNotFoundError(f"no parameter in scope {scope!r} with this key", key=key)

    def lookup(self, scope: str, key: str) -> ParameterEntry:
        return self.find(scope, key)[0]

    def __getitem__(self, scoped_key: str) -> ParameterEntry:
        return self.lookup(*split_scoped_key(scoped_key))

    def get(self, scoped_key: str, default: ParameterEntry | None = None) -> ParameterEntry | None:
        try:
            return self[scoped_key]
        except ParameterNotFoundError:
            return default

    def __contains__(self, scoped_key: object) -> bool:
        return isinstance(scoped_key, str) and self.get(scoped_key) is not None

    def keys(self, scope: str = "") -> list[str]:
        """Every key of `scope`, once, in first-appearance order (overlay-only keys last)."""
        seen: dict[str, None] = {}
        for layer in self._layers.get(scope, ()):
            for k in layer.index:
                seen.setdefault(k, None)
        ov = self._overlays.get(scope)
        if ov is not None:
            for k in ov.index:
                seen.setdefault(k, None)
        return list(seen)

    def entries(self, scope: str = "") -> list[ParameterEntry]:
        """The entry serving each key of `scope` (what a program bound to the scope sees)."""
        return [self.lookup(scope, k) for k in self.keys(scope)]

    def __iter__(self) -> Iterator[str]:
        for scope in self.scopes:
            for k in self.keys(scope):
                yield f"{scope}::{k}" if scope else k

    def which(self, scoped_key: str) -> Which:
        """Which file serves `scoped_key`, where in it, and which layers it shadows."""
        scope, key = split_scoped_key(scoped_key)
        records: list[EntryRecord] = []
        ov = self._overlays.get(scope)
        if ov is not None and key in ov:
            records.append(EntryRecord.of(ov.index[key], ov.path, ARCHIVE, overlay=True))
        for layer in self._ordered(scope):
            e = layer.index.get(key)
            if e is not None:
                records.append(EntryRecord.of(e, layer.name, layer.format))
        if not records:
            raise ParameterNotFoundError(f"no parameter in scope {scope!r} with this key", key=key)
        return Which(scope, key, self.precedence.value, records[0], tuple(records[1:]))

    def stripped(self) -> Provider:
        """A provider with the same scopes, layers and keys where every entry is a zero splat
        of the same length (see `splat_standin`). Overlays are folded in first."""
        out = Provider(precedence=self.precedence)
        for scope in self.scopes:
            ov = self._overlays.get(scope)
            if ov is not None and len(ov.index):
                out.add_layer(Layer(scope, splat_standin(ov.index), ov.path, ARCHIVE))
            for layer in self._layers[scope]:
                out.add_layer(Layer(scope, splat_standin(layer.index), layer.name, layer.format))
        return out

    def gather(self, scoped_keys: Sequence[str], out: Sequence[object] | None = None) -> list[object]:
        """Copy each parameter into ``out[i]`` (same byte size) or new typed NumPy arrays."""
        return gather_entries([self[k] for k in scoped_keys], out)

    # -- writing ------------------------------------------------------------------------

    def write(self, scoped_key: str, array: object) -> None:
        """Set one parameter (same byte length as now). See `scatter`."""
        self.scatter({scoped_key: array})

    def scatter(self, arrays: Mapping[str, object]) -> None:
        """Set several parameters. Each goes in place into the overlay if it holds the key,
        else into a writable layer serving it, else copy-on-write into the scope's overlay
        (all new keys of a scope in one overlay rewrite). Every length is checked first.

        All or nothing: lengths and dtypes are checked, space for in-place bytes reserved and
        new overlay files written (fsynced, not yet renamed) before the first byte changes, so
        an error (a full disk, say) leaves every file as it was.

        Raises `InvalidArgumentError` for a length or dtype mismatch, `SourceError` when the
        serving layer is read-only and the scope has no overlay or another writer holds the
        overlay, `WriteError` when a new overlay file cannot be written.
        """

        with self._lock:
            in_place, held, new = self._plan(arrays)
            # Writers are exclusive: lock each overlay written; one another writer changed since
            # we opened it is reopened, and the plan made again on what it now holds.
            if any([self._overlays[scope].acquire() for scope in {*held, *new}]):
                in_place, held, new = self._plan(arrays)
            # Everything that can fail for want of space happens before the first write: space
            # for in-place bytes is reserved, new overlay files are written and fsynced aside.
            for scope, updates in held.items():
                if scope not in new:
                    ov = self._overlays[scope]
                    in_place.extend((ov.index[k], d) for k, d in updates.items())
            for entry, _ in in_place:
                reserve_target(entry)
            pending: list[PendingRewrite] = []
            try:
                for scope, items in new.items():
                    p = self._overlays[scope].prepare(items, held.get(scope))
                    if p is not None:
                        pending.append(p)
            except BaseException:
                for p in pending:
                    p.abort()
                for scope in new:
                    self._overlays[scope].release_placeholder()
                raise
            for i, p in enumerate(pending):
                try:
                    p.commit()
                except BaseException:
                    for rest in pending[i + 1 :]:
                        rest.abort()
                    raise
            for entry, data in in_place:
                entry.source.write(entry.offset, data)  # type: ignore[union-attr]

    def _plan(
        self, arrays: Mapping[str, object]
    ) -> tuple[
        list[tuple[ParameterEntry, memoryview]],
        dict[str, dict[str, memoryview]],
        dict[str, list[tuple[ParameterEntry, memoryview]]],
    ]:
        """Where each write goes, every array checked: (in place into writable layers, overlay
        keys updated per scope, new overlay keys per scope)."""
        from paramio.arrays.frameworks import host_bytes

        in_place: list[tuple[ParameterEntry, memoryview]] = []
        held: dict[str, dict[str, memoryview]] = {}
        new: dict[str, list[tuple[ParameterEntry, memoryview]]] = {}
        for scoped_key, array in arrays.items():
            scope, key = split_scoped_key(scoped_key)
            entry, layer = self.find(scope, key)
            data, dtype = host_bytes(array)
            check_write(entry, data, dtype)
            writable = entry.source is not None and entry.source.writable and entry.kind is not EntryKind.SPLAT
            if layer is None:
                held.setdefault(scope, {})[key] = data
            elif writable:
                in_place.append((entry, data))
            elif scope in self._overlays:
                new.setdefault(scope, []).append((entry, data))
            else:
                check_target(entry)  # raises, naming the read-only file
        return in_place, held, new

    def flush(self) -> None:
        """Make every write so far durable: overlays and writable layers are msynced and fsynced."""
        with self._lock:
            for ov in self._overlays.values():
                ov.flush()
            seen: set[int] = set()
            for layers in self._layers.values():
                for layer in layers:
                    if not layer.writable:
                        continue
                    for e in layer.index.entries:
                        if e.source is not None and e.source.writable and id(e.source) not in seen:
                            seen.add(id(e.source))
                            e.source.flush()

    def close(self) -> None:
        """Flush, and release the writer's locks of overlays and writable layers."""
        with self._lock:
            self.flush()
            for ov in self._overlays.values():
                ov.close()
            for layers in self._layers.values():
                for layer in layers:
                    if layer.writable:
                        release_writers(
                            {id(e.source): e.source for e in layer.index.entries if e.source is not None}.values()
                        )

    def __enter__(self) -> Provider:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        parts = [
            f"{s!r}: {len(self._layers[s])} layer(s)" + (" + overlay" if s in self._overlays else "")
            for s in self._layers
        ]
        return f"<Provider precedence={self.precedence.value} {{{', '.join(parts)}}}>"
