"""GGUF metadata values <-> JSON-serialisable typed records, so a writer reproduces them exactly.

A key/value pair is kept in `FormatContents.attributes["gguf.kv"]` as::

    "general.alignment": {"type": "u32", "value": 32}
    "general.name":      {"type": "string", "value": "tiny"}
    "tokenizer.scores":  {"type": "array", "item_type": "f32", "value": [0.0, -1.5]}
    "nested":            {"type": "array", "item_type": "array",
                          "value": [{"item_type": "u8", "value": [1, 2]}, ...]}

Strings that are not valid UTF-8 (GGUF says they must be, but files in the wild break it) are
kept as ``{"hex": "ff00..."}`` in place of the text, so their bytes survive a round trip through
IRPA's JSON attributes. Values may also be given untyped (``"general.name": "tiny"``); the writer
then infers a type as gguf-py does (int -> i32 or i64, float -> f32).

Repeated keys. Files written by older gguf-py versions repeat a key (``general.architecture``
twice: the writer's constructor and ``add_architecture`` both add it). IREE loads them, gguf-py
0.19 refuses them. paramio reads them with a `FormatWarning` naming the key and both offsets
(`read_kv_table`; ``strict=True`` refuses them), and a lookup gives the **last** value: what
IREE's parser does with ``general.alignment`` (so data offsets agree with IREE's) and what the
old gguf-py reader's field dict did. Every pair is kept, in file order: the record of a repeated
key is the last one plus ``"occurrences"``, each pair of the key with ``"at"``, its position
among all the file's pairs; the dict's order is that of first occurrences. `kv_pairs` expands
the table back into file order, so a writer reproduces the file byte for byte::

    "general.architecture": {"type": "string", "value": "generic", "occurrences": [
        {"at": 0, "type": "string", "value": "generic"},
        {"at": 1, "type": "string", "value": "generic"}]}
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence

from paramio.core.errors import FormatError, FormatWarning, InvalidArgumentError, warn_caller
from paramio.formats.cursor import Cursor
from paramio.formats.gguf.constants import (
    INT_RANGES,
    SCALAR_FORMATS,
    VALUE_TYPE_BY_LABEL,
    ValueType,
)

__all__ = ["OCCURRENCES", "encode_kv", "kv_pairs", "read_kv", "read_kv_table", "typed_value"]

#: Nesting deeper than this is refused: real files nest at most once, and recursion must stay bounded.
#: (ggml's own reader, ``gguf_init_from_file_impl`` in gguf.cpp, refuses any array of arrays as
#: an "invalid GGUF type"; gguf-py reads them to any depth.)
MAX_DEPTH = 32
#: Arrays inside arrays, counted over one value: each costs 12 bytes in the file but a dict and a
#: list here (about 250 bytes) and some 8 µs to decode, so a million empty ones made a 12 MB file
#: take 354 MB and 4 s. No model file has any (llama.cpp cannot load one); 4,096 keeps a value
#: within ~1 MB and a few milliseconds.
MAX_NESTED_ARRAYS = 1 << 12
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
#: The field of a repeated key's record listing every pair of that key (see the module docstring).
OCCURRENCES = "occurrences"


# -- reading --------------------------------------------------------------------------------


def read_string(cur: Cursor, what: str) -> bytes:
    n = cur.u64(f"{what} length")
    return bytes(cur.take(n, what))


def _text(raw: bytes) -> str | dict[str, str]:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return {"hex": raw.hex()}


def _value_type(cur: Cursor, code: int, at: int) -> ValueType:
    try:
        return ValueType(code)
    except ValueError:
        raise cur.error(f"unknown metadata value type {code}", offset=at) from None


def _read_array(cur: Cursor, depth: int, nested: list[int]) -> dict[str, object]:
    """One array; `nested` holds the arrays of arrays this value may still hold."""
    if depth > MAX_DEPTH:
        raise cur.error(f"metadata arrays nested more than {MAX_DEPTH} deep")
    at = cur.pos
    itype = _value_type(cur, cur.u32("array item type"), at)
    count = cur.u64("array count")
    if itype in SCALAR_FORMATS:
        fmt, _ = SCALAR_FORMATS[itype]
        cur.need_count(count, fmt.size, "array")
        raw = cur.take(count * fmt.size, "array")
        # One struct call for the whole array (no NumPy: listing a file does not import it).
        values: list[object] = list(struct.unpack(f"<{count}{fmt.format[-1]}", raw))
    elif itype is ValueType.STRING:
        cur.need_count(count, 8, "string array")
        strings = _read_strings(cur, count)
        values = strings if strings is not None else [_text(read_string(cur, "string")) for _ in range(count)]
    else:  # ARRAY: each item is an item type (4 bytes) and a count (8 bytes) at least
        cur.need_count(count, 12, "nested array")
        nested[0] -= count
        if nested[0] < 0:
            raise cur.error(f"metadata value holds more than {MAX_NESTED_ARRAYS} nested arrays", offset=at)
        values = [_read_array(cur, depth + 1, nested) for _ in range(count)]
    return {"item_type": itype.label, "value": values}


def _read_strings(cur: Cursor, count: int) -> list[object] | None:
    """`count` strings (a tokenizer's vocabulary: often 100,000 or more) read with bare
    `struct` reads; None, with the cursor where it was, if one runs past the end (the caller's
    `read_string` loop then raises the exact error)."""
    buf = cur.buf
    pos = cur.pos
    end = min(cur.end, len(buf))  # a cursor over a file's first bytes may hold less than its bounds
    u64 = _U64.unpack_from
    out: list[object] = [None] * count
    for i in range(count):
        if pos + 8 > end:
            if not _more(cur, pos + 8, end, 8 * (count - i - 1)):
                return None
            buf, end = cur.buf, min(cur.end, len(cur.buf))
        (n,) = u64(buf, pos)
        pos += 8
        if n > end - pos:
            if not _more(cur, pos + n, end, 8 * (count - i - 1)):
                return None
            buf, end = cur.buf, min(cur.end, len(cur.buf))
        try:
            out[i] = str(buf[pos : pos + n], "utf-8")
        except UnicodeDecodeError:
            out[i] = {"hex": bytes(buf[pos : pos + n]).hex()}
        pos += n
    cur.pos = pos
    return out


def _more(cur: Cursor, upto: int, have: int, ahead: int = 0) -> bool:
    """Whether the cursor now holds the bytes up to `upto`: when they lie inside its bounds but
    past the `have` bytes at hand (a cursor over a file's first bytes, which reads more on
    `Cursor.need`), it is asked for them and for `ahead` bytes after them that the array holds
    at the least (8 for each string still to come), so a long vocabulary costs a few reads."""
    if not have < upto <= cur.end:
        return False
    cur.need(min(cur.end, upto + ahead) - cur.pos, "string array")
    return len(cur.buf) >= upto


def read_value(cur: Cursor, vtype: ValueType) -> dict[str, object]:
    """One value of type `vtype` at the cursor as a typed record."""
    if vtype in SCALAR_FORMATS:
        fmt, _ = SCALAR_FORMATS[vtype]
        cur.need(fmt.size, vtype.label)
        (v,) = fmt.unpack_from(cur.buf, cur.pos)
        cur.pos += fmt.size
        return {"type": vtype.label, "value": v}
    if vtype is ValueType.STRING:
        return {"type": "string", "value": _text(read_string(cur, "string value"))}
    arr = _read_array(cur, 1, [MAX_NESTED_ARRAYS])
    return {"type": "array", **arr}


def read_kv(cur: Cursor) -> tuple[str, dict[str, object]]:
    """One key/value pair: the key (UTF-8, undecodable bytes escaped) and its typed record."""
    key = read_string(cur, "metadata key").decode("utf-8", "surrogateescape")
    cur.key = key
    at = cur.pos
    vtype = _value_type(cur, cur.u32("metadata value type"), at)
    record = read_value(cur, vtype)
    cur.key = None
    return key, record


def read_kv_table(cur: Cursor, count: int, *, strict: bool = False) -> dict[str, dict[str, object]]:
    """`count` key/value pairs at the cursor, by key (see the module docstring for repeats).

    A repeated key warns (`FormatWarning`) with the key and both offsets, or with `strict`
    raises `FormatError` at the second one, as gguf-py does.
    """
    kv: dict[str, dict[str, object]] = {}
    first: dict[str, tuple[int, int]] = {}  # key -> (pair index, offset) of its first pair
    for i in range(count):
        at = cur.pos
        key, record = read_kv(cur)
        if key not in kv:
            kv[key] = record
            first[key] = (i, at)
            continue
        index, first_at = first[key]
        if strict:
            raise FormatError(
                f"duplicate metadata key {key!r} (first at offset {first_at:#x}; strict mode refuses repeats)",
                path=cur.path,
                offset=at,
            )
        warn_caller(
            f"{cur.path}: metadata key {key!r} at offset {at:#x} repeats the one at offset "
            f"{first_at:#x}; lookups give the last value (strict mode refuses such files)",
            FormatWarning,
        )
        prev = kv[key]
        occurrences = prev.pop(OCCURRENCES, None)
        if not isinstance(occurrences, list):
            occurrences = [{"at": index, **prev}]
        occurrences.append({"at": i, **record})
        kv[key] = {**record, OCCURRENCES: occurrences}
    return kv


def _occurrences(record: object) -> list[Mapping[str, object]] | None:
    occ = record.get(OCCURRENCES) if isinstance(record, Mapping) else None
    if isinstance(occ, list) and occ and all(isinstance(o, Mapping) for o in occ):
        return occ
    return None


def kv_pairs(kv: Mapping[str, object]) -> list[tuple[str, object]]:
    """The pairs of a key/value table in file order, repeats included (see the module docstring).

    A record without occurrences stands for one pair; occurrences go back to their ``"at"``
    positions when those are distinct and fit, else (an edited table) in place of the key.
    """
    total = sum(len(occ) if (occ := _occurrences(rec)) else 1 for rec in kv.values())
    slots: dict[int, tuple[str, object]] = {}
    single: list[tuple[str, object]] = []
    for k, rec in kv.items():
        occ = _occurrences(rec)
        if occ is None:
            single.append((k, rec))
            continue
        for o in occ:
            at = o.get("at")
            if not isinstance(at, int) or isinstance(at, bool) or not 0 <= at < total or at in slots:
                return [pair for k2, r2 in kv.items() for pair in _in_place(k2, r2)]
            slots[at] = (k, {f: v for f, v in o.items() if f != "at"})
    rest = iter(single)
    return [slots[i] if i in slots else next(rest) for i in range(total)]


def _in_place(key: str, record: object) -> list[tuple[str, object]]:
    occ = _occurrences(record)
    if occ is None:
        return [(key, record)]
    return [(key, {f: v for f, v in o.items() if f != "at"}) for o in occ]


# -- writing --------------------------------------------------------------------------------


def _infer(value: object) -> ValueType:
    if isinstance(value, bool):
        return ValueType.BOOL
    if isinstance(value, int):
        return ValueType.I32 if -(1 << 31) <= value < (1 << 31) else ValueType.I64
    if isinstance(value, float):
        return ValueType.F32
    if isinstance(value, (str, Mapping)):
        return ValueType.STRING
    if isinstance(value, Sequence):
        return ValueType.ARRAY
    raise InvalidArgumentError(f"cannot store a {type(value).__name__} in GGUF metadata")


def _label(label: object, key: str) -> ValueType:
    vt = VALUE_TYPE_BY_LABEL.get(label) if isinstance(label, str) else None
    if vt is None:
        raise InvalidArgumentError(f"unknown GGUF value type {label!r}", key=key)
    return vt


def typed_value(record: object) -> tuple[ValueType, object, ValueType | None]:
    """(type, value, array item type) of a typed record or an untyped value."""
    if isinstance(record, Mapping) and "type" in record and "value" in record:
        vt = _label(record["type"], "")
        item = _label(record["item_type"], "") if vt is ValueType.ARRAY and "item_type" in record else None
        return vt, record["value"], item
    vt = _infer(record)
    return vt, record, None


def _encode_scalar(vt: ValueType, value: object, key: str) -> bytes:
    fmt, _ = SCALAR_FORMATS[vt]
    if vt is ValueType.BOOL:
        if not isinstance(value, bool):
            raise InvalidArgumentError(f"bool value expected, got {value!r}", key=key)
    elif vt in INT_RANGES:
        lo, hi = INT_RANGES[vt]
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            raise InvalidArgumentError(f"{vt.label} value out of range: {value!r}", key=key)
    elif not isinstance(value, (int, float)) or isinstance(value, bool):
        raise InvalidArgumentError(f"{vt.label} value expected, got {value!r}", key=key)
    elif vt is ValueType.F32 and abs(value) > 3.4028234663852886e38:
        import math  # here: only writing a float key asks (reading a file imports no math)

        if math.isfinite(value):
            raise InvalidArgumentError(f"f32 value out of range: {value!r}", key=key)
    return fmt.pack(value)


def _encode_string(value: object, key: str) -> bytes:
    if isinstance(value, str):
        raw = value.encode("utf-8", "surrogateescape")
    elif isinstance(value, Mapping) and isinstance(value.get("hex"), str):
        try:
            raw = bytes.fromhex(value["hex"])
        except ValueError as exc:
            raise InvalidArgumentError(f"bad hex string value: {exc}", key=key) from exc
    else:
        raise InvalidArgumentError(f"string value expected, got {value!r}", key=key)
    return _U64.pack(len(raw)) + raw


def _encode_array(
    items: object, item_type: ValueType | None, key: str, depth: int, nested: list[int] | None = None
) -> bytes:
    """The bytes of one array; `nested` counts the arrays of arrays left, as the reader does."""
    if nested is None:
        nested = [MAX_NESTED_ARRAYS]
    if depth > MAX_DEPTH:
        raise InvalidArgumentError(f"metadata arrays nested more than {MAX_DEPTH} deep", key=key)
    if not isinstance(items, Sequence) or isinstance(items, (str, bytes)):
        raise InvalidArgumentError(f"array value expected, got {items!r}", key=key)
    if item_type is None:
        if not items:
            raise InvalidArgumentError("an untyped empty array has no item type; give item_type", key=key)
        item_type = _infer(items[0])
    out = [_U32.pack(item_type), _U64.pack(len(items))]
    if item_type in SCALAR_FORMATS:
        out.extend(_encode_scalar(item_type, v, key) for v in items)
    elif item_type is ValueType.STRING:
        out.extend(_encode_string(v, key) for v in items)
    else:
        nested[0] -= len(items)
        if nested[0] < 0:  # what the reader refuses: never write it
            raise InvalidArgumentError(f"metadata value holds more than {MAX_NESTED_ARRAYS} nested arrays", key=key)
        for v in items:
            if isinstance(v, Mapping) and "value" in v:
                sub = _label(v["item_type"], key) if "item_type" in v else None
                out.append(_encode_array(v["value"], sub, key, depth + 1, nested))
            else:
                out.append(_encode_array(v, None, key, depth + 1, nested))
    return b"".join(out)


def encode_kv(key: str, record: object) -> bytes:
    """The bytes of one key/value pair. Raises `InvalidArgumentError` for values the type cannot hold."""
    vt, value, item_type = typed_value(record)
    head = _encode_string(key, key) + _U32.pack(vt)
    if vt in SCALAR_FORMATS:
        return head + _encode_scalar(vt, value, key)
    if vt is ValueType.STRING:
        return head + _encode_string(value, key)
    return head + _encode_array(value, item_type, key, 1)
