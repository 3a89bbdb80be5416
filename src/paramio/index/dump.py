"""The index listing exactly as IREE prints it (``iree_io_parameter_index_dump``).

``iree-dump-parameters``, ``iree-create-parameters`` and ``repr(iree.runtime.ParameterIndex)``
all print this block; paramio prints the same bytes so scripts that parse it keep working.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from itertools import chain
from operator import add, attrgetter

from paramio.core.entries import LazyEntries
from paramio.core.entry import EntryKind, ParameterEntry

TYPE_CHECKING = False  # `typing` is not imported to list a file (mypy reads this as typing's)
if TYPE_CHECKING:
    from paramio.index.index import ParameterIndex

_RULE_TOP = "//===" + "-" * 110 + "===//"
_RULE_COLS = "//===------------+------------------+------------------+" + "-" * 59 + "===//"
_HEADINGS = "//         Start |              End |           Length | Key"
_RULE_ROWS = "//---------------+------------------+------------------+" + "-" * 62 + "//"


_ROW = "%16d | %16d | %16d | `%s`"
_SPLAT_ROW = " " * 15 + "- |" + " " * 16 + "- | %16d | `%s`"
_key = attrgetter("key")
_offset = attrgetter("offset")
_length = attrgetter("length")
_kind = attrgetter("kind")


def format_dump(
    entries: Iterable[ParameterEntry],
    *,
    scope: str = "",
    escape: Callable[[list[str]], list[str]] | None = None,
) -> str:
    """One scope's block: heading, one row per entry, and a trailing blank line.

    `escape` maps the keys (and the scope) before printing: the CLI passes its terminal
    escaping, so a key holding a newline or an escape sequence cannot forge rows; IREE prints
    keys raw, which is the default here (``repr`` of an index)."""
    columns = entries.dump_columns() if isinstance(entries, LazyEntries) else None
    if columns is not None:  # straight from the reader's table: no entry objects
        keys, offsets, lengths, splats = columns
        if escape is not None:
            keys, scope = escape(keys), escape([scope])[0]
        return _format(keys, offsets, lengths, splats if True in splats else None, scope)
    items = entries if isinstance(entries, list) else list(entries)
    # Columns read by C-level maps and every row formatted by one `%` over the whole block (no
    # Python code per row: ~0.5 us a row, was 1.5).
    kinds = list(map(_kind, items))
    splat = [k is EntryKind.SPLAT for k in kinds] if EntryKind.SPLAT in kinds else None
    keys = list(map(_key, items))
    if escape is not None:
        keys, scope = escape(keys), escape([scope])[0]
    return _format(keys, list(map(_offset, items)), list(map(_length, items)), splat, scope)


def external_entries(index: ParameterIndex) -> list[ParameterEntry]:
    """The EXTERNAL entries of `index`, in order (the CLI names their files after the block).

    Entries a reader keeps as a column table (`LazyEntries.dump_columns`) are data and splat
    rows only: the IRPA readers leave an archive with external entries to the entry-by-entry
    loop. Such an index is answered without building its entries."""
    entries = index._entries
    if isinstance(entries, LazyEntries) and entries.dump_columns() is not None:
        return []
    return [e for e in entries if e.kind is EntryKind.EXTERNAL]


def _format(keys: list[str], offsets: list[int], lengths: list[int], splats: list[bool] | None, scope: str) -> str:
    ends = list(map(add, offsets, lengths))
    if splats is not None:
        rows = [
            _SPLAT_ROW % (n, k) if is_splat else _ROW % (o, e, n, k)
            for is_splat, o, e, n, k in zip(splats, offsets, ends, lengths, keys, strict=True)
        ]
        body = "".join(r + "\n" for r in rows)
    else:
        body = ((_ROW + "\n") * len(keys)) % tuple(chain.from_iterable(zip(offsets, ends, lengths, keys, strict=True)))
    label = "<global>" if scope == "" else f"`{scope}`"
    head = [
        _RULE_TOP,
        f"// Parameter scope {label} ({len(keys)} entries, {sum(lengths)} total bytes)",
        _RULE_COLS,
        _HEADINGS,
        _RULE_ROWS,
    ]
    return "\n".join(head) + "\n" + body + "\n"
