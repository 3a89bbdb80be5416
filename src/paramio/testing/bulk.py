"""A format's bulk path against its reference reader: same entries, or the same error.

A format whose reader checks large tables at once (`paramio.formats.bulk`) declares its
reference reader as `Format.read_reference`. `check_bulk_agrees` reads one file both ways and
fails unless both give the same entries and attributes, or both raise the same error class
with the same message; `damaged` is a hypothesis strategy of damaged copies of a valid file
(bytes overwritten with values that matter to the format's parsers, a truncation), so that a
property test holds the two paths equal on random and mutated inputs::

    @given(data=damaged(seed))
    def test_bulk_agrees(data):
        check_bulk_agrees(get_format("irpa"), data)

`FormatTests.test_bulk_path_agrees_with_the_reference` runs this over the file it writes.
NumPy is imported first: the bulk path is taken for a table of any size once it is
(`paramio.formats.bulk.use_bulk`). Needs hypothesis for `damaged` only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from paramio.core.entries import LazyEntries
from paramio.core.errors import ParamioError
from paramio.formats.contract import Format, FormatContents
from paramio.sources.memory import MemorySource

if TYPE_CHECKING:
    from hypothesis.strategies import SearchStrategy

__all__ = ["check_bulk_agrees", "damaged", "describe"]

#: Byte values a damaged copy writes: small counts, sign and size boundaries, and the bytes
#: JSON structure is made of (safetensors headers).
_VALUES = (0, 1, 2, 3, 4, 8, 16, 0x7F, 0x80, 0xFF) + tuple(b'"\\,:[]{} 0123456789-.eE')


def describe(contents: FormatContents) -> tuple[object, ...]:
    """What a reader found, as plain values to compare: every entry's fields and tensor type,
    and the file-level attributes."""
    return (
        [
            (e.key, e.kind, e.offset, e.length, e.metadata, e.pattern, e.file_index, e.origin, e.tensor)
            for e in contents.entries
        ],
        contents.attributes,
    )


def _outcome(read: object, data: bytes, name: str) -> tuple[bool, object]:
    """(whether the bulk path built the entries, what the read found or the error it raised)."""
    assert callable(read)
    try:
        contents = read(MemorySource(data, name=name))
    except ParamioError as exc:
        return False, (type(exc).__name__, str(exc))
    return isinstance(contents.entries, LazyEntries), describe(contents)


def check_bulk_agrees(fmt: Format, data: bytes, *, name: str | None = None) -> bool:
    """Read `data` (a whole file of format `fmt`, named `name`) with `fmt.read_source` and with
    `fmt.read_reference`; raise `AssertionError` unless both give the same entries and
    attributes or the same error class and message. Returns whether the bulk path read it
    (a test seed should; a damaged copy usually falls back to the reference)."""
    import numpy  # noqa: F401  (the bulk path is taken for any table once NumPy is imported)

    if fmt.read_source is None or fmt.read_reference is None:
        raise AssertionError(f"format {fmt.name!r} declares no bulk path (read_reference is None)")
    name = name or f"file{fmt.extension}"
    bulk, fast = _outcome(fmt.read_source, data, name)
    _, reference = _outcome(fmt.read_reference, data, name)
    assert fast == reference, f"{fmt.name}: bulk path {fast!r:.2000}\n != reference {reference!r:.2000}"
    return bulk


def damaged(seed: bytes, *, head: int = 4096, max_edits: int = 4) -> SearchStrategy[bytes]:
    """Copies of `seed` with up to `max_edits` bytes of its first `head` bytes (where the
    headers and tables of a small file lie) overwritten, and sometimes cut short."""
    from hypothesis import strategies as st

    span = max(1, min(len(seed), head))
    value = st.sampled_from(_VALUES) | st.integers(0, 255)
    edits = st.lists(st.tuples(st.integers(0, span - 1), value), max_size=max_edits)
    cut = st.none() | st.integers(0, len(seed))
    return st.builds(_damage, st.just(seed), edits, cut)


def _damage(seed: bytes, edits: list[tuple[int, int]], cut: int | None) -> bytes:
    out = bytearray(seed)
    for at, value in edits:
        if at < len(out):
            out[at] = value
    return bytes(out if cut is None else out[:cut])
