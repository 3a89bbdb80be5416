"""`paramio.formats.jsondepth.json_depth`: the depth of parsed JSON, without recursion, stopping
one level past the limit (the readers refuse records nested deeper than `MAX_JSON_DEPTH`)."""

from __future__ import annotations

import json
import random

import pytest

from paramio.formats.jsondepth import MAX_JSON_DEPTH, json_depth


def _recursive_depth(doc: object) -> int:
    """The definition, written recursively (for shallow documents only)."""
    if isinstance(doc, dict):
        return 1 + max(map(_recursive_depth, doc.values()), default=0)
    if isinstance(doc, (list, tuple)):
        return 1 + max(map(_recursive_depth, doc), default=0)
    return 0


@pytest.mark.parametrize(
    ("doc", "depth"),
    [(1, 0), ("x", 0), (None, 0), ([], 1), ({}, 1), ((), 1), ([[]], 2), ({"a": {"b": [1]}}, 3), ([1, [2, [3]], {}], 3)],
)
def test_known_depths(doc: object, depth: int) -> None:
    assert json_depth(doc) == depth


def test_random_documents_match_the_definition() -> None:
    rnd = random.Random(11)

    def gen(level: int) -> object:
        kind = rnd.randrange(5 if level < 10 else 2)
        if kind < 2:
            return rnd.choice([1, "x", None, 2.5])
        if kind == 2:
            return [gen(level + 1) for _ in range(rnd.randrange(4))]
        if kind == 3:
            return tuple(gen(level + 1) for _ in range(rnd.randrange(3)))
        return {str(i): gen(level + 1) for i in range(rnd.randrange(4))}

    for _ in range(2000):
        doc = gen(0)
        full = _recursive_depth(doc)
        assert json_depth(doc) == full
        for limit in range(full + 1):
            assert json_depth(doc, limit) == min(full, limit + 1)


def test_a_deep_document_is_measured_without_recursion() -> None:
    levels = 100_000  # far past Python's recursion limit
    doc = json.loads("[" * 500 + "]" * 500)
    assert json_depth(doc, limit=levels) == 500
    deep: list[object] = []
    cur = deep
    for _ in range(levels):
        nxt: list[object] = []
        cur.append(nxt)
        cur = nxt
    assert json_depth(deep) == MAX_JSON_DEPTH + 1
    assert json_depth(deep, limit=levels + 5) == levels + 1
