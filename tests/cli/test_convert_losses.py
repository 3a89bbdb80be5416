"""``paramio convert`` says what the output format drops, one line each; --on-loss decides."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from paramio.formats.registry import read_path


def test_losses_are_one_line_warnings(
    tmp_path: Path, paramio_cli: Callable[..., tuple[int, str, str]], make_archive
) -> None:
    src, out = tmp_path / "a.irpa", tmp_path / "a.gguf"
    make_archive(src, w=np.arange(4, dtype=np.uint8), splats={"s": (np.float32(0.5), 16)})
    code, _, err = paramio_cli("convert", f"--parameters={src}", f"--output={out}", "--quiet")
    assert code == 0
    assert err.splitlines() == [
        f"paramio convert: warning: {out}: entry 'w': uint8[4] stored as I8[4] "
        "(GGUF has no type code for it; paramio reads the type back)",
        f"paramio convert: warning: {out}: entry 's': splat of 16 bytes (pattern 0000003f) written as data "
        "(GGUF has no splat entries; the bytes are the same)",
    ]
    w, s = read_path(out).entries
    assert (w.dtype, s.read()) == ("uint8", np.full(4, 0.5, np.float32).tobytes())


def test_on_loss_error_and_ignore(
    tmp_path: Path, paramio_cli: Callable[..., tuple[int, str, str]], make_archive
) -> None:
    src, out = tmp_path / "a.irpa", tmp_path / "a.safetensors"
    make_archive(src, w=np.arange(4, dtype=np.uint8), splats={"s": (np.float32(0.5), 16)})
    code, _, err = paramio_cli("convert", f"--parameters={src}", f"--output={out}", "--on-loss=error")
    assert code == 1
    assert "safetensors cannot hold everything given (1 losses; on_loss='error'): entry 's': splat" in err
    assert err.rstrip().endswith("nothing was written")
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["a.irpa"]
    code, _, err = paramio_cli("convert", f"--parameters={src}", f"--output={out}", "--on-loss=ignore", "--quiet")
    assert (code, err) == (0, "")
    assert out.exists()
    code, _, err = paramio_cli("convert", f"--parameters={src}", f"--output={out}", "--on-loss=maybe")
    assert code == 2 and "--on_loss=maybe: expected warn, error or ignore" in err


def test_lossless_conversion_is_silent(
    tmp_path: Path, paramio_cli: Callable[..., tuple[int, str, str]], make_archive
) -> None:
    src, out = tmp_path / "a.irpa", tmp_path / "b.irpa"
    make_archive(src, w=np.arange(4, dtype=np.uint8), splats={"s": (np.float32(0.5), 16)})
    code, _, err = paramio_cli("convert", f"--parameters={src}", f"--output={out}", "--quiet", "--on-loss=error")
    assert (code, err) == (0, "")
