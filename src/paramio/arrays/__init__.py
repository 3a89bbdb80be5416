"""Array adapters: element types, typed-tensor metadata, and views in each framework."""

from __future__ import annotations

from typing import TYPE_CHECKING

from paramio._lazy import attach, exports

if TYPE_CHECKING:
    from paramio.arrays.dtypes import DType, dtype_by_name, dtype_of_numpy, numpy_dtype
    from paramio.arrays.metadata import TensorInfo, decode_tensor_metadata, encode_tensor_metadata

__all__ = [
    "DType",
    "TensorInfo",
    "decode_tensor_metadata",
    "dtype_by_name",
    "dtype_of_numpy",
    "encode_tensor_metadata",
    "numpy_dtype",
]

# Imported on first use (`paramio._lazy`).
__getattr__ = attach(
    __name__,
    globals(),
    exports(
        ("paramio.arrays.dtypes", ("DType", "dtype_by_name", "dtype_of_numpy", "numpy_dtype")),
        ("paramio.arrays.metadata", ("TensorInfo", "decode_tensor_metadata", "encode_tensor_metadata")),
    ),
)
