"""Quantised GGUF tensors as float32, through the gguf package's reference NumPy kernels.

ggml's block formats (Q4_K, IQ2_XXS ...) are many and change upstream; paramio keeps their sizes in
its own table but leaves decoding to ``gguf.quants`` (optional extra ``gguf``), imported only here.
"""

from __future__ import annotations

from paramio.core.entry import ParameterEntry
from paramio.core.errors import InvalidArgumentError, UnsupportedFormatError, import_extra
from paramio.formats.gguf.constants import GGML_BY_NAME

TYPE_CHECKING = False  # `typing` is not imported to read a file (mypy reads this as typing's)
if TYPE_CHECKING:  # imported when a tensor is decoded: reading a file needs no NumPy
    import numpy as np

__all__ = ["dequantize"]


def dequantize(entry: ParameterEntry) -> np.ndarray:
    """`entry` as a float32 array of its logical shape.

    Plain types are converted with NumPy; quantised ones need ``pip install paramio[gguf]``.
    Raises `InvalidArgumentError` for an entry that is not a GGUF-typed tensor,
    `UnsupportedFormatError` when gguf is missing or has no kernel for the type.
    """
    import numpy as np

    info = entry.tensor
    gtype = GGML_BY_NAME.get(info.dtype) if info is not None else None
    if info is None or gtype is None:
        raise InvalidArgumentError(f"not a GGUF tensor type: {info.dtype if info else 'untyped'}", key=entry.key)
    if not gtype.quantized:
        return np.asarray(entry.to_numpy(), dtype=np.float32)
    quants = import_extra("gguf.quants", "gguf", what=f"dequantising {gtype.name} needs the gguf package")
    constants = import_extra("gguf.constants", "gguf")
    GGMLQuantizationType, gguf_dequantize = constants.GGMLQuantizationType, quants.dequantize  # noqa: N806
    shape = info.shape or (1,)
    byte_shape = (*shape[:-1], shape[-1] // gtype.block_size * gtype.type_size)
    raw = np.frombuffer(entry.read() if entry.is_splat else entry.memoryview(), dtype=np.uint8).reshape(byte_shape)
    try:
        out = gguf_dequantize(raw, GGMLQuantizationType(gtype.id))
    except (NotImplementedError, ValueError, KeyError) as exc:
        raise UnsupportedFormatError(f"gguf cannot dequantise {gtype.name}: {exc}", key=entry.key) from exc
    return np.asarray(out, dtype=np.float32).reshape(info.shape)
