"""File formats: one package each (irpa, safetensors, gguf), each declaring one `Format` contract
(`paramio.formats.contract`) that the registry (`paramio.formats.registry`) dispatches to."""

from __future__ import annotations

from typing import TYPE_CHECKING

from paramio.core.exports import attach, exports

if TYPE_CHECKING:
    from paramio.formats.contract import Format, FormatContents, get_format, register_format
    from paramio.formats.registry import FORMATS, detect_format, read_path, write_path

__all__ = [
    "FORMATS",
    "Format",
    "FormatContents",
    "detect_format",
    "get_format",
    "read_path",
    "register_format",
    "write_path",
]

# Imported on first use, so that a light submodule (`paramio.formats.interrupts`, which every
# command imports) does not bring the registry, the index and NumPy with it.
__getattr__ = attach(
    __name__,
    globals(),
    exports(
        ("paramio.formats.contract", ("Format", "FormatContents", "get_format", "register_format")),
        ("paramio.formats.registry", ("FORMATS", "detect_format", "read_path", "write_path")),
    ),
)
