"""The one rule for splat entries: a pattern IREE can load, repeated a whole number of times.

IREE's archive builder accepts patterns of 1, 2, 4, 8 or 16 bytes (its parser bounds them at
16); its runtime fills an entry by repeating the pattern, so the entry's length must be a
multiple of it. Every place that makes, writes, converts or checks a splat asks `splat_fault`;
each may word the answer for its own caller (a CLI flag, a library argument, a report line), but
the rule itself lives only here.
"""

from __future__ import annotations

import enum

from paramio.core.errors import InvalidArgumentError

__all__ = [
    "MAX_SPLAT_PATTERN_LENGTH",
    "SPLAT_PATTERN_LENGTHS",
    "SPLAT_PATTERN_LENGTHS_TEXT",
    "SplatFault",
    "check_splat",
    "splat_fault",
    "splat_fault_message",
]

#: The pattern lengths IREE's builder writes (``iree_io_parameter_archive_builder_add_splat_entry``).
SPLAT_PATTERN_LENGTHS: tuple[int, ...] = (1, 2, 4, 8, 16)
#: The largest pattern IREE's parser and ``ParameterIndex.add_splat`` accept.
MAX_SPLAT_PATTERN_LENGTH = max(SPLAT_PATTERN_LENGTHS)
#: The lengths as messages say them: "1, 2, 4, 8 or 16".
SPLAT_PATTERN_LENGTHS_TEXT = ", ".join(map(str, SPLAT_PATTERN_LENGTHS[:-1])) + f" or {SPLAT_PATTERN_LENGTHS[-1]}"
#: IREE's builder's words for them: "1, 2, 4, 8, or 16".
_IREE_LENGTHS_TEXT = ", ".join(map(str, SPLAT_PATTERN_LENGTHS[:-1])) + f", or {SPLAT_PATTERN_LENGTHS[-1]}"


class SplatFault(enum.Enum):
    """Why a splat breaks the rule."""

    PATTERN_LENGTH = "pattern length"  #: not one of `SPLAT_PATTERN_LENGTHS`
    NEGATIVE_LENGTH = "negative length"  #: the entry's length is below zero
    PARTIAL_PATTERN = "partial pattern"  #: the length is not a multiple of the pattern


def splat_fault(pattern_length: int, total_length: int | None = None) -> SplatFault | None:
    """What is wrong with a splat of a `pattern_length`-byte pattern filling `total_length`
    bytes (None: nothing; the length is not checked when None)."""
    if pattern_length not in SPLAT_PATTERN_LENGTHS:
        return SplatFault.PATTERN_LENGTH
    if total_length is None:
        return None
    if total_length < 0:
        return SplatFault.NEGATIVE_LENGTH
    if total_length % pattern_length:
        return SplatFault.PARTIAL_PATTERN
    return None


def splat_fault_message(fault: SplatFault, pattern_length: int, total_length: int | None = None) -> str:
    """The library's words for `fault` (the pattern-length words are IREE's builder's)."""
    if fault is SplatFault.PATTERN_LENGTH:
        return f"splat pattern length {pattern_length} invalid; must be {_IREE_LENGTHS_TEXT} bytes"
    if fault is SplatFault.NEGATIVE_LENGTH:
        return f"splat length {total_length} is negative"
    return f"splat length {total_length} is not a multiple of its {pattern_length}-byte pattern"


def check_splat(pattern_length: int, total_length: int | None = None, *, key: str | None = None) -> None:
    """Raise `InvalidArgumentError` (naming `key`) unless the splat keeps the rule."""
    fault = splat_fault(pattern_length, total_length)
    if fault is not None:
        raise InvalidArgumentError(splat_fault_message(fault, pattern_length, total_length), key=key)
