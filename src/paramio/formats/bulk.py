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
"""

from __future__ import annotations

import sys

__all__ = ["BULK_MIN_ENTRIES", "use_bulk"]

#: Entries from which a table is read in bulk even when NumPy is not imported yet: the
#: reference loops cost about 4-9 µs an entry, so 8,192 of them cost about as much as importing NumPy.
BULK_MIN_ENTRIES = 8192


def use_bulk(count: int) -> bool:
    """Whether a table of about `count` entries is read in bulk."""
    return count >= BULK_MIN_ENTRIES or "numpy" in sys.modules
