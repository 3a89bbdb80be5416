"""The safetensors JSON header, parsed as strictly as the reference library parses it.

The library deserialises the header with serde_json into typed Rust structs; Python's `json`
is more lenient in a few places, each closed here so that paramio accepts exactly the headers
the library accepts (the tests compare both on generated files):

- ``NaN``/``Infinity`` and numbers outside f64's range are not JSON to serde: refused.
- ``-0`` and integers beyond u64 are floats to serde, so not valid sizes: refused.
- lone UTF-16 surrogates in ``\\u`` escapes: refused (serde refuses them in every string).
- nesting of 128 levels or more (serde's recursion limit): refused.
- a tensor's ``dtype``, ``shape`` and ``data_offsets`` are required and may not repeat; other
  fields are ignored. ``__metadata__`` may not repeat and maps strings to strings (or is null).
- a tensor key that repeats is not an error: the last definition wins, as in the library.
"""

from __future__ import annotations

import functools
import math
from itertools import chain, filterfalse
from operator import itemgetter

from paramio.core import jsontext  # `json.loads` without importing json
from paramio.core.errors import FormatError, UnsupportedFormatError
from paramio.core.records import Record
from paramio.formats.safetensors.layout import (
    _BY_CODE,
    HEADER_LENGTH_SIZE,
    MAX_JSON_DEPTH,
    USIZE_MAX,
    StDType,
    by_code,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    import re
    from typing import Any

    _SURROGATE: re.Pattern[str]
    _SURROGATE_ESCAPE: re.Pattern[str]
    _NEGATIVE_ZERO: re.Pattern[str]

__all__ = ["Header", "HeaderColumns", "TensorRecord", "parse_columns", "parse_header"]

_METADATA_KEY = "__metadata__"
_REQUIRED = ("dtype", "shape", "data_offsets")
#: The patterns the checks use, compiled (and `re` imported) on first use: a header without a
#: ``\u`` escape or a ``-0`` (every header a writer produces) needs none of them.
_PATTERNS = {
    "_SURROGATE": "[\ud800-\udfff]",
    "_SURROGATE_ESCAPE": r"\\u[dD][89a-fA-F]",
    #: ``-0`` as an integer, which serde reads as a float: such a text takes the exact parse.
    "_NEGATIVE_ZERO": r"-0(?![.0-9eE])",
}


@functools.cache
def _pattern(name: str) -> re.Pattern[str]:
    import re

    return re.compile(_PATTERNS[name])


def __getattr__(name: str) -> object:
    if name in _PATTERNS:  # the compiled patterns by their names, as they were module constants
        return _pattern(name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _has_surrogate_escape(text: str) -> bool:
    return "\\u" in text and _pattern("_SURROGATE_ESCAPE").search(text) is not None


def _has_negative_zero(text: str) -> bool:
    return "-0" in text and _pattern("_NEGATIVE_ZERO").search(text) is not None


#: Integers from this magnitude (19 digits) may lie outside i64/u64, where serde reads floats.
_LONG_INT = 10**18
_I64_MIN = -(1 << 63)


class _Pairs(list[tuple[str, object]]):
    """A JSON object as its (key, value) pairs in document order, duplicates kept."""


_is_list = list.__instancecheck__  # a JSON array or object (`_Pairs`)
_is_pairs = _Pairs.__instancecheck__
_is_int = int.__instancecheck__
_STR_ONLY = frozenset((str,))
_LIST_ONLY = frozenset((list,))
_PAIRS_ONLY = frozenset((_Pairs,))
_THREE = {3}
_TWO = {2}
_CODES = frozenset(_BY_CODE)
_INT_ONLY = frozenset((int,))
_first = itemgetter(0)
_second = itemgetter(1)
_third = itemgetter(2)


class TensorRecord(Record):
    """One tensor as the header describes it; offsets are relative to the data buffer."""

    __slots__ = ("key", "dtype", "shape", "begin", "end")
    __match_args__ = __slots__
    key: str
    dtype: StDType
    shape: tuple[int, ...]
    begin: int
    end: int

    def __init__(self, key: str, dtype: StDType, shape: tuple[int, ...], begin: int, end: int) -> None:
        object.__setattr__(self, "key", key)
        object.__setattr__(self, "dtype", dtype)
        object.__setattr__(self, "shape", shape)
        object.__setattr__(self, "begin", begin)
        object.__setattr__(self, "end", end)


class Header(Record):
    """A parsed header: tensors in document order (a repeated key keeps its first position and
    its last definition) and ``__metadata__`` (None when absent or null)."""

    __slots__ = ("tensors", "metadata")
    __match_args__ = __slots__
    tensors: list[TensorRecord]
    metadata: dict[str, str] | None

    def __init__(self, tensors: list[TensorRecord], metadata: dict[str, str] | None) -> None:
        object.__setattr__(self, "tensors", tensors)
        object.__setattr__(self, "metadata", metadata)


class HeaderColumns:
    """A header that passed every check, by column: tensor ``i`` is ``keys[i]`` of ``dtypes[i]``
    and shape ``shapes[i]`` at ``offsets[i]`` (``[begin, end]``), in document order."""

    __slots__ = ("dtypes", "keys", "metadata", "offsets", "shapes")

    def __init__(
        self,
        keys: list[str],
        dtypes: list[StDType],
        shapes: list[list[int]],
        offsets: list[list[int]],
        metadata: dict[str, str] | None,
    ) -> None:
        self.keys = keys
        self.dtypes = dtypes
        self.shapes = shapes
        self.offsets = offsets
        self.metadata = metadata

    def header(self) -> Header:
        """The same header as records."""
        return Header(
            [
                TensorRecord(k, d, tuple(s), o[0], o[1])
                for k, d, s, o in zip(self.keys, self.dtypes, self.shapes, self.offsets, strict=True)
            ],
            self.metadata,
        )


class _Reject(ValueError):
    pass


def _parse_int(text: str) -> int | float:
    # serde_json reads "-0" and integers outside i64/u64 as f64; a size field then refuses them.
    if text == "-0":
        return -0.0
    if len(text) <= 24:
        value = int(text)
        if _I64_MIN <= value <= USIZE_MAX:
            return value
    return _parse_float(text)


def _parse_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise _Reject(f"number out of range: {text[:40]}")
    return value


def _parse_constant(text: str) -> float:
    raise _Reject(f"{text} is not JSON")


def parse_header(raw: bytes | memoryview, *, path: str) -> Header:
    """Parse header bytes (the ``N`` bytes after the length). Raises `FormatError` naming `path`
    and the file offset of the fault; `UnsupportedFormatError` for an unknown dtype code.

    The reference parse: every number read as serde reads it, every value walked, every tensor
    checked in document order. `parse_columns` is the same decision, faster."""
    text = _text(raw, path)
    doc = _exact_tree(text, path)
    _check_strings_and_depth(doc, text, path)
    if not isinstance(doc, _Pairs):
        raise FormatError(f"header must be a JSON object, not {_kind(doc)}", path=path, offset=HEADER_LENGTH_SIZE)
    return _interpret(doc, path)


def parse_columns(raw: bytes | memoryview, *, path: str) -> Header | HeaderColumns:
    """`parse_header`'s decision (the same header, or the same error), giving a header with
    nothing unusual in it as `HeaderColumns` (no record per tensor yet: the reader checks and
    lists those columns as they are). Integers are parsed by `int` in C unless serde could
    read one otherwise (`_checked_native`); a header in the form writers produce is checked
    on whole columns (`_canonical_columns`, `_plain_header`); anything else as the reference."""
    text = _text(raw, path)
    doc: object = None
    if not _has_surrogate_escape(text) and not _has_negative_zero(text):
        doc = _native_tree(text)
        if type(doc) is _Pairs:
            canonical = _canonical_columns(doc)
            if canonical is not None:  # depth 3 and integers in range: nothing left to check
                return canonical
        doc = _checked_native(doc, text, path) if doc is not None else None
    if doc is None:
        doc = _exact_tree(text, path)
        _check_strings_and_depth(doc, text, path)
    if not isinstance(doc, _Pairs):
        raise FormatError(f"header must be a JSON object, not {_kind(doc)}", path=path, offset=HEADER_LENGTH_SIZE)
    plain = _plain_header(doc)
    return plain if plain is not None else _interpret(doc, path)


def _text(raw: bytes | memoryview, path: str) -> str:
    try:
        return bytes(raw).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FormatError(
            f"header is not valid UTF-8 ({exc.reason})", path=path, offset=HEADER_LENGTH_SIZE + exc.start
        ) from exc


def _exact_tree(text: str, path: str) -> object:
    """The parsed header, every number read as serde reads it (`_parse_int`)."""
    try:
        return jsontext.loads(
            text,
            object_pairs_hook=_Pairs,
            parse_int=_parse_int,
            parse_float=_parse_float,
            parse_constant=_parse_constant,
        )
    except jsontext.JSONDecodeError as exc:  # (asked for, and json imported, only on an error)
        offset = HEADER_LENGTH_SIZE + len(text[: exc.pos].encode("utf-8", "surrogatepass"))
        raise FormatError(f"header is not valid JSON: {exc.msg}", path=path, offset=offset) from exc
    except RecursionError as exc:
        raise _too_deep(path) from exc
    except ValueError as exc:
        raise FormatError(f"header is not valid JSON: {exc}", path=path, offset=HEADER_LENGTH_SIZE) from exc


def _native_tree(text: str) -> object | None:
    """The parsed header with integers read by `int` in C (a third of the parse), or None when
    the parse fails (the exact parse then names the fault)."""
    try:
        doc: object = jsontext.loads(
            text, object_pairs_hook=_Pairs, parse_float=_parse_float, parse_constant=_parse_constant
        )
    except (ValueError, RecursionError):
        return None
    return doc


def _checked_native(doc: object, text: str, path: str) -> object | None:
    """`doc` (from `_native_tree`) after the depth check, or None when an integer may read
    otherwise in serde (19 digits or more: the exact parse decides)."""
    try:
        plain = _check_depth(doc, path)
    except FormatError:
        _exact_tree(text, path)  # a number serde refuses is named first, as it parses first
        raise
    return doc if plain else None


def _check_strings_and_depth(doc: object, text: str, path: str) -> None:
    """Refuse what serde refuses after Python's parser took it: deep nesting, lone surrogates.

    Surrogates are looked for only when a ``\\uD8xx``-style escape occurs in the text at all
    (`_check_walk`); without one, only the depth is checked, a level at a time (`_check_depth`).
    """
    if _has_surrogate_escape(text):
        _check_walk(doc, path)
    else:
        _check_depth(doc, path)


def _too_deep(path: str) -> FormatError:
    return FormatError(
        f"header JSON nests deeper than {MAX_JSON_DEPTH - 1} levels", path=path, offset=HEADER_LENGTH_SIZE
    )


def _check_depth(doc: object, path: str) -> bool:
    """Refuse nesting of `MAX_JSON_DEPTH` levels or more, one level of the tree at a time with
    C-level filters and chains (no Python code per value: a canonical header of 1,000 tensors
    is 4 levels and some 8,000 values). False when an integer reaches `_LONG_INT`."""
    level: list[Any] = [doc]  # JSON values
    depth = 1
    while True:
        if max(map(abs, filter(_is_int, level)), default=0) >= _LONG_INT:
            return False
        containers = list(filter(_is_list, level))  # objects (`_Pairs`) and arrays
        if not containers:
            return True
        if depth >= MAX_JSON_DEPTH:
            raise _too_deep(path)
        objects = list(filter(_is_pairs, containers))
        level = list(map(_second, chain.from_iterable(objects)))
        if len(objects) != len(containers):
            level.extend(chain.from_iterable(filterfalse(_is_pairs, containers)))
        depth += 1


def _check_walk(doc: object, path: str) -> None:
    """`_check_strings_and_depth` for a text with surrogate-like escapes: one iterative walk of
    the parsed tree, so time and memory follow the number of values. (A regex over the text
    that skipped strings kept a backtracking frame per character: a 20 MB ``__metadata__``
    string took 2.7 GB.)"""
    stack: list[tuple[object, int]] = [(doc, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, list):  # _Pairs is a list too: an object
            if depth >= MAX_JSON_DEPTH:
                raise _too_deep(path)
            if isinstance(value, _Pairs):
                for k, v in value:
                    if _pattern("_SURROGATE").search(k):
                        raise FormatError(f"header holds a lone UTF-16 surrogate in {k!r}", path=path)
                    stack.append((v, depth + 1))
            else:
                stack.extend((v, depth + 1) for v in value)
        elif isinstance(value, str) and _pattern("_SURROGATE").search(value):
            raise FormatError(f"header holds a lone UTF-16 surrogate in {value!r}", path=path)


def _kind(value: object) -> str:
    if isinstance(value, _Pairs):
        return "an object"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if value is None:
        return "null"
    if isinstance(value, float):
        return f"the floating-point number {value!r}"
    return f"the integer {value!r}"


def _interpret(doc: _Pairs, path: str) -> Header:
    """The header `doc` describes, every check tensor by tensor in document order (which names
    the first fault): the reference `_plain_header` agrees with where it gives a header."""
    tensors: dict[str, TensorRecord] = {}
    metadata: dict[str, str] | None = None
    seen_metadata = False
    for key, value in doc:
        if key == _METADATA_KEY:
            if seen_metadata:
                raise FormatError("header repeats '__metadata__'", path=path, offset=HEADER_LENGTH_SIZE)
            seen_metadata = True
            metadata = _metadata(value, path)
            continue
        tensors[key] = _tensor(key, value, path)
    return Header(list(tensors.values()), metadata)


def _canonical_columns(doc: _Pairs) -> HeaderColumns | None:
    """`_plain_header` for the form writers produce (``__metadata__``, if any, first; every
    tensor exactly ``dtype``, ``shape``, ``data_offsets`` in that order; no key repeated),
    checked with C-level maps over whole columns. Such a tree nests 3 deep and, once its
    integers are known to lie in 0..2**64-1, reads alike however its integers were parsed.
    None for anything else (`_plain_header` and `_interpret` decide)."""
    metadata: dict[str, str] | None = None
    tensors: list[tuple[str, object]] = doc
    if doc and doc[0][0] == _METADATA_KEY:
        value = doc[0][1]
        if value is not None:
            if type(value) is not _Pairs:
                return None
            metadata = dict(value)  # type: ignore[arg-type]  # (checked next) a repeated key: the last value
            if not _STR_ONLY.issuperset(map(type, metadata.values())):
                return None
        tensors = doc[1:]
    n = len(tensors)
    keys: list[str] = list(map(_first, tensors))
    values = list(map(_second, tensors))
    if not n:
        return HeaderColumns([], [], [], [], metadata)
    if not _PAIRS_ONLY.issuperset(map(type, values)) or set(map(len, values)) != _THREE:
        return None
    if len(set(keys)) != n or _METADATA_KEY in keys:
        return None
    pairs = list(chain.from_iterable(values))
    if list(map(_first, pairs)) != list(_REQUIRED) * n:
        return None
    fields = list(map(_second, pairs))
    codes, shapes, offsets = fields[0::3], fields[1::3], fields[2::3]
    if not _STR_ONLY.issuperset(map(type, codes)) or not _CODES.issuperset(codes):
        return None
    if not _LIST_ONLY.issuperset(map(type, shapes)) or not _LIST_ONLY.issuperset(map(type, offsets)):
        return None
    if set(map(len, offsets)) != _TWO:
        return None
    numbers = list(chain(chain.from_iterable(shapes), chain.from_iterable(offsets)))
    if not _INT_ONLY.issuperset(map(type, numbers)) or (numbers and not 0 <= min(numbers) <= max(numbers) <= USIZE_MAX):
        return None
    return HeaderColumns(keys, list(map(_BY_CODE.__getitem__, codes)), shapes, offsets, metadata)


def _plain_header(doc: _Pairs) -> HeaderColumns | None:
    """`_interpret`'s result, as columns, for a header that passes every check, with the checks
    made on whole columns where they can be (the integers of every shape and offset pair at
    once); None when anything is unusual (a repeated field, a missing one, a value of the wrong
    kind), for `_interpret`'s own loop to name."""
    tensors: dict[str, tuple[StDType, list[int], list[int]]] = {}
    metadata: dict[str, str] | None = None
    seen_metadata = False
    sizes: list[list[int]] = []  # every shape and data_offsets, repeated keys' included
    append = sizes.append
    for key, value in doc:
        if type(value) is not _Pairs:
            if key == _METADATA_KEY and value is None and not seen_metadata:
                seen_metadata = True
                continue
            return None
        fields = dict(value)
        if key == _METADATA_KEY:
            if seen_metadata or not _STR_ONLY.issuperset(map(type, fields.values())):
                return None
            seen_metadata = True
            metadata = fields  # type: ignore[assignment]
            continue
        if len(fields) != len(value):  # a field repeats (perhaps one the library ignores)
            return None
        code, shape, offsets = fields.get("dtype"), fields.get("shape"), fields.get("data_offsets")
        dtype = _BY_CODE.get(code) if type(code) is str else None
        if dtype is None or type(shape) is not list or type(offsets) is not list or len(offsets) != 2:
            return None
        append(shape)
        append(offsets)
        tensors[key] = (dtype, shape, offsets)  # a repeated key: first place, last value
    numbers = list(chain.from_iterable(sizes))
    if not _INT_ONLY.issuperset(map(type, numbers)) or (numbers and not 0 <= min(numbers) <= max(numbers) <= USIZE_MAX):
        return None
    rows = tensors.values()
    return HeaderColumns(
        list(tensors), list(map(_first, rows)), list(map(_second, rows)), list(map(_third, rows)), metadata
    )


def _metadata(value: object, path: str) -> dict[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, _Pairs):
        raise FormatError(f"'__metadata__' must be an object of strings, not {_kind(value)}", path=path)
    out: dict[str, str] = {}
    for k, v in value:
        if not isinstance(v, str):
            raise FormatError(f"'__metadata__' value for {k!r} must be a string, not {_kind(v)}", path=path)
        out[k] = v  # a repeated key: the last value wins, as in the library
    return out


def _tensor(key: str, value: object, path: str) -> TensorRecord:
    if not isinstance(value, _Pairs):
        raise FormatError(f"tensor description must be an object, not {_kind(value)}", path=path, key=key)
    fields: dict[str, object] = {}
    for name, v in value:
        if name in _REQUIRED:
            if name in fields:
                raise FormatError(f"tensor description repeats the field {name!r}", path=path, key=key)
            fields[name] = v
    for name in _REQUIRED:
        if name not in fields:
            raise FormatError(f"tensor description has no {name!r} field", path=path, key=key)
    code = fields["dtype"]
    if not isinstance(code, str):
        raise FormatError(f"dtype must be a string, not {_kind(code)}", path=path, key=key)
    dtype = by_code(code)
    if dtype is None:
        raise UnsupportedFormatError(f"unknown safetensors dtype {code!r}", path=path, key=key)
    shape = _usizes(fields["shape"], "shape", None, key, path)
    offsets = _usizes(fields["data_offsets"], "data_offsets", 2, key, path)
    return TensorRecord(key, dtype, tuple(shape), offsets[0], offsets[1])


def _usizes(value: object, what: str, count: int | None, key: str, path: str) -> list[int]:
    if not isinstance(value, list) or isinstance(value, _Pairs):
        raise FormatError(f"{what} must be an array of integers, not {_kind(value)}", path=path, key=key)
    if count is not None and len(value) != count:
        raise FormatError(f"{what} must hold exactly {count} integers, not {len(value)}", path=path, key=key)
    for v in value:
        if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= USIZE_MAX:
            raise FormatError(f"{what} must hold integers from 0 to 2**64-1, not {_kind(v)}", path=path, key=key)
    return list(value)
