"""The one shape of every command's ``--json`` output: one object, ``version`` first.

A script reads ``doc["version"]`` before anything else and can rely on it for every command
(docs/cli.md, "JSON schemas"); a version changes only when a field changes meaning or goes away.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False  # `typing.TYPE_CHECKING` without importing typing (start-up: see paramio/__init__.py)
if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["JSON_SCHEMA_VERSION", "json_text", "print_json"]

#: The schema version every command's ``--json`` document carries.
JSON_SCHEMA_VERSION = 1


def json_text(doc: Mapping[str, object], *, indent: int = 2) -> str:
    """`doc` as one JSON object whose first field is ``version``, with a final newline."""
    import json  # here: the modules naming `JSON_SCHEMA_VERSION` are imported without --json too

    out = {"version": JSON_SCHEMA_VERSION, **{k: v for k, v in doc.items() if k != "version"}}
    return json.dumps(out, indent=indent, default=str) + "\n"


def print_json(doc: Mapping[str, object], *, indent: int = 2) -> None:
    """Write `doc` to standard output as `json_text` gives it."""
    sys.stdout.write(json_text(doc, indent=indent))
