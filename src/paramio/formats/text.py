"""Names from files made safe for a terminal: the one escaping function of the CLI.

A key, scope or path read from a file may hold newlines, escape sequences or bidi overrides
that would forge lines or colours; every command prints such names through `escape`. Plain
printable text (including non-ASCII letters) passes unchanged, so listings of ordinary keys
stay byte-identical to IREE's.
"""

from __future__ import annotations

import functools

TYPE_CHECKING = False  # `typing.TYPE_CHECKING` without importing typing (start-up: see paramio/__init__.py)
if TYPE_CHECKING:
    import re
    from collections.abc import Sequence

__all__ = ["escape", "escape_all", "escape_keys", "needs_escape"]

# C0/C1 controls, DEL, lone surrogates (undecodable bytes), line/paragraph separators and the
# bidi embedding/override/isolate characters: all unprintable to Python (`str.isprintable`), so
# text that is printable (and has no backslash, when quoting) needs no escaping and no regex.
_UNSAFE = "\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff"


@functools.cache
def _pattern(quote: bool) -> re.Pattern[str]:
    """What `escape` replaces (compiled on first use: ~0.8 ms a listing of plain keys never needs;
    `re` itself imported here too, ~1.5 ms with the modules it brings)."""
    import re

    return re.compile("[" + ("\\\\" if quote else "") + _UNSAFE + "]")


def _plain(text: str, quote: bool) -> bool:
    """Whether `text` holds nothing `escape` changes, by the C-speed test (no regex)."""
    return text.isprintable() and not (quote and "\\" in text)


_NAMED = {"\n": "\\n", "\t": "\\t", "\r": "\\r"}


def _replace(match: re.Match[str]) -> str:
    ch = match.group()
    o = ord(ch)
    if ch == "\\":
        return "\\\\"
    if ch in _NAMED:
        return _NAMED[ch]
    if o < 0x100:
        return f"\\x{o:02x}"
    if 0xDC80 <= o <= 0xDCFF:  # a byte that was not UTF-8, kept by surrogateescape
        return f"\\x{o - 0xDC00:02x}"
    return f"\\u{o:04x}"


def needs_escape(text: str, *, quote: bool = True) -> bool:
    return not _plain(text, quote) and _pattern(quote).search(text) is not None


def escape(text: str, *, quote: bool = True) -> str:
    """`text` safe for a terminal: control characters as ``\\n``, ``\\t``, ``\\xNN``; lone
    surrogates (undecodable bytes of a name) as ``\\xNN``; separators and bidi controls as
    ``\\uNNNN``. With `quote`, a backslash is doubled so the escaped form is unambiguous."""
    return text if _plain(text, quote) else _pattern(quote).sub(_replace, text)


def escape_all(texts: Sequence[str], *, quote: bool = True) -> list[str]:
    """`escape` over many names; one scan of the joined text when none needs it (listings of
    100,000 keys stay as fast as before)."""
    joined = "".join(texts)
    # The C-speed test settles the usual case, the regex only the rest.
    if _plain(joined, quote) or (pattern := _pattern(quote)).search(joined) is None:
        return list(texts)
    return [pattern.sub(_replace, t) for t in texts]


def escape_keys(keys: list[str]) -> list[str]:
    """Keys for an IREE-style listing (`paramio.index.dump.format_dump` ``escape=``): control
    characters escaped, backslashes left as IREE prints them."""
    return escape_all(keys, quote=False)
