"""How deeply parsed JSON nests, measured without recursion.

Python's `json` recurses in C for both decoding and encoding and raises `RecursionError` near
1,000 levels: a hostile attributes entry nested deeper fails to load, and one just under the
limit loads but then fails every later `json.dumps` (a conversion, ``dump --json``). Readers
therefore refuse JSON nested deeper than `MAX_JSON_DEPTH`, the limit serde_json applies to a
safetensors header (the reference library refuses 128 levels), so whatever paramio accepts it
can also write back.
"""

from __future__ import annotations

__all__ = ["MAX_JSON_DEPTH", "json_depth"]

#: serde_json's recursion limit, as `paramio.formats.safetensors.layout.MAX_JSON_DEPTH`.
MAX_JSON_DEPTH = 128


def json_depth(doc: object, limit: int = MAX_JSON_DEPTH) -> int:
    """Depth of containers in `doc` (a scalar is 0, ``[]`` is 1), counting no further than
    `limit` + 1: time is linear in the values visited, memory in the widest level."""
    deepest = 0
    stack: list[tuple[object, int]] = [(doc, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            children: object = value.values()
        elif isinstance(value, (list, tuple)):
            children = value
        else:
            continue
        if depth > deepest:
            deepest = depth
            if deepest > limit:
                return deepest
        stack.extend((v, depth + 1) for v in children)  # type: ignore[attr-defined]
    return deepest
