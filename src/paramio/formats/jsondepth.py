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
    `limit` + 1: time is linear in the values visited, memory in the widest level.

    A level at a time: the containers of one level are picked out with one comprehension and
    their values gathered with `list.extend` (a converted file's record holds a value per
    tensor: 1,000 values cost ~0.1 ms, where a stack of (value, depth) pairs cost ~0.7)."""
    depth = 0
    level: list[object] = [doc]
    while True:
        containers = [v for v in level if isinstance(v, (dict, list, tuple))]
        if not containers:
            return depth
        depth += 1
        if depth > limit:
            return depth
        level = []
        for c in containers:
            level.extend(c.values() if isinstance(c, dict) else c)
