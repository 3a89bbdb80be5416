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

import json
import math
import re

from paramio.core.errors import FormatError, UnsupportedFormatError
from paramio.core.records import Record
from paramio.formats.safetensors.layout import (
    HEADER_LENGTH_SIZE,
    MAX_JSON_DEPTH,
    USIZE_MAX,
    StDType,
    by_code,
)

__all__ = ["Header", "TensorRecord", "parse_header"]

_METADATA_KEY = "__metadata__"
_REQUIRED = ("dtype", "shape", "data_offsets")
_SURROGATE = re.compile("[\ud800-\udfff]")
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_I64_MIN = -(1 << 63)


class _Pairs(list[tuple[str, object]]):
    """A JSON object as its (key, value) pairs in document order, duplicates kept."""


class TensorRecord(Record):
    """One tensor as the header describes it; offsets are relative to the data buffer."""

    __slots__ = ("key", "dtype", "shape", "begin", "end")
    __match_args__ = ("key", "dtype", "shape", "begin", "end")
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
    __match_args__ = ("tensors", "metadata")
    tensors: list[TensorRecord]
    metadata: dict[str, str] | None

    def __init__(self, tensors: list[TensorRecord], metadata: dict[str, str] | None) -> None:
        object.__setattr__(self, "tensors", tensors)
        object.__setattr__(self, "metadata", metadata)


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
    and the file offset of the fault; `UnsupportedFormatError` for an unknown dtype code."""
    try:
        text = bytes(raw).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FormatError(
            f"header is not valid UTF-8 ({exc.reason})", path=path, offset=HEADER_LENGTH_SIZE + exc.start
        ) from exc
    try:
        doc = json.loads(
            text,
            object_pairs_hook=_Pairs,
            parse_int=_parse_int,
            parse_float=_parse_float,
            parse_constant=_parse_constant,
        )
    except json.JSONDecodeError as exc:
        offset = HEADER_LENGTH_SIZE + len(text[: exc.pos].encode("utf-8", "surrogatepass"))
        raise FormatError(f"header is not valid JSON: {exc.msg}", path=path, offset=offset) from exc
    except RecursionError as exc:
        raise FormatError(
            f"header JSON nests deeper than {MAX_JSON_DEPTH - 1} levels", path=path, offset=HEADER_LENGTH_SIZE
        ) from exc
    except ValueError as exc:
        raise FormatError(f"header is not valid JSON: {exc}", path=path, offset=HEADER_LENGTH_SIZE) from exc
    _check_strings_and_depth(doc, text, path)
    if not isinstance(doc, _Pairs):
        raise FormatError(f"header must be a JSON object, not {_kind(doc)}", path=path, offset=HEADER_LENGTH_SIZE)
    return _interpret(doc, path)


def _check_strings_and_depth(doc: object, text: str, path: str) -> None:
    """Refuse what serde refuses after Python's parser took it: deep nesting, lone surrogates.

    One iterative walk of the parsed tree, so time and memory follow the number of values.
    (A regex over the text that skipped strings kept a backtracking frame per character: a
    20 MB ``__metadata__`` string took 2.7 GB.) Surrogates are looked for only when a
    ``\\uD8xx``-style escape occurs in the text at all.
    """
    surrogates = _SURROGATE_ESCAPE.search(text) is not None
    stack: list[tuple[object, int]] = [(doc, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, list):  # _Pairs is a list too: an object
            if depth >= MAX_JSON_DEPTH:
                raise FormatError(
                    f"header JSON nests deeper than {MAX_JSON_DEPTH - 1} levels", path=path, offset=HEADER_LENGTH_SIZE
                )
            if isinstance(value, _Pairs):
                for k, v in value:
                    if surrogates and _SURROGATE.search(k):
                        raise FormatError(f"header holds a lone UTF-16 surrogate in {k!r}", path=path)
                    stack.append((v, depth + 1))
            else:
                stack.extend((v, depth + 1) for v in value)
        elif surrogates and isinstance(value, str) and _SURROGATE.search(value):
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
