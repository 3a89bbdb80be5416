"""Fixtures of the guide's doc tests: a fresh folder per page holding the files the pages start from."""

from __future__ import annotations

from pathlib import Path

import pytest
from guide_inputs import make_inputs


@pytest.fixture
def page_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A tmp folder with model.safetensors and model.gguf, made the working directory."""
    pytest.importorskip("gguf", reason="the guide's inputs are written by gguf-py")
    pytest.importorskip("safetensors", reason="the guide's inputs are written by the safetensors library")
    make_inputs(tmp_path)
    monkeypatch.chdir(tmp_path)
    return tmp_path
