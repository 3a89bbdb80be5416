"""The site builds with ``mkdocs build --strict`` (every link, anchor and nav entry resolved, the
API reference generated from the docstrings), offline: no page loads fonts or analytics from the web."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_the_site_builds_strict_and_offline(tmp_path: Path) -> None:
    pytest.importorskip("mkdocs", reason="the docs extra builds the site: pip install 'paramio[docs]'")
    pytest.importorskip("material", reason="the site uses mkdocs-material: pip install 'paramio[docs]'")
    pytest.importorskip("mkdocstrings", reason="the API reference uses mkdocstrings: pip install 'paramio[docs]'")
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "mkdocs",
            "build",
            "--strict",
            "-f",
            str(ROOT / "mkdocs.yml"),
            "-d",
            str(tmp_path / "site"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert r.returncode == 0, r.stderr
    site = tmp_path / "site"
    api = (site / "api" / "index.html").read_text()
    assert "create_archive_file" in api and "ParameterNotFoundError" in api  # generated, not empty
    for html in site.rglob("*.html"):
        text = html.read_text()
        assert "fonts.googleapis.com" not in text and "googletagmanager" not in text, html
