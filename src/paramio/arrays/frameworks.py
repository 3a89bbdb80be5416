"""Entries as arrays of each framework: NumPy, torch, JAX, CuPy; and arrays back to bytes.

Every adapter has the same shape: ``to_<framework>(entry, *, device=None, copy=False)``. Host
arrays are zero-copy views of the entry's bytes where the framework can wrap foreign memory
(NumPy, torch on CPU); device arrays are one host-to-device copy. Heavy frameworks are imported
only when their adapter runs; a missing one raises `ImportError` naming the extra to install.

`host_bytes` goes the other way: any array-like (NumPy, torch, JAX, CuPy, a buffer) to a
C-contiguous byte view plus its dtype name, which the writers use.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from types import ModuleType
from typing import TYPE_CHECKING

import numpy as np

from paramio.core.dtypes import dtype_of_numpy
from paramio.core.errors import InvalidArgumentError, import_extra

if TYPE_CHECKING:
    from paramio.core.entry import ParameterEntry

__all__ = [
    "FRAMEWORKS",
    "TORCH_DTYPES",
    "host_bytes",
    "require",
    "to_cupy",
    "to_framework",
    "to_jax",
    "to_numpy",
    "to_torch",
    "torch_dtype",
]

#: framework -> (module to import, extra that installs it)
FRAMEWORKS: dict[str, tuple[str, str]] = {
    "numpy": ("numpy", "numpy"),
    "torch": ("torch", "torch"),
    "jax": ("jax", "jax"),
    "cupy": ("cupy", "cupy"),
}

#: paramio dtype name -> torch attribute (types an older torch lacks are skipped at lookup)
TORCH_DTYPES: dict[str, str] = {
    "bool": "bool",
    "int8": "int8",
    "uint8": "uint8",
    "int16": "int16",
    "uint16": "uint16",
    "int32": "int32",
    "uint32": "uint32",
    "int64": "int64",
    "uint64": "uint64",
    "float16": "float16",
    "bfloat16": "bfloat16",
    "float32": "float32",
    "float64": "float64",
    "complex64": "complex64",
    "complex128": "complex128",
    "float8_e4m3fn": "float8_e4m3fn",
    "float8_e5m2": "float8_e5m2",
    "float8_e4m3fnuz": "float8_e4m3fnuz",
    "float8_e5m2fnuz": "float8_e5m2fnuz",
    "float8_e8m0fnu": "float8_e8m0fnu",
}


def require(framework: str) -> ModuleType:
    """Import `framework`, or raise `MissingExtraError` saying which paramio extra installs it."""
    spec = FRAMEWORKS.get(framework)
    if spec is None:
        raise InvalidArgumentError(f"unknown framework {framework!r}; known: {', '.join(FRAMEWORKS)}")
    return import_extra(spec[0], spec[1])


def torch_dtype(name: str) -> object:
    """The ``torch.dtype`` for a paramio dtype name. Raises `InvalidArgumentError` if torch has none."""
    torch = require("torch")
    attr = TORCH_DTYPES.get(name)
    dt = getattr(torch, attr, None) if attr is not None else None
    if dt is None:
        raise InvalidArgumentError(f"dtype {name!r} has no torch equivalent in torch {torch.__version__}")
    return dt


def paramio_dtype_of_torch(dtype: object) -> str:
    """The paramio dtype name of a ``torch.dtype``."""
    torch = require("torch")
    for name, attr in TORCH_DTYPES.items():
        if getattr(torch, attr, None) == dtype:
            return name
    raise InvalidArgumentError(f"torch dtype {dtype} has no paramio equivalent")


def to_numpy(entry: ParameterEntry, *, device: str | None = None, copy: bool = False) -> np.ndarray:
    """The entry as a NumPy array (zero-copy view of a mapped file unless `copy`)."""
    if device not in (None, "cpu"):
        raise InvalidArgumentError(f"NumPy arrays live on the host, not {device!r}", key=entry.key)
    return entry.to_numpy(copy=copy)


def to_torch(entry: ParameterEntry, *, device: str | None = None, copy: bool = False) -> object:
    """The entry as a ``torch.Tensor``, typed and shaped from its metadata (bytes otherwise).

    On the CPU without `copy` the tensor shares the entry's memory (``torch.frombuffer``). A
    tensor over a read-only map must not be written in place: pass ``copy=True`` for one you
    may modify. bf16 and fp8 go through a byte view, so ml_dtypes types never reach torch.
    """
    torch = require("torch")
    arr = entry.to_numpy(copy=copy)
    name = dtype_of_numpy(arr.dtype).name
    flat = np.ascontiguousarray(arr).reshape(-1).view(np.uint8)
    if flat.size == 0:
        t = torch.empty(arr.shape, dtype=torch_dtype(name))
    else:
        with warnings.catch_warnings():
            # A read-only mapping: torch warns that writing would be undefined. We document it.
            warnings.filterwarnings("ignore", message=".*not writable.*")
            raw = torch.frombuffer(flat, dtype=torch.uint8)
        t = raw.view(torch_dtype(name)).reshape(arr.shape)
    if device not in (None, "cpu"):
        t = t.to(device)
    return t


def to_jax(entry: ParameterEntry, *, device: str | None = None, copy: bool = False) -> object:
    """The entry as a ``jax.Array`` (one copy to the default or named device)."""
    jax = require("jax")
    arr = entry.to_numpy(copy=copy)
    dev = None
    if device is not None:
        platform, _, num = device.partition(":")
        dev = jax.devices(platform)[int(num or 0)]
    return jax.device_put(arr, dev)


def to_cupy(entry: ParameterEntry, *, device: str | None = None, copy: bool = False) -> object:
    """The entry as a ``cupy.ndarray`` on the current (or numbered, ``"cuda:1"``) GPU."""
    cupy = require("cupy")
    arr = entry.to_numpy(copy=False)
    if device is not None and ":" in device:
        with cupy.cuda.Device(int(device.partition(":")[2])):
            return cupy.asarray(arr)
    return cupy.asarray(arr)


_ADAPTERS: dict[str, Callable[..., object]] = {
    "numpy": to_numpy,
    "torch": to_torch,
    "jax": to_jax,
    "cupy": to_cupy,
}


def to_framework(entry: ParameterEntry, framework: str, *, device: str | None = None, copy: bool = False) -> object:
    """Dispatch to ``to_<framework>``."""
    fn = _ADAPTERS.get(framework)
    if fn is None:
        raise InvalidArgumentError(f"unknown framework {framework!r}; known: {', '.join(_ADAPTERS)}")
    return fn(entry, device=device, copy=copy)


def host_bytes(array: object) -> tuple[memoryview, str | None]:
    """A C-contiguous host byte view of `array` and its paramio dtype name (None for raw bytes).

    Accepts NumPy arrays, torch tensors (any device; bf16 included), objects with
    ``__dlpack__`` or ``__array__`` (JAX, CuPy), and plain buffers. Copies only when the array
    is not already contiguous host memory.
    """
    mod = type(array).__module__.split(".")[0]
    if mod == "torch":
        t = array.detach().cpu().contiguous()  # type: ignore[attr-defined]
        raw = t.reshape(-1).view(require("torch").uint8).numpy()
        return memoryview(raw).cast("B"), paramio_dtype_of_torch(t.dtype)
    if isinstance(array, (bytes, bytearray, memoryview)):
        return memoryview(array).cast("B"), None
    if mod == "cupy":
        array = array.get()  # type: ignore[attr-defined]
    if not isinstance(array, np.ndarray):
        try:
            array = np.asarray(array)
        except (TypeError, ValueError) as exc:
            raise InvalidArgumentError(f"cannot view a {type(array).__name__} as host bytes") from exc
    arr = np.ascontiguousarray(array)
    if arr.dtype.byteorder == ">":
        arr = arr.astype(arr.dtype.newbyteorder("<"))
    name: str | None
    try:
        name = dtype_of_numpy(arr.dtype).name
    except InvalidArgumentError:
        name = None
    flat: np.ndarray = arr.reshape(-1).view(np.uint8)
    return memoryview(flat).cast("B"), name  # type: ignore[arg-type]
