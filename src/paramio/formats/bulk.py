"""When a reader takes its bulk path: a whole table checked at once with NumPy.

Each format with many-entry tables has a reference reader, which checks entry by entry in the
format's own order and names the first fault, and a bulk path (``<format>/bulk.py``) which
makes the same checks on whole arrays and gives None on anything unusual, leaving the file to
the reference reader. The bulk path is a speed-up only: `Format.read_reference` exposes the
reference reader, and `paramio.testing.check_bulk_agrees` holds the two equal (same entries,
or the same error class and message) on random and damaged files.

The bulk path needs NumPy, which costs a process about 50-100 ms to import, while the
reference loops cost a few microseconds an entry: a table goes the bulk way when NumPy is
imported already (a process that makes arrays) or when it has enough entries to repay the
import (`BULK_MIN_ENTRIES`). A `paramio dump` of an ordinary model never imports NumPy.

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

#: Entries from which a table is read in bulk even when NumPy is not imported yet: the
#: reference loops cost about 4-9 µs an entry, so 8,192 of them cost about as much as importing NumPy.
BULK_MIN_ENTRIES = 8192


def use_bulk(count: int) -> bool:
    """Whether a table of about `count` entries is read in bulk."""
    return count >= BULK_MIN_ENTRIES or "numpy" in sys.modules


class TableEntries(LazyEntries):
    """Data entries of `source`: entry ``i`` is ``ParameterEntry.data(keys[i], source,
    offsets[i], lengths[i], tensor=tensors()[i], origin=origin, file_index=i)``, made when
    first asked for. `tensors` gives the declared types (made once, on first use)."""

    __slots__ = ("lengths", "offsets", "origin", "source", "_tensors", "_types")

    def __init__(
        self,
        keys: list[str],
        offsets: list[int],
        lengths: list[int],
        tensors: Callable[[], list[TensorInfo | None]],
        source: ByteSource,
        origin: str,
    ) -> None:
        super().__init__(list(keys), self._one, self._every, columns=self._dump)
        self.offsets = offsets
        self.lengths = lengths
        self.source = source
        self.origin = origin
        self._types = tensors
        self._tensors: list[TensorInfo | None] | None = None

    def tensors(self) -> list[TensorInfo | None]:
        """Every row's declared type, in order."""
        if self._tensors is None:
            self._tensors = self._types()
        return self._tensors

    def unchanged(self) -> bool:
        """Whether every row is still the reader's (no entry assigned, appended or removed)."""
        return self.dump_columns() is not None

    def retyped(self, tensors: list[TensorInfo | None]) -> TableEntries:
        """The same rows declaring `tensors` (no entry built)."""
        return TableEntries(self.keys(), self.offsets, self.lengths, lambda: tensors, self.source, self.origin)

    def _one(self, i: int) -> ParameterEntry:
        return ParameterEntry.data(
            self._keys[i],
            self.source,
            self.offsets[i],
            self.lengths[i],
            tensor=self.tensors()[i],
            origin=self.origin,
            file_index=i,
        )

    def _every(self) -> list[ParameterEntry]:
        return entries_from_columns(
            keys=self._keys,
            lengths=self.lengths,
            offsets=self.offsets,
            source=self.source,
            origin=self.origin,
            declared=self.tensors(),
        )

    def _dump(self) -> tuple[list[int], list[int], list[bool]]:
        return self.offsets, self.lengths, [False] * len(self.offsets)
