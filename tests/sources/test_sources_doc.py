"""docs/sources.md: its worked example runs, and the source it builds passes the conformance suite."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "sources.md"


def _blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)


def _example_namespace() -> dict[str, Any]:
    ns: dict[str, Any] = {"__name__": "sources_doc_example"}
    blocks = _blocks()
    exec(compile(blocks[1], str(DOC), "exec"), ns)  # the KV source: its asserts run here
    exec(compile(blocks[2], str(DOC), "exec"), ns)
    return ns


_NS = _example_namespace()


class TestKVSourceFromTheDocs(_NS["TestKVSource"]):  # type: ignore[misc]
    """The page's conformance test class, collected by pytest."""


def test_the_page_has_the_example() -> None:
    assert len(_blocks()) == 3
    assert "register_scheme" in _blocks()[1]


def test_kv_sibling_refuses_escape() -> None:
    src = _NS["open_source"]("kv://models/a.bin")
    with pytest.raises(_NS["SourceError"]):
        src.sibling("../a.bin")
