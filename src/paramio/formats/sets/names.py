"""Set member names: ``{stem}-{i}-of-{n}{suffix}``, one rule for every format.

A name is a member name when it ends with the format's member suffix and the part before it
ends ``-<digits>-of-<digits>``; the whole name is matched ignoring case (as IREE matches
extensions, and as IRPA and GGUF always did), and siblings are spelled as the name given was.
Numbers are ASCII digits; more than `MAX_DIGITS` of them, an index outside ``1..count`` or a
count above `MAX_MEMBERS` make the name an ordinary file name (nothing is converted to an int
that Python would refuse, and no name claims more members than a set may have).
"""

from __future__ import annotations

import functools

from paramio.core.records import Record

TYPE_CHECKING = False  # `typing.TYPE_CHECKING` without importing typing (start-up: see paramio/__init__.py)
if TYPE_CHECKING:
    import re
    from collections.abc import Sequence

__all__ = [
    "MAX_DIGITS",
    "MAX_MEMBERS",
    "MEMBER_DIGITS",
    "ShardName",
    "member_name",
    "member_stem",
    "parse_member_name",
    "shard_order",
]

#: More members than this in one set is refused (a name like ``-00001-of-99999999`` claims nothing).
MAX_MEMBERS = 100_000
#: A shard number longer than this is no shard number (IRPA manifests once raised ValueError).
MAX_DIGITS = 18
#: Digits paramio writes (as Hugging Face and gguf-split do).
MEMBER_DIGITS = 5


@functools.cache
def _numbered() -> re.Pattern[str]:
    """The member-name pattern, compiled on first use: every file a reader opens has its name
    checked, and a name without ``-of-`` (most) is settled without `re` (~1.5 ms to import)."""
    import re

    return re.compile(r"^(?P<stem>.*)-(?P<index>[0-9]+)(?P<of>-of-)(?P<count>[0-9]+)$", re.IGNORECASE | re.DOTALL)


class ShardName(Record):
    """A member name taken apart; `sibling` spells the other members' names the same way."""

    __slots__ = ("stem", "index", "count", "index_text", "of", "count_text", "suffix")
    __match_args__ = __slots__
    stem: str
    index: int
    count: int
    index_text: str
    of: str
    count_text: str
    suffix: str

    def __init__(
        self, stem: str, index: int, count: int, index_text: str, of: str, count_text: str, suffix: str
    ) -> None:
        object.__setattr__(self, "stem", stem)
        object.__setattr__(self, "index", index)
        object.__setattr__(self, "count", count)
        object.__setattr__(self, "index_text", index_text)
        object.__setattr__(self, "of", of)
        object.__setattr__(self, "count_text", count_text)
        object.__setattr__(self, "suffix", suffix)

    def sibling(self, index: int) -> str:
        """Member `index`'s name (1-based), zero-padded to this name's width."""
        return f"{self.stem}-{index:0{len(self.index_text)}d}{self.of}{self.count_text}{self.suffix}"


def parse_member_name(name: str, suffix: str) -> ShardName | None:
    """`name` (a base name) taken apart as a member of a set of files ending `suffix`, or None
    when it is an ordinary file name (see the module docstring)."""
    if not name.lower().endswith(suffix.lower()):
        return None
    core, spelled = name[: len(name) - len(suffix)], name[len(name) - len(suffix) :]
    if "-of-" not in core.lower():  # what the pattern needs literally (case ignored): no member
        return None
    m = _numbered().match(core)
    if m is None or len(m["index"]) > MAX_DIGITS or len(m["count"]) > MAX_DIGITS:
        return None
    index, count = int(m["index"]), int(m["count"])
    if not 1 <= index <= count or count > MAX_MEMBERS:
        return None
    return ShardName(m["stem"], index, count, m["index"], m["of"], m["count"], spelled)


def member_name(stem: str, index: int, count: int, suffix: str) -> str:
    """The name paramio writes for member `index` (1-based) of `count`."""
    return f"{stem}-{index:0{MEMBER_DIGITS}d}-of-{count:0{MEMBER_DIGITS}d}{suffix}"


def shard_order(files: Sequence[str], suffix: str) -> list[str]:
    """Distinct member names by their number when numbered (by `parse_member_name`'s rule),
    else in order of first mention. One regular expression per name, no object built: a
    manifest of 20,000 names orders in tens of milliseconds."""
    import re

    first = {name: i for i, name in enumerate(dict.fromkeys(files))}
    numbered = re.compile(
        rf"^.*-([0-9]{{1,{MAX_DIGITS}}})-of-([0-9]{{1,{MAX_DIGITS}}}){re.escape(suffix)}$", re.IGNORECASE | re.DOTALL
    )
    unnumbered = 1 << 62

    def key(name: str) -> tuple[int, int]:
        m = numbered.match(name)
        if m is None:
            return (unnumbered, first[name])
        index, count = int(m[1]), int(m[2])
        return (index if 1 <= index <= count <= MAX_MEMBERS else unnumbered, first[name])

    return sorted(first, key=key)


def member_stem(bare: str, suffix: str) -> str | None:
    """For a file name without its extension (``model-00001-of-00003``), the stem of the set it
    is a member of (``model``), or None when it names no member: `Format.member_stem` of every
    format with sets, by the one rule of `parse_member_name`."""
    parsed = parse_member_name(bare + suffix, suffix)
    return parsed.stem if parsed is not None else None
