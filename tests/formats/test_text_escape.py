"""`paramio.formats.text`: printable text skips the regex (compiled on first use, so a listing of
plain keys never compiles it); the skip must never pass a character `escape` changes."""

from __future__ import annotations

import sys

from paramio.formats.text import _pattern, _plain, _replace, escape, escape_all, needs_escape


def test_no_character_escape_changes_is_taken_for_plain() -> None:
    for quote in (True, False):
        pattern = _pattern(quote)
        missed = [hex(o) for o in range(sys.maxunicode + 1) if _plain(chr(o), quote) and pattern.search(chr(o))]
        assert missed == [], (quote, missed[:10])


def test_escape_and_its_fast_path_agree() -> None:
    cases = ["plain.key", "naïve/日本", "a\nb", "tab\there", "bidi\u202eevil", "back\\slash", "sep\u2028x", "\udcff"]
    for quote in (True, False):
        for text in cases:
            by_regex = _pattern(quote).sub(_replace, text)  # what escape did before the fast path
            assert escape(text, quote=quote) == by_regex, (text, quote)
            assert needs_escape(text, quote=quote) == (escape(text, quote=quote) != text), (text, quote)
        assert escape_all(cases, quote=quote) == [escape(t, quote=quote) for t in cases]
    assert escape("a\nb\\c\u202e") == "a\\nb\\\\c\\u202e"
    assert escape("back\\slash", quote=False) == "back\\slash"
