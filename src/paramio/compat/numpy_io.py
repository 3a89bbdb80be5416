"""The NumPy helpers of ``iree/runtime/io.py`` (IREE 3.13), same names, behaviour and messages.

`SplatValue`, `save_archive_file`, `parameter_index_add_numpy_ndarray`,
`parameter_index_entry_as_numpy_flat_ndarray` and `parameter_index_entry_as_numpy_ndarray` work
on paramio's `ParameterIndex` and entries; the error messages are IREE's, word for word, so code
matching them keeps working (tests/iree/test_api_parity.py runs one script against both).

Beyond IREE: `parameter_index_add_numpy_ndarray` and `parameter_index_entry_as_numpy_ndarray`
handle every dtype paramio names (bfloat16, the float8 family, ...), where IREE raises
`KeyError` / `ValueError`; an entry without metadata whose format declares its type (safetensors,
GGUF) is viewed with that type, where IREE refuses it.
"""

from __future__ import annotations

import array
import json
import math
import os
from collections.abc import Mapping, Sequence

import numpy as np

from paramio.core.buffers import Buffer
from paramio.core.dtypes import numpy_dtype
from paramio.core.entry import ParameterEntry
from paramio.core.errors import InvalidArgumentError
from paramio.core.tensor import encode_array_metadata
from paramio.index.index import ParameterIndex

__all__ = [
    "SplatValue",
    "parameter_index_add_numpy_ndarray",
    "parameter_index_entry_as_numpy_flat_ndarray",
    "parameter_index_entry_as_numpy_ndarray",
    "save_archive_file",
]

_PREFIXES = ("TENSORv0", "PYTORCH")  # IREE's own, and the one iree-turbine wrote


class SplatValue:
    """A value repeated `count` times (an int, or a shape whose product is the count), for
    `save_archive_file`. `pattern` must hold exactly one element."""

    def __init__(
        self, pattern: array.array[int] | array.array[float] | np.ndarray | np.generic, count: Sequence[int] | int
    ) -> None:
        if isinstance(pattern, np.ndarray):
            total_elements = math.prod(pattern.shape) if pattern.shape else 1
        elif isinstance(pattern, np.generic):
            total_elements = 1
        else:
            total_elements = len(pattern)
        item_size = pattern.itemsize
        if total_elements != 1:
            raise ValueError("SplatValue requires an array of a single element")
        self.pattern = pattern
        if isinstance(count, int):
            logical_length = count
        elif len(count) == 1:
            logical_length = count[0]
        else:
            logical_length = math.prod(count)
        self.total_length = logical_length * item_size

    def __repr__(self) -> str:
        return f"SplatValue({self.pattern} of {self.total_length})"


def save_archive_file(entries: Mapping[str, Buffer | SplatValue], file_path: str | os.PathLike[str]) -> None:
    """Write an IRPA archive of `entries` (key -> buffer or `SplatValue`, in order), as IREE's
    function does: the same bytes (no metadata is added), written atomically."""
    index = ParameterIndex()
    for key, value in entries.items():
        if isinstance(value, SplatValue):
            index.add_splat(key, value.pattern, value.total_length)  # type: ignore[arg-type]
        else:
            index.add_buffer(key, value, metadata="")  # IREE adds none, even for an ndarray
    index.create_archive_file(str(file_path))


def parameter_index_add_numpy_ndarray(index: ParameterIndex, name: str, array: np.ndarray) -> None:
    """Add `array` under `name` with IREE's ``TENSORv0`` metadata (byte for byte IREE's text for
    the dtypes IREE knows). A 0-d array is copied; others are viewed."""
    metadata = encode_array_metadata(array)
    flat = array.copy() if len(array.shape) == 0 else np.ascontiguousarray(array).view(np.uint8)
    index.add_buffer(name, flat, metadata=metadata)


def parameter_index_entry_as_numpy_flat_ndarray(index_entry: ParameterEntry) -> np.ndarray:
    """The entry's bytes as a flat ``uint8`` array (a view of the file). For a splat, the
    pattern only, as IREE returns it (a 0-d bytes array; use `ParameterEntry.read` for the
    expanded bytes)."""
    if index_entry.is_file:
        return np.asarray(index_entry.file_view)
    if index_entry.is_splat:
        return np.array(index_entry.splat_pattern, copy=True)
    raise ValueError(f"Unsupported ParameterIndexEntry: {index_entry}")


def parameter_index_entry_as_numpy_ndarray(index_entry: ParameterEntry) -> np.ndarray:
    """The entry viewed with the dtype and shape of its ``TENSORv0`` (or ``PYTORCH``) metadata.
    Raises `ValueError` with IREE's messages when the metadata does not say."""
    if not index_entry.metadata and index_entry.declared_tensor is not None:
        return index_entry.to_numpy()  # beyond IREE: the format declares the type
    versioned_metadata = index_entry.metadata.decode()
    metadata_parts = versioned_metadata.split(":", maxsplit=1)
    if len(metadata_parts) == 1:
        raise ValueError(
            f'Invalid metadata for parameter index entry "{index_entry.key}".'
            f' Expected format version prefix not found in "{metadata_parts[0][:100]}".'
        )
    format_version, metadata = metadata_parts
    if format_version not in _PREFIXES:
        # IREE's message, with its missing f-prefix (the key stays a literal placeholder).
        raise ValueError(
            f'Unsupported metadata format version "{format_version}" for parameter '
            'index entry "{index_entry.key}": Cannot convert to tensor'
        )
    d = json.loads(metadata)
    try:
        type_name = d["type"]
        if d["type"] != "Tensor":
            raise ValueError(f"Metadata for parameter entry {index_entry.key} is not a Tensor ('{type_name}')")
        dtype_name = d["dtype"]
        shape = d["shape"]
    except KeyError as e:
        raise ValueError(f"Bad metadata for parameter entry {index_entry.key}") from e
    try:
        dtype = numpy_dtype(dtype_name) if isinstance(dtype_name, str) else None
    except (InvalidArgumentError, KeyError, TypeError):
        dtype = None
    if dtype is None:
        raise ValueError(f"Unsupported dtype for parameter entry {index_entry.key}")
    try:
        dims = [int(n) for n in shape]
    except (ValueError, TypeError) as e:
        raise ValueError(f"Illegal shape for parameter entry {index_entry.key}") from e
    if index_entry.is_splat:  # beyond IREE, which views the pattern alone: the whole value
        return np.frombuffer(index_entry.read(), dtype=np.uint8).view(dtype).reshape(dims)
    t = parameter_index_entry_as_numpy_flat_ndarray(index_entry)
    return t.view(dtype=dtype).reshape(dims)
