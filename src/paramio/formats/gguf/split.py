"""Split GGUF sets (``model-00001-of-00003.gguf`` ...): what GGUF adds to `paramio.formats.sets`.

Each member carries ``split.no`` (u16, 0-based), ``split.count`` (u16) and ``split.tensors.count``
(i32, the total over all members); llama.cpp's ``gguf-split`` and gguf-py's writer put every
other key in the first member only. There is no manifest: a member states its own place, and
`paramio.formats.sets` checks those keys against the file names and each other as it reads the
members in order. paramio writes no save stamp into the members (its splits are byte for byte
gguf-py's), so unlike IRPA and safetensors sets a GGUF split re-saved while it is being opened
is not detected; a stamp (``paramio.set``) found in members is checked all the same.
"""

from __future__ import annotations

from collections.abc import Mapping

from paramio.core.errors import FormatError
from paramio.core.source import ByteSource
from paramio.formats.contract import FormatContents, SetLayout
from paramio.formats.gguf.constants import ATTRIBUTES_KEY, SPLIT_COUNT, SPLIT_KEYS, SPLIT_NO, SPLIT_TENSORS_COUNT
from paramio.formats.sets import STAMP_KEY
from paramio.sources.paths import AllowExternal

__all__ = ["LAYOUT", "split_info", "without_split_keys"]


def _int_kv(kv: Mapping[str, object], key: str, path: str) -> int | None:
    record = kv.get(key)
    if record is None:
        return None
    value = record.get("value") if isinstance(record, dict) else None
    kind = record.get("type") if isinstance(record, dict) else None
    if kind == "array" or not isinstance(value, int) or isinstance(value, bool):
        raise FormatError(f"{key} must be an integer, not {kind}", path=path, key=key)
    return value


def split_info(kv: Mapping[str, object], path: str) -> tuple[int, int, int] | None:
    """(split.no, split.count, split.tensors.count) when the file belongs to a set of 2 or more."""
    count = _int_kv(kv, SPLIT_COUNT, path)
    if count is None or count <= 1:
        return None
    no = _int_kv(kv, SPLIT_NO, path)
    total = _int_kv(kv, SPLIT_TENSORS_COUNT, path)
    if no is None or total is None:
        missing = SPLIT_NO if no is None else SPLIT_TENSORS_COUNT
        raise FormatError(f"split file has {SPLIT_COUNT}={count} but no {missing}", path=path, key=missing)
    if not 0 <= no < count:
        raise FormatError(f"{SPLIT_NO}={no} is outside 0..{count - 1}", path=path, key=SPLIT_NO)
    return no, count, total


def without_split_keys(kv: dict[str, object]) -> dict[str, object]:
    return {k: v for k, v in kv.items() if k not in SPLIT_KEYS}


def _kv(attributes: Mapping[str, object]) -> dict[str, object]:
    kv = attributes.get(ATTRIBUTES_KEY)
    return kv if isinstance(kv, dict) else {}


def _read_member(
    source: ByteSource, path: str, *, writable: bool = False, allow_external: AllowExternal = None, strict: bool = False
) -> FormatContents:
    from paramio.formats.gguf.reader import read_gguf

    f = read_gguf(source, strict=strict)
    return FormatContents(f.entries, {ATTRIBUTES_KEY: f.kv}, [path])


def _claim(contents: FormatContents, path: str) -> tuple[int, int, object] | None:
    return split_info(_kv(contents.attributes), path)


def _take_stamp(attributes: dict[str, object]) -> str | None:
    kv = _kv(attributes)
    record = kv.get(STAMP_KEY)
    value = record.get("value") if isinstance(record, dict) else None
    if not isinstance(value, str):
        return None
    del kv[STAMP_KEY]
    return value


def _join_attributes(members: list[dict[str, object]], manifest: dict[str, object] | None) -> dict[str, object]:
    return {ATTRIBUTES_KEY: without_split_keys(_kv(members[0]))} if members else {}


LAYOUT = SetLayout(
    member_suffix=".gguf",
    manifest_suffix=None,
    read_member=_read_member,
    put_stamp=None,
    take_stamp=_take_stamp,
    claim=_claim,
    join_attributes=_join_attributes,
)
