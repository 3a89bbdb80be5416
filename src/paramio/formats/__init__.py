"""File formats: one package each (irpa, safetensors, gguf), all reached through the registry."""

from __future__ import annotations

from paramio.formats.registry import FORMATS, FormatContents, detect_format, read_path, write_path

__all__ = ["FORMATS", "FormatContents", "detect_format", "read_path", "write_path"]
