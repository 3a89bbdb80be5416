"""File formats: one package each (irpa, safetensors, gguf), all reached through the registry."""

from __future__ import annotations

from typing import TYPE_CHECKING

from paramio.core.exports import attach, exports

if TYPE_CHECKING:
    from paramio.formats.registry import FORMATS, FormatContents, detect_format, read_path, write_path

__all__ = ["FORMATS", "FormatContents", "detect_format", "read_path", "write_path"]

# Imported on first use, so that a light submodule (`paramio.formats.interrupts`, which every
# command imports) does not bring the registry, the index and NumPy with it.
__getattr__ = attach(__name__, globals(), exports(("paramio.formats.registry", __all__)))
