"""IREE's failures as one readable line, with the cause IREE's Python binding hides.

The binding raises `RuntimeError`, `ValueError` or `IndexError` (``OUT_OF_RANGE``) whose text
holds IREE's status, a call stack on extra lines (``[ 0] bytecode module@2:2584 -``), and for a
device that cannot be created only "Exception for last tried follows." with the real cause
chained behind it. `iree_message` joins all of that into one line; `hint` adds what paramio
knows and IREE cannot (which file serves a parameter that is too short, which flag binds a scope).
"""

from __future__ import annotations

import re
from collections.abc import Callable

__all__ = ["IREE_ERRORS", "hint", "iree_message"]

#: What IREE's Python binding raises for a failed status.
IREE_ERRORS: tuple[type[BaseException], ...] = (RuntimeError, ValueError, IndexError, KeyError, TypeError)

_PREFIXES = ("Error creating vm context with modules: ", "Error creating driver: ")
_FOLLOWS = "Exception for last tried follows."
_RANGE = re.compile(
    r"parameter `(?P<key>[^`]*)` range out of bounds \(offset=(?P<off>\d+), length=(?P<len>\d+), size=(?P<size>\d+)\)"
)
_NO_PROVIDER = re.compile(r"no provider registered that handles scopes like '(?P<scope>[^']*)'")
_NO_KEY = re.compile(r"no parameter found in index with key '(?P<key>[^']*)'")


def _one_line(text: str) -> str:
    parts = [p.strip() for p in text.splitlines()]
    line = " ".join(p for p in parts if p)
    for prefix in _PREFIXES:
        line = line.replace(prefix, "")
    return line.rstrip("; ").strip()


def iree_message(exc: BaseException) -> str:
    """IREE's status text of `exc` and of the causes chained behind it, on one line."""
    texts: list[str] = []
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        text = _one_line(str(cur.args[0]) if isinstance(cur, KeyError) and cur.args else str(cur))
        text = text.replace(_FOLLOWS, "").strip()
        if text:
            texts.append(text.rstrip("."))
        cur = cur.__cause__ or cur.__context__
    return ": ".join(texts) if texts else type(exc).__name__


def hint(message: str, describe: Callable[[str], str | None]) -> str:
    """`message` with paramio's explanation appended where it recognises IREE's status.

    `describe(key)` tells where paramio serves `key` from (``"model::w in w.irpa, 8 bytes"``),
    or None.
    """
    m = _RANGE.search(message)
    if m is not None:
        where = describe(m["key"])
        need = int(m["off"]) + int(m["len"])
        served = f"{where}" if where else f"parameter '{m['key']}'"
        return (
            f"{served} holds {m['size']} bytes but the program reads {m['len']} at offset {m['off']} "
            f"(needs {need}) [IREE: {message}]"
        )
    m = _NO_PROVIDER.search(message)
    if m is not None:
        scope = m["scope"]
        flag = f"--parameters={scope}=FILE" if scope else "--parameters=FILE"
        return f"the program reads parameters of scope '{scope}' and no file serves it: give {flag} [IREE: {message}]"
    m = _NO_KEY.search(message)
    if m is not None:
        return f"no file given serves parameter '{m['key']}' [IREE: {message}]"
    return message
