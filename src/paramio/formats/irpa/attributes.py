"""File-level attributes (GGUF key/values, safetensors ``__metadata__``) inside an IRPA archive.

IRPA has no place for them, so they travel as one data entry under a reserved key holding JSON,
the way sharktank stores ``__SHARK_DATASET__``. IREE sees an ordinary byte entry; paramio's reader
takes it out of the entry list and back into `ParameterIndex.attributes`. Values must be
JSON-serialisable; formats that need exact types (GGUF's u8 vs i32) encode them themselves.
"""

from __future__ import annotations

import json

from paramio.errors import FormatError, InvalidArgumentError
from paramio.index.entry import ParameterEntry
from paramio.sources.memory import MemorySource

ATTRIBUTES_KEY = "__paramio_attributes__"
_VERSION = 1


def attributes_entry(attributes: dict[str, object]) -> ParameterEntry:
    try:
        blob = json.dumps({"paramio_attributes": _VERSION, "attributes": attributes}, sort_keys=False).encode()
    except (TypeError, ValueError) as exc:
        raise InvalidArgumentError(f"attributes are not JSON-serialisable: {exc}") from exc
    return ParameterEntry.data(ATTRIBUTES_KEY, MemorySource(blob, name="<attributes>"), 0, len(blob))


def split_attributes(entries: list[ParameterEntry]) -> tuple[list[ParameterEntry], dict[str, object]]:
    """Entries without the attributes entry, and the attributes it held (empty if none)."""
    for i, e in enumerate(entries):
        if e.key == ATTRIBUTES_KEY and not e.is_splat:
            try:
                body = json.loads(e.read())
            except (ValueError, UnicodeDecodeError) as exc:
                raise FormatError(f"attributes entry is not valid JSON: {exc}", path=e.source.name if e.source else None, key=e.key) from exc
            if not isinstance(body, dict) or not isinstance(body.get("attributes"), dict):
                raise FormatError("attributes entry has no 'attributes' object", key=e.key)
            return entries[:i] + entries[i + 1 :], dict(body["attributes"])
    return entries, {}
