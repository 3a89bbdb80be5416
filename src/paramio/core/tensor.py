"""Typed-tensor metadata in IRPA entries: the convention IREE and turbine already use.

IRPA stores bytes. IREE's Python runtime (``parameter_index_add_numpy_ndarray``) records the
dtype and shape in an entry's metadata as ``TENSORv0:`` followed by JSON::

    TENSORv0:{"type": "Tensor", "dtype": "float32", "shape": [2, 3],
              "dtype_desc": {"class_name": "Float32DType", "is_complex": false,
                             "is_floating_point": true, "is_signed": false, "itemsize": 4}}

iree-turbine and sharktank write the same JSON behind ``PYTORCH:``. paramio writes ``TENSORv0``
byte for byte as IREE does (default `json.dumps` separators) and reads both, so typed archives
travel between the three. Extra JSON keys are kept: paramio adds ``"paramio"`` for facts the
convention has no field for (a GGUF quantisation type, say), which IREE ignores.
"""

from __future__ import annotations

from paramio.core.dtypes import dtype_by_name, numpy_dtype
from paramio.core.errors import InvalidArgumentError
from paramio.core.records import Record

TYPE_CHECKING = False
if TYPE_CHECKING:  # NumPy is not imported to read or list a file
    from collections.abc import Mapping

    import numpy as np

__all__ = ["TensorInfo", "decode_tensor_metadata", "encode_tensor_metadata", "is_numpy_shape"]

TENSOR_PREFIX = "TENSORv0"
TURBINE_PREFIX = "PYTORCH"
_PREFIXES = (TENSOR_PREFIX, TURBINE_PREFIX)
#: TENSORv0 records a NumPy array's shape (``parameter_index_add_numpy_ndarray`` writes
#: ``ndarray.shape``), so a shape NumPy cannot hold is not tensor metadata: NumPy 2 allows 64
#: dimensions (NPY_MAXDIMS) and at most 2**63-1 elements (its sizes are ``npy_intp``). The
#: bounds also keep the work linear: 40,000 huge dimensions multiplied out took 54 s.
MAX_TENSOR_DIMS = 64
_MAX_ELEMENTS = (1 << 63) - 1


class TensorInfo(Record):
    """The logical type of an entry: element type name and shape.

    `dtype` is a paramio dtype name (see `paramio.core.dtypes`) or a format-specific name for
    types NumPy cannot view (``gguf.q4_k``); `extra` holds format facts that ride along (a new
    empty dict when not given). An immutable value (`paramio.core.records.Record`): equal and
    hashed by its fields (a hash needs a hashable `extra`), changed copies by `replace`.
    """

    __slots__ = ("dtype", "shape", "extra")
    __match_args__ = __slots__
    dtype: str
    shape: tuple[int, ...]
    extra: Mapping[str, object]

    def __init__(self, dtype: str, shape: tuple[int, ...], extra: Mapping[str, object] | None = None) -> None:
        # Made once per entry by the readers: the slots' own setters store past the guard against
        # assignment at the cost of a plain store (0.6x the frozen dataclass's constructor).
        _set_dtype(self, dtype)
        _set_shape(self, shape)
        _set_extra(self, {} if extra is None else extra)

    @property
    def count(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n

    def nbytes(self) -> int | None:
        """Storage bytes implied by dtype and shape, or None if the dtype is not in the table."""
        try:
            return dtype_by_name(self.dtype).nbytes(self.count)
        except InvalidArgumentError:
            return None


_set_dtype, _set_shape, _set_extra = (TensorInfo.__dict__[name].__set__ for name in TensorInfo.__slots__)


def _dtype_desc(name: str) -> dict[str, object]:
    d = dtype_by_name(name)
    nd = numpy_dtype(name)
    return {
        "class_name": type(nd).__name__,
        "is_complex": d.is_complex,
        "is_floating_point": d.is_floating_point,
        "is_signed": d.is_signed_integer,
        "itemsize": nd.itemsize,
    }


def encode_tensor_metadata(info: TensorInfo, *, prefix: str = TENSOR_PREFIX) -> bytes:
    """Metadata bytes for `info`, identical to IREE's for the dtypes IREE knows."""
    body: dict[str, object] = {
        "type": "Tensor",
        "dtype": info.dtype,
        "shape": [int(s) for s in info.shape],
    }
    try:
        body["dtype_desc"] = _dtype_desc(info.dtype)
    except (InvalidArgumentError, AttributeError):
        pass
    if info.extra:
        body["paramio"] = dict(info.extra)
    import json

    return f"{prefix}:{json.dumps(body)}".encode()


def encode_array_metadata(array: np.ndarray) -> bytes:
    """`TENSORv0` metadata for a NumPy array, as ``parameter_index_add_numpy_ndarray`` writes it."""
    from paramio.core.dtypes import dtype_of_numpy

    return encode_tensor_metadata(TensorInfo(dtype_of_numpy(array.dtype).name, tuple(array.shape)))


def is_numpy_shape(shape: object) -> bool:
    """Whether `shape` (a list) is one a NumPy array can have (see `MAX_TENSOR_DIMS`): what a
    shape read from a file (a TENSORv0 record, a manifest) must be before any arithmetic on it."""
    return isinstance(shape, list) and _numpy_shape(shape)


def _numpy_shape(shape: list[object]) -> bool:
    """Whether `shape` is one a NumPy array can have: at most 64 non-negative ints whose
    product fits in int64 (checked factor by factor, so never a huge product)."""
    if len(shape) > MAX_TENSOR_DIMS:
        return False
    n = 1
    for s in shape:
        if not isinstance(s, int) or isinstance(s, bool) or not 0 <= s <= _MAX_ELEMENTS:
            return False
        if s and n > _MAX_ELEMENTS // s:
            return False
        n *= s
    return True


def decode_tensor_metadata(metadata: bytes) -> TensorInfo | None:
    """The `TensorInfo` in `metadata`, or None when it is not tensor metadata.

    Never raises on foreign or malformed metadata: an entry with metadata paramio does not
    understand is simply untyped (bytes).
    """
    if not metadata:
        return None
    head, sep, rest = bytes(metadata).partition(b":")
    if not sep:
        return None
    try:
        prefix = head.decode("ascii")
    except UnicodeDecodeError:
        return None
    if prefix not in _PREFIXES:
        return None
    from paramio.core.jsontext import loads  # `json.loads` without importing json (and re)

    try:
        body = loads(rest)
    except (ValueError, RecursionError):
        return None
    if not isinstance(body, dict) or body.get("type") != "Tensor":
        return None
    dtype = body.get("dtype")
    shape = body.get("shape")
    if not isinstance(dtype, str) or not isinstance(shape, list):
        return None
    if not _numpy_shape(shape):
        return None
    extra = body.get("paramio")
    return TensorInfo(dtype, tuple(shape), dict(extra) if isinstance(extra, dict) else {})
