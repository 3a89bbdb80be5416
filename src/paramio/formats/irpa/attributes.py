"""File-level attributes (GGUF key/values, safetensors ``__metadata__``) inside an IRPA archive.

IRPA has no place for them, so paramio writes them as the metadata of one SKIP entry named
``__paramio_attributes__``, last in the table: IREE's parser resolves a SKIP entry's name and
metadata (so they must be in bounds, and are) and then drops the entry, so IREE's tools and
runtime see exactly the model's entries. paramio's reader takes the record back into
`ParameterIndex.attributes`. Values must be JSON-serialisable; formats that need exact types
(GGUF's u8 vs i32) encode them themselves.

Earlier paramio versions wrote the same record as a DATA entry under that name, which IREE
listed as a parameter; the reader still takes such an entry as attributes, but only when the
archive has no SKIP record and the entry's bytes are exactly paramio's record (the JSON object
with its ``"paramio_attributes"`` version): a user's tensor that happens to have the reserved
name stays a tensor. A writer given such a tensor adds a SKIP record (empty if need be), so the
file says unambiguously which is which.
"""

from __future__ import annotations

from paramio.core.entry import ParameterEntry
from paramio.core.errors import InvalidArgumentError
from paramio.formats.jsondepth import MAX_JSON_DEPTH, json_depth

__all__ = ["ATTRIBUTES_KEY", "decode_record", "encode_record", "split_legacy_attributes"]

ATTRIBUTES_KEY = "__paramio_attributes__"
_VERSION = 1


def encode_record(attributes: dict[str, object]) -> bytes:
    """The metadata bytes of the SKIP entry holding `attributes`."""
    import json  # here: an archive without a record is read without `json`

    try:
        return json.dumps({"paramio_attributes": _VERSION, "attributes": attributes}, sort_keys=False).encode()
    except (TypeError, ValueError, RecursionError) as exc:
        raise InvalidArgumentError(f"attributes are not JSON-serialisable: {exc}") from exc


def decode_record(blob: bytes) -> dict[str, object] | None:
    """The attributes in `blob` if it is paramio's record, else None (left alone: it is data
    or another tool's SKIP entry)."""
    if not blob.startswith(b"{"):
        return None
    from paramio.core.jsontext import loads  # `json.loads` without importing json (and re)

    try:
        body = loads(blob)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    if not isinstance(body, dict) or body.get("paramio_attributes") != _VERSION:
        return None
    if json_depth(body) > MAX_JSON_DEPTH:  # what loads at 900 levels fails every later json.dumps
        return None
    attributes = body.get("attributes")
    return dict(attributes) if isinstance(attributes, dict) else None


def split_legacy_attributes(entries: list[ParameterEntry]) -> tuple[list[ParameterEntry], dict[str, object] | None]:
    """Entries without an old-style attributes DATA entry, and its attributes (None if none).

    Only the first entry under `ATTRIBUTES_KEY` whose bytes are paramio's record counts; the
    record is small, so an entry larger than 64 MiB is not read to find out.
    """
    for i, e in enumerate(entries):
        if e.key == ATTRIBUTES_KEY and not e.is_splat and e.length <= (64 << 20):
            attributes = decode_record(e.read())
            if attributes is not None:
                return entries[:i] + entries[i + 1 :], attributes
    return entries, None
