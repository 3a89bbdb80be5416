"""Data entries that share bytes with a file's structure or with each other.

IREE's parser accepts such files (its header comment even says segments "may overlap"), and
reading them is harmless. Writing is not: an in-place write into an entry whose storage covers
the header or the entry table destroys the archive, and one into an entry sharing bytes with
another silently changes both. `paramio verify` reports these overlaps; writable opens refuse
them. One sort and one sweep: O(n log n) for n entries.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from paramio.core.entries import LazyEntries
from paramio.core.entry import EntryKind, ParameterEntry
from paramio.core.source import ByteSource

if TYPE_CHECKING:  # imported where used: a listing needs no NumPy
    import numpy as np

__all__ = ["Overlap", "entry_spans", "find_overlaps"]


@dataclasses.dataclass(frozen=True, slots=True)
class Overlap:
    """Entry `key`'s data at ``offset..end`` shares bytes with `other` (``other_start..other_end``)."""

    key: str
    offset: int
    end: int
    other: str
    other_start: int
    other_end: int
    other_is_entry: bool

    @property
    def message(self) -> str:
        what = f"entry {self.other!r}" if self.other_is_entry else self.other
        return f"data {self.offset:#x}..{self.end:#x} overlaps {what} ({self.other_start:#x}..{self.other_end:#x})"


def _same_file(a: ByteSource | None, b: ByteSource | None) -> bool:
    if a is None or b is None:
        return False
    if a is b:
        return True
    pa, pb = a.path, b.path
    return pa is not None and pb is not None and os.path.realpath(pa) == os.path.realpath(pb)


def entry_spans(source: ByteSource | None, entries: Sequence[ParameterEntry] | object) -> list[tuple[int, int, str]]:
    """``(start, end, key)`` of every non-empty data entry stored in `source`'s file (external
    entries naming the archive itself included). A reader's lazy table is taken whole: its
    rows all live in the file it read (`source` may then be None)."""
    if isinstance(entries, LazyEntries):
        columns = entries.dump_columns()
        if columns is not None:  # every entry of a lazy table lives in the table's own source
            keys, offsets, lengths, splats = columns
            return [(o, o + n, k) for k, o, n, s in zip(keys, offsets, lengths, splats, strict=True) if n and not s]
    assert isinstance(entries, Iterable)
    spans: list[tuple[int, int, str]] = []
    for e in entries:
        assert isinstance(e, ParameterEntry)
        if e.kind is EntryKind.SPLAT or not e.length or not _same_file(source, e.source):
            continue
        spans.append((e.offset, e.offset + e.length, e.key))
    return spans


def _span_arrays(source: ByteSource | None, entries: object) -> tuple[np.ndarray, np.ndarray] | None:
    """(starts, ends) of the non-empty data entries straight from a lazy table's columns, or
    None when `entries` has none (then `entry_spans` walks the entries)."""
    if not isinstance(entries, LazyEntries):
        return None
    columns = entries.dump_columns()
    if columns is None:
        return None
    import numpy as np

    _keys, offsets, lengths, splats = columns
    starts = np.asarray(offsets, np.uint64)
    lens = np.asarray(lengths, np.uint64)
    keep = (lens > 0) & ~np.asarray(splats, bool)
    return starts[keep], starts[keep] + lens[keep]


def _may_overlap(starts: np.ndarray, ends: np.ndarray, regions: list[tuple[int, int, str]], with_entries: bool) -> bool:
    """Whether any entry overlaps a region (or, with `with_entries`, another entry): sorted
    starts against the running maximum of earlier ends, all in NumPy."""
    import numpy as np

    if not len(starts):
        return False
    if with_entries and len(starts) > 1:
        order = np.argsort(starts, kind="stable")
        s, e = starts[order], ends[order]
        if bool((s[1:] < np.maximum.accumulate(e)[:-1]).any()):
            return True
    for r0, r1, _ in regions:  # a few per archive
        if bool(((starts < r1) & (ends > r0)).any()):
            return True
    return False


def find_overlaps(
    source: ByteSource | None,
    entries: Sequence[ParameterEntry] | object,
    regions: Iterable[tuple[int, int, str]] = (),
    *,
    with_entries: bool = True,
) -> list[Overlap]:
    """Every entry of `source`'s file overlapping a structure region (``(start, end, what)``)
    or, with `with_entries`, an earlier-starting entry. Sorted by offset."""
    import numpy as np

    regions = [(s, e, what) for s, e, what in regions if e > s]
    arrays = _span_arrays(source, entries)
    spans: list[tuple[int, int, str]] | None = None
    if arrays is None:
        spans = entry_spans(source, entries)
        n = len(spans)
        arrays = (
            np.fromiter((t[0] for t in spans), np.uint64, n),
            np.fromiter((t[1] for t in spans), np.uint64, n),
        )
    if not _may_overlap(*arrays, regions, with_entries):
        return []  # the common case, decided in NumPy; the sweep below only names the culprits
    if spans is None:
        spans = entry_spans(source, entries)
    items: list[tuple[int, int, str, bool]] = [(s, e, k, True) for s, e, k in spans]
    items += [(s, e, what, False) for s, e, what in regions]
    items.sort(key=lambda t: (t[0], not t[3]))  # a region before an entry at the same start
    found: list[Overlap] = []
    # The span reaching furthest so far, one of each kind: anything overlapping an earlier span
    # of a kind overlaps that kind's holder, so each such pair kind is reported at least once.
    region: tuple[int, int, str] | None = None
    entry: tuple[int, int, str] | None = None
    for start, end, name, is_entry in items:
        if is_entry:
            if region is not None and start < region[1]:
                found.append(Overlap(name, start, end, region[2], region[0], region[1], False))
            elif with_entries and entry is not None and start < entry[1]:
                found.append(Overlap(name, start, end, entry[2], entry[0], entry[1], True))
            if entry is None or end > entry[1]:
                entry = (start, end, name)
        else:
            if entry is not None and start < entry[1]:
                found.append(Overlap(entry[2], entry[0], entry[1], name, start, end, False))
            if region is None or end > region[1]:
                region = (start, end, name)
    return found
