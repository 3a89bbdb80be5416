"""File formats: one package each (irpa, safetensors, gguf), each declaring one `Format` contract
(`paramio.formats.contract`) that the registry (`paramio.formats.registry`) dispatches to."""

from __future__ import annotations

from paramio.core.exports import attach, typed_exports

TYPE_CHECKING = False  # `typing.TYPE_CHECKING` without importing typing (start-up: see paramio/__init__.py)
if TYPE_CHECKING:
    from paramio.formats.contract import Format, FormatContents, get_format, register_format
    from paramio.formats.registry import FORMATS, detect_format, read_path, write_path

#: The public names: the imports above, read once (`paramio.core.exports.typed_exports`).
_LAZY = typed_exports(__file__)
__all__ = sorted(_LAZY)

# Imported on first use, so that a light submodule (`paramio.formats.interrupts`, which every
# command imports) does not bring the registry, the index and NumPy with it.
__getattr__ = attach(__name__, globals(), _LAZY)
