"""IRPA v0 byte layout: IREE's ``parameter_archive.h``, as tables (packed, little-endian)."""

from __future__ import annotations

import enum
import struct

# The splat rule's bound (a splat entry's pattern field is this wide), re-exported for the readers.
from paramio.core.splats import MAX_SPLAT_PATTERN_LENGTH as MAX_SPLAT_PATTERN_LENGTH

MAGIC = 0x41505249  # b"IRPA" read as a little-endian u32
MAGIC_BYTES = b"IRPA"
VERSION_MAJOR = 0
VERSION_MINOR = 0
HEADER_SIZE = 88
HEADER_PREFIX_SIZE = 32
HEADER_ALIGNMENT = 16
ENTRY_ALIGNMENT = 16
DEFAULT_DATA_ALIGNMENT = 64
DEFAULT_FILE_ALIGNMENT = 4096
#: What IREE records as every data entry's minimum_alignment, whatever the placement.
RECORDED_DATA_ALIGNMENT = 64


class EntryType(enum.IntEnum):
    SKIP = 0
    SPLAT = 1
    DATA = 2
    EXTERNAL = 3


# magic u32, major u16, minor u16, header_size u64, next_header_offset u64, flags u64
HEADER_PREFIX = struct.Struct("<IHHQQQ")
# entry_count u64, then three {offset u64, length u64} segments
HEADER_V0_TAIL = struct.Struct("<Q6Q")
# entry_size u64, type u32, flags u64, name{off,len}, metadata{off,len}, minimum_alignment u64
ENTRY_HEADER = struct.Struct("<QIQQQQQQ")
SPLAT_TAIL = struct.Struct("<Q16sB")  # length u64, pattern u8[16], pattern_length u8
DATA_TAIL = struct.Struct("<QQ")  # storage {offset, length}
EXTERNAL_TAIL = struct.Struct("<QQQQ")  # path {offset, length}, range {offset, length}

ENTRY_SIZES = {
    EntryType.SKIP: ENTRY_HEADER.size,
    EntryType.SPLAT: ENTRY_HEADER.size + SPLAT_TAIL.size,
    EntryType.DATA: ENTRY_HEADER.size + DATA_TAIL.size,
    EntryType.EXTERNAL: ENTRY_HEADER.size + EXTERNAL_TAIL.size,
}

assert HEADER_PREFIX.size == HEADER_PREFIX_SIZE
assert HEADER_PREFIX.size + HEADER_V0_TAIL.size == HEADER_SIZE
assert ENTRY_SIZES[EntryType.SPLAT] == 85 and ENTRY_SIZES[EntryType.DATA] == 76
assert ENTRY_SIZES[EntryType.EXTERNAL] == 92


def align(value: int, alignment: int) -> int:
    """Round up to a multiple of `alignment` (a power of two; 0 and 1 leave it unchanged)."""
    if alignment <= 1:
        return value
    return (value + alignment - 1) & ~(alignment - 1)


def reference_budget(size: int) -> int:
    """How many bytes of names and metadata, summed over the entries, an archive of `size`
    bytes may reference: 4x the file, plus 1 MiB.

    IREE's parser keeps names and metadata as views into the mapped file, so entries may share
    or overlap ranges at no cost there; but every key becomes a `str` here, `dump` prints every
    key, and a conversion writes every entry's metadata, so 20,000 entries naming one 1 MiB
    range cost 20 GB. A writer that shares bytes between entries (one TENSORv0 blob for many
    entries) stays far below this bound; one that makes a small file expand to gigabytes does not.
    """
    return 4 * size + (1 << 20)
