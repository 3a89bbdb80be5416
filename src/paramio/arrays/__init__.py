"""Array adapters: element types, typed-tensor metadata, and views in each framework."""

from __future__ import annotations

from typing import TYPE_CHECKING

from paramio.core.exports import attach, exports

if TYPE_CHECKING:
    from paramio.core.dtypes import DType, dtype_by_name, dtype_of_numpy, numpy_dtype
    from paramio.core.tensor import TensorInfo, decode_tensor_metadata, encode_tensor_metadata

__all__ = [
    "DType",
    "TensorInfo",
    "decode_tensor_metadata",
    "dtype_by_name",
    "dtype_of_numpy",
    "encode_tensor_metadata",
    "numpy_dtype",
]

# Imported on first use (`paramio.core.exports`).
__getattr__ = attach(
    __name__,
    globals(),
    exports(
        ("paramio.core.dtypes", ("DType", "dtype_by_name", "dtype_of_numpy", "numpy_dtype")),
        ("paramio.core.tensor", ("TensorInfo", "decode_tensor_metadata", "encode_tensor_metadata")),
    ),
)
