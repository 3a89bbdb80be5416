"""Fixtures of the guide's doc tests: a fresh empty folder per page, made the working directory,
holding only what the guide's first step (``paramio example --make_inputs=.``) writes."""

from __future__ import annotations

from pathlib import Path

import pytest
from guide_inputs import make_inputs


@pytest.fixture
def page_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A new empty folder after only the guide's first step, made the working directory."""
    folder = tmp_path / "reader"
    folder.mkdir()
    make_inputs(folder)
    monkeypatch.chdir(folder)
    return folder
