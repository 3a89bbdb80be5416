"""Fixtures of the guide's doc tests: a fresh folder per page holding the files the pages start from."""

from __future__ import annotations

from pathlib import Path

import pytest
from guide_inputs import PAGE_INPUTS, make_inputs


@pytest.fixture
def page_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> Path:
    """A tmp folder with model.safetensors and model.gguf (or the page's own inputs), made the
    working directory."""
    pytest.importorskip("gguf", reason="the guide's inputs are written by gguf-py")
    pytest.importorskip("safetensors", reason="the guide's inputs are written by the safetensors library")
    make_inputs(tmp_path)
    callspec = getattr(request.node, "callspec", None)
    page = callspec.params.get("page") if callspec is not None else None
    if page is not None and page.name in PAGE_INPUTS:
        PAGE_INPUTS[page.name](tmp_path)
    monkeypatch.chdir(tmp_path)
    return tmp_path
