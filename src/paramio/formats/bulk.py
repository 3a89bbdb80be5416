"""When a reader takes its bulk path: a whole table checked at once with NumPy.

Each format with many-entry tables has a reference reader, which checks entry by entry in the
format's own order and names the first fault, and a bulk path (``<format>/bulk.py``) which
makes the same checks on whole arrays and gives None on anything unusual, leaving the file to
the reference reader. The bulk path is a speed-up only: `Format.read_reference` exposes the
reference reader, and `paramio.testing.check_bulk_agrees` holds the two equal (same entries,
or the same error class and message) on random and damaged files.

The bulk path needs NumPy, which costs a process about 50-100 ms to import: a table goes the
bulk way when NumPy is imported already (a process that makes arrays) or when it has enough
entries to repay the import. How many depends on the format's path without NumPy, so each
reader names its own count (`use_bulk`'s `from_entries`): measured as ``paramio dump`` processes
of untyped 64-byte entries, NumPy's path first wins at about 200,000 IRPA entries, 300,000 GGUF
tensors and 35,000 safetensors tensors (at 10,000 entries, 41 against 154 ms for IRPA, 54
against 172 ms for GGUF, 71 against 165 ms for safetensors). A `paramio dump` of an ordinary
model never imports NumPy.

Below the bulk size, the safetensors and GGUF readers still check a whole table at once without
NumPy (C-level maps and sorts over Python lists) and keep it as `TableEntries`: the entries as
the reader's columns, built on first use. A listing prints the columns, an index adopts the
keys, and `paramio.formats.conversion.restore` puts carried types back by column (`retyped`),
so ``paramio dump`` of such a file builds no entry object at all.
"""

from __future__ import annotations

import sys

from paramio.core.entries import LazyEntries
from paramio.core.entry import ParameterEntry, entries_from_columns
from paramio.core.source import ByteSource
from paramio.core.tensor import TensorInfo

TYPE_CHECKING = False  # `typing` is not imported to read a file (mypy reads this as typing's)
if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["BULK_MIN_ENTRIES", "TableEntries", "use_bulk"]

#: Entries from which a table is read in bulk even when NumPy is not imported yet, for a reader
#: that names no count of its own: the reference loops cost about 4-9 µs an entry, so 8,192 of
#: them cost about as much as importing NumPy.
BULK_MIN_ENTRIES = 8192


def use_bulk(count: int, from_entries: int = BULK_MIN_ENTRIES) -> bool:
    """Whether a table of about `count` entries is read in bulk: NumPy is imported already, or
    the table has `from_entries` or more (the reader's own break-even with its path without NumPy)."""
    return count >= from_entries or "numpy" in sys.modules


#: A table's rows as columns: offsets, lengths, declared types.
Rows = tuple[list[int], list[int], list[TensorInfo | None]]


class TableEntries(LazyEntries):
    """Data entries of `source`: entry ``i`` is ``ParameterEntry.data(keys[i], source,
    offsets[i], lengths[i], tensor=tensors[i], origin=origin, file_index=i)`` of what `rows`
    gives ``(offsets, lengths, tensors)``, made once on first use (a bulk reader keeps NumPy
    arrays until then: listing keys needs none of it); entries are made when first asked for.
    `positions` as `LazyEntries`."""

    __slots__ = ("_table",)

    def __init__(
        self,
        keys: list[str],
        rows: Callable[[], Rows],
        source: ByteSource,
        origin: str,
        *,
        positions: dict[str, int] | None = None,
    ) -> None:
        own = list(keys)  # shared with the table: a row's key changes only once its entry is made
        table = _Table(own, rows, source, origin)
        # The table's methods, not this object's: no reference cycle, so a dropped index is freed
        # at once rather than by the cyclic collector.
        super().__init__(own, table.one, table.every, positions=positions, columns=table.dump)
        self._table = table

    def rows(self) -> Rows:
        """Every row's (offsets, lengths, declared types), in order."""
        return self._table.rows()

    def unchanged(self) -> bool:
        """Whether every row is still the reader's (no entry assigned, appended or removed)."""
        return self.dump_columns() is not None

    def retyped(self, tensors: list[TensorInfo | None]) -> TableEntries:
        """The same rows declaring `tensors` (no entry built)."""
        offsets, lengths, _ = self.rows()
        t = self._table
        return TableEntries(self.keys(), lambda: (offsets, lengths, tensors), t.source, t.origin)


class _Table:
    """What `TableEntries` makes its entries from."""

    __slots__ = ("keys", "made", "make_rows", "origin", "source")

    def __init__(self, keys: list[str], rows: Callable[[], Rows], source: ByteSource, origin: str) -> None:
        self.keys = keys
        self.make_rows = rows
        self.made: Rows | None = None
        self.source = source
        self.origin = origin

    def rows(self) -> Rows:
        if self.made is None:
            self.made = self.make_rows()
        return self.made

    def one(self, i: int) -> ParameterEntry:
        offsets, lengths, tensors = self.rows()
        return ParameterEntry.data(
            self.keys[i], self.source, offsets[i], lengths[i], tensor=tensors[i], origin=self.origin, file_index=i
        )

    def every(self) -> list[ParameterEntry]:
        offsets, lengths, tensors = self.rows()
        return entries_from_columns(
            keys=self.keys, lengths=lengths, offsets=offsets, source=self.source, origin=self.origin, declared=tensors
        )

    def dump(self) -> tuple[list[int], list[int], list[bool]]:
        offsets, lengths, _ = self.rows()
        return offsets, lengths, [False] * len(offsets)
