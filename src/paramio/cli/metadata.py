"""File-level metadata for ``paramio dump``: each format's own (`Format.file_metadata`: GGUF
key/values, safetensors ``__metadata__``), then any other attribute as JSON.

What ``gguf-dump`` shows first, and what was reachable only from Python as
``ParameterIndex.attributes``. Long arrays (a 150k-token vocabulary) are cut to their first
`items` elements unless ``items=0``, in text and JSON alike, so a listing stays readable and a
JSON document small.
"""

from __future__ import annotations

from paramio.cli.dump_flags import DEFAULT_ITEMS
from paramio.formats.text import escape

TYPE_CHECKING = False  # `typing.TYPE_CHECKING` without importing typing (start-up: see paramio/__init__.py)
if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["DEFAULT_ITEMS", "format_metadata", "metadata_record"]


def _cut(values: list[object], items: int) -> tuple[list[object], int]:
    """The first `items` values (all when 0) and how many were left out."""
    if items <= 0 or len(values) <= items:
        return values, 0
    return values[:items], len(values) - items


def _json_value(value: object, items: int) -> object:
    """A value for the JSON document: long lists become ``{"count", "head", "truncated"}``."""
    if isinstance(value, list):
        head, rest = _cut(value, items)
        shown = [_json_value(v, items) for v in head]
        return {"count": len(value), "head": shown, "truncated": True} if rest else shown
    if isinstance(value, dict):
        return {str(k): _json_value(v, items) for k, v in value.items()}
    return value


def metadata_record(attributes: Mapping[str, object], items: int = DEFAULT_ITEMS) -> dict[str, object]:
    """A scope's attributes as dump's JSON carries them (arrays summarised past `items`)."""
    return {str(k): _json_value(v, items) for k, v in attributes.items()}


def _text_scalar(value: object) -> str:
    if isinstance(value, str):
        return "'" + escape(value) + "'"
    if isinstance(value, dict) and "hex" in value:
        return f"<bytes {escape(str(value['hex']))}>"
    if isinstance(value, dict) and "value" in value:  # a nested array record
        return _text_array(value.get("value"), DEFAULT_ITEMS)
    import json  # here: a listing without --metadata (an IRPA file's, say) needs no JSON

    return escape(json.dumps(value, ensure_ascii=False, default=str))


def _text_array(values: object, items: int) -> str:
    if not isinstance(values, list):
        return _text_scalar(values)
    head, rest = _cut(values, items)
    body = ", ".join(_text_scalar(v) for v in head)
    return f"[{body}{', ...' if rest else ''}]"


def _metadata_lines(kv: Mapping[str, object], items: int) -> list[str]:
    """One line per key; a typed record (``{"type": ..., "value": ...}``) shows its type."""
    lines = []
    for key, record in kv.items():
        name = escape(str(key))
        if isinstance(record, dict) and record.get("type") == "array":
            values = record.get("value")
            count = len(values) if isinstance(values, list) else 0
            kind = f"array[{record.get('item_type', '?')}]"
            lines.append(f"{name}: {kind} ({count} items) = {_text_array(values, items)}")
        elif isinstance(record, dict) and "type" in record:
            lines.append(f"{name}: {record['type']} = {_text_scalar(record.get('value'))}")
        else:  # untyped, as a writer may have been given it
            lines.append(f"{name} = {_text_scalar(record)}")
    return lines


def format_metadata(scope: str, attributes: Mapping[str, object], items: int = DEFAULT_ITEMS) -> str:
    """The text block for one scope: a heading line, then one line per key (or nothing when
    the scope's files carry no file-level metadata)."""
    if not attributes:
        return ""
    import json

    from paramio.formats.contract import format_for_attribute  # not at ``dump --help``

    label = "<global>" if scope == "" else f"`{escape(scope)}`"
    lines: list[str] = []
    for attr, value in attributes.items():
        fmt = format_for_attribute(attr) if isinstance(value, dict) else None
        if fmt is not None and fmt.file_metadata is not None and isinstance(value, dict):
            meta = fmt.file_metadata
            lines.append(f"// {meta.title} of scope {label} ({len(value)} {meta.unit})")
            lines += _metadata_lines(value, items)
        else:
            lines.append(f"// attribute `{escape(str(attr))}` of scope {label}")
            shown = _json_value(value, items)
            lines.append(escape(json.dumps(shown, ensure_ascii=False, default=str)))
    return "\n".join(lines) + "\n\n"
