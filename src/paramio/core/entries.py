"""Entries built on first use, for indices of very many entries.

A reader that has validated a whole table at once (vectorised, as the IRPA reader does) knows
every key up front; building one `ParameterEntry` per row costs far more than the parse (about
1.5 µs each: 150 ms for 100,000 entries). `LazyEntries` holds the keys and a function that makes
entry ``i`` when it is first asked for, and then behaves as a list: `ParameterIndex.load` adopts
it as is, so opening an archive and listing its keys never builds an entry object.
"""

from __future__ import annotations

import gc
from _collections_abc import Sequence  # `collections.abc.Sequence` itself, loaded with `os`: no import

from paramio.core.entry import ParameterEntry

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from types import TracebackType
    from typing import overload

__all__ = ["DumpColumns", "LazyEntries", "collector_paused"]

#: Per row, in order: offset, length, whether it is a splat.
DumpColumns = tuple[list[int], list[int], list[bool]]


class LazyEntries(Sequence[ParameterEntry]):
    """A list of entries whose items are made by `make(i)` on first access, then cached.

    `make` is only called for rows of the original table; appended or assigned entries are
    stored as given, and `pop` first builds every entry (so row numbers never shift).
    """

    __slots__ = ("_cache", "_columns", "_keys", "_make", "_make_all", "_made", "_positions")

    def __init__(
        self,
        keys: list[str],
        make: Callable[[int], ParameterEntry],
        make_all: Callable[[], list[ParameterEntry]] | None = None,
        *,
        positions: dict[str, int] | None = None,
        columns: Callable[[], DumpColumns] | None = None,
    ) -> None:
        self._keys = keys
        #: Every row's (offset, length, is_splat), as lists, for a listing that needs no
        #: entry objects (`paramio.index.dump`); dropped on any change to the list.
        self._columns = columns
        #: ``{key: row}`` for every key, when the reader built it (its duplicate check): handed
        #: once to the index that adopts these entries, dropped on any change to the list.
        self._positions = positions
        self._make = make
        #: Every entry at once (the same as ``make(i)`` for each row, in a tighter loop): used
        #: when iteration finds nothing built yet.
        self._make_all = make_all
        self._cache: list[ParameterEntry | None] = [None] * len(keys)
        self._made = 0

    def keys(self) -> list[str]:
        """Every key in order, without building entries."""
        return list(self._keys)

    def dump_columns(self) -> tuple[list[str], list[int], list[int], list[bool]] | None:
        """(keys, offsets, lengths, is_splat) of every row, without building entries; None when
        the reader gave no columns or the list has changed since it was read."""
        if self._columns is None:
            return None
        offsets, lengths, splats = self._columns()
        return self._keys, offsets, lengths, splats

    def take_positions(self) -> dict[str, int] | None:
        """``{key: row}`` as the reader built it (keys all distinct), given away: the caller
        owns the dict and a second call returns None. None when the reader built none."""
        positions, self._positions = self._positions, None
        return positions

    def __len__(self) -> int:
        return len(self._keys)

    def _get(self, i: int) -> ParameterEntry:
        e = self._cache[i]
        if e is None:
            e = self._make(i)
            self._cache[i] = e
            self._made += 1
        return e

    if TYPE_CHECKING:

        @overload
        def __getitem__(self, i: int) -> ParameterEntry: ...
        @overload
        def __getitem__(self, i: slice) -> list[ParameterEntry]: ...

    def __getitem__(self, i: int | slice) -> ParameterEntry | list[ParameterEntry]:
        if isinstance(i, slice):
            return [self._get(j) for j in range(*i.indices(len(self._keys)))]
        n = len(self._keys)
        if not -n <= i < n:
            raise IndexError("entry index out of range")
        return self._get(i % n if i < 0 else i)

    def __iter__(self) -> Iterator[ParameterEntry]:
        return iter(self.all())

    def all(self) -> list[ParameterEntry]:
        """Every entry, in order, built now where not yet built (the list is the cache: do
        not modify it)."""
        if self._made != len(self._keys):
            if self._made == 0 and self._make_all is not None:
                built = _without_gc(self._make_all)
                if len(built) == len(self._cache):
                    self._cache = built  # type: ignore[assignment]
                    self._made = len(built)
                    return built
            cache, make = self._cache, self._make
            for i, e in enumerate(cache):
                if e is None:
                    cache[i] = make(i)
            self._made = len(cache)
        return self._cache  # type: ignore[return-value]

    def items(self) -> list[tuple[str, ParameterEntry]]:
        """(key, entry) of every row, in order: the entries and their pairs built with the
        collector paused (the pairs alone, 10,000 new tuples right after 10,000 new entries,
        set off the collections that pausing it for the entries had saved: 2-3x the time)."""
        with collector_paused():
            return list(zip(self._keys, self.all(), strict=True))

    def __setitem__(self, i: int, entry: ParameterEntry) -> None:
        self._positions = None
        self._columns = None
        if self._cache[i] is None:
            self._made += 1
        self._cache[i] = entry
        self._keys[i] = entry.key

    def append(self, entry: ParameterEntry) -> None:
        self._positions = None
        self._columns = None
        self._cache.append(entry)
        self._keys.append(entry.key)
        self._made += 1

    def pop(self, i: int = -1) -> ParameterEntry:
        self._positions = None
        self._columns = None
        for j in range(len(self._keys)):
            self._get(j)
        self._keys.pop(i)
        e = self._cache.pop(i)
        self._made -= 1
        assert e is not None
        return e


def _without_gc(make: Callable[[], list[ParameterEntry]]) -> list[ParameterEntry]:
    """`make()` with the cyclic garbage collector paused: building 10,000 entries allocates
    tens of thousands of objects, none of them cyclic garbage, and the collections their
    allocation triggers took a third of the time (benchmarks/results/readers-before-after.md)."""
    with collector_paused():
        return make()


def collector_paused() -> _CollectorPaused:
    """The cyclic garbage collector paused inside the block (left as it was after it): for
    code that builds many objects that are not cyclic garbage, such as an index's entries or a
    load's tensors. A process that has just imported a large framework (torch: ~10^5 objects)
    owes a full collection, which the first few thousand allocations of any code trigger; paused,
    it is not run inside paramio's set-up but at the caller's next allocations, as after
    `safetensors.torch.load_file` (Rust, no Python objects per tensor)."""
    return _CollectorPaused()


class _CollectorPaused:
    """`collector_paused`'s context manager (a class: `contextlib` is not imported to list a file)."""

    __slots__ = ("_enabled",)

    def __enter__(self) -> None:
        self._enabled = gc.isenabled()
        gc.disable()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if self._enabled:
            gc.enable()
