"""The index listing exactly as IREE prints it (``iree_io_parameter_index_dump``).

``iree-dump-parameters``, ``iree-create-parameters`` and ``repr(iree.runtime.ParameterIndex)``
all print this block; paramio prints the same bytes so scripts that parse it keep working.
"""

from __future__ import annotations

from collections.abc import Iterable

from paramio.index.entry import ParameterEntry

_RULE_TOP = "//===" + "-" * 110 + "===//"
_RULE_COLS = "//===------------+------------------+------------------+" + "-" * 59 + "===//"
_HEADINGS = "//         Start |              End |           Length | Key"
_RULE_ROWS = "//---------------+------------------+------------------+" + "-" * 62 + "//"


def format_dump(entries: Iterable[ParameterEntry], *, scope: str = "") -> str:
    """One scope's block: heading, one row per entry, and a trailing blank line."""
    rows: list[str] = []
    total = 0
    count = 0
    for e in entries:
        count += 1
        total += e.length
        if e.is_splat:
            rows.append(" " * 15 + "- |" + " " * 16 + "- | " + f"{e.length:16d} | `{e.key}`")
        else:
            rows.append(f"{e.offset:16d} | {e.offset + e.length:16d} | {e.length:16d} | `{e.key}`")
    label = "<global>" if scope == "" else f"`{scope}`"
    lines = [
        _RULE_TOP,
        f"// Parameter scope {label} ({count} entries, {total} total bytes)",
        _RULE_COLS,
        _HEADINGS,
        _RULE_ROWS,
        *rows,
        "",
    ]
    return "\n".join(lines) + "\n"
