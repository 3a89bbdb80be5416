"""`json.loads` of text, without importing `json`.

Reading a file meets JSON in a few places (a converted file's carried record, an IRPA attributes
record, a typed entry's ``TENSORv0`` metadata); the `json` package imports `re` and its compiler
on the way (~2.5 ms of a ~30 ms ``paramio dump`` process). `loads` is `json.loads` for `str`
input through the same C scanner (`_json.make_scanner`) with the same defaults, and raises the
same `json.JSONDecodeError` (importing `json` only then); `bytes` are decoded as `json.loads`
decodes them (UTF-8 unless a BOM or NUL bytes say otherwise, which `json.loads` itself handles).
An interpreter without CPython's `_json` accelerator gets `json.loads` itself.
"""

from __future__ import annotations

try:
    import _json

    _HAS_SCANNER = True
except ImportError:  # not CPython (or built without it): `loads` is `json.loads`
    _HAS_SCANNER = False

TYPE_CHECKING = False  # `typing.TYPE_CHECKING` without importing typing (start-up: see paramio/__init__.py)
if TYPE_CHECKING:
    from collections.abc import Callable
    from json import JSONDecodeError as JSONDecodeError
    from typing import Any

__all__ = ["JSONDecodeError", "loads"]

#: What `json.decoder.WHITESPACE` matches between and around values.
_WHITESPACE = " \t\n\r"
_CONSTANTS = {"-Infinity": float("-inf"), "Infinity": float("inf"), "NaN": float("nan")}


class _Defaults:
    """The attributes `_json.make_scanner` reads from a `json.JSONDecoder`, at their defaults."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = _CONSTANTS.__getitem__
    memo: dict[object, object] = {}


_scan = _json.make_scanner(_Defaults()) if _HAS_SCANNER else None  # type: ignore[arg-type]  # typeshed wants a JSONDecoder-like scanner; any object with these attributes serves


def _scanner(
    object_pairs_hook: Callable[[list[tuple[str, Any]]], object] | None,
    parse_int: Callable[[str], object] | None,
    parse_float: Callable[[str], object] | None,
    parse_constant: Callable[[str], object] | None,
) -> Callable[[str, int], tuple[object, int]]:
    """A scanner with the hooks `json.JSONDecoder` would be given (each None: its default)."""
    if (
        _scan is not None
        and object_pairs_hook is None
        and parse_int is None
        and parse_float is None
        and parse_constant is None
    ):
        return _scan
    context = _Defaults()
    context.object_pairs_hook = object_pairs_hook  # type: ignore[assignment]
    context.parse_int = parse_int or int  # type: ignore[assignment]
    context.parse_float = parse_float or float  # type: ignore[assignment]
    context.parse_constant = parse_constant or _CONSTANTS.__getitem__  # type: ignore[assignment]
    scan: Callable[[str, int], tuple[object, int]] = _json.make_scanner(context)  # type: ignore[arg-type]
    return scan


def _json_loads(
    text: str | bytes | bytearray,
    object_pairs_hook: Callable[[list[tuple[str, Any]]], object] | None,
    parse_int: Callable[[str], object] | None,
    parse_float: Callable[[str], object] | None,
    parse_constant: Callable[[str], object] | None,
) -> object:
    import json

    return json.loads(
        text,
        object_pairs_hook=object_pairs_hook,
        parse_int=parse_int,
        parse_float=parse_float,
        parse_constant=parse_constant,
    )


def _error(message: str, text: str, position: int) -> ValueError:
    from json import JSONDecodeError

    return JSONDecodeError(message, text, position)


def __getattr__(name: str) -> object:
    """`JSONDecodeError`, `json`'s own class, imported when first asked for: an ``except
    jsontext.JSONDecodeError:`` clause asks only once an exception is raised."""
    if name == "JSONDecodeError":
        from json import JSONDecodeError

        return JSONDecodeError
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def loads(
    text: str | bytes | bytearray,
    *,
    object_pairs_hook: Callable[[list[tuple[str, Any]]], object] | None = None,
    parse_int: Callable[[str], object] | None = None,
    parse_float: Callable[[str], object] | None = None,
    parse_constant: Callable[[str], object] | None = None,
) -> object:
    """``json.loads(text, ...)``: the same values, and the same `json.JSONDecodeError` (a
    `ValueError`) or `RecursionError` for what it refuses; the hooks as `json.loads` takes them."""
    hooks = (object_pairs_hook, parse_int, parse_float, parse_constant)
    if not isinstance(text, str):
        if _HAS_SCANNER and len(text) >= 2 and 0 < text[0] < 0x80 and text[1]:
            # What `json.detect_encoding` calls UTF-8: no BOM (each starts with 0xEF, 0xFE, 0xFF
            # or 0), no NUL among the first bytes (UTF-16/32); decoded as `json.loads` does.
            text = text.decode("utf-8", "surrogatepass")
        else:
            return _json_loads(text, *hooks)
    if not _HAS_SCANNER:
        return _json_loads(text, *hooks)
    if text.startswith("\ufeff"):
        raise _error("Unexpected UTF-8 BOM (decode using utf-8-sig)", text, 0)
    start = len(text) - len(text.lstrip(_WHITESPACE))
    try:
        value, end = _scanner(*hooks)(text, start)
    except StopIteration as exc:
        raise _error("Expecting value", text, exc.value) from None
    rest = text[end:]
    end += len(rest) - len(rest.lstrip(_WHITESPACE))
    if end != len(text):
        raise _error("Extra data", text, end)
    return value
