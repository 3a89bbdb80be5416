"""Array adapters: element types, typed-tensor metadata, and views in each framework."""

from __future__ import annotations

from typing import TYPE_CHECKING

from paramio.core.exports import attach, typed_exports

if TYPE_CHECKING:
    from paramio.core.dtypes import DType, dtype_by_name, dtype_of_numpy, numpy_dtype
    from paramio.core.tensor import TensorInfo, decode_tensor_metadata, encode_tensor_metadata

#: The public names: the imports above, read once (`paramio.core.exports.typed_exports`).
_LAZY = typed_exports(__file__)
__all__ = sorted(_LAZY)

# Imported on first use (`paramio.core.exports`).
__getattr__ = attach(__name__, globals(), _LAZY)
