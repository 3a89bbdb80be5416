"""Where loaded tensors go: one small class per framework, all with the same four methods.

A target `allocate`\\s a tensor's final memory. When that memory is on the host (NumPy, torch on
the CPU, JAX's CPU arrays, IREE CPU devices whose device-local memory is host-mappable), the
slot exposes it as `Slot.host` and the loader reads straight into it: no staging, one copy from
the page cache. Otherwise the loader reads each piece into a staging buffer from the budget
(pinned host memory for CUDA) and the target's `upload` copies it to the device. `finish` turns
the slot into the array the caller gets. Frameworks are imported only when their target is made.
"""

from __future__ import annotations

import abc
import dataclasses
import importlib
import mmap
import threading
import warnings

import numpy as np

from paramio.arrays.frameworks import require, torch_dtype
from paramio.core.dtypes import dtype_by_name
from paramio.core.entry import ParameterEntry
from paramio.core.errors import InvalidArgumentError
from paramio.loading.hostmem import PAGE, direct_bytes, host_bytes, huge_page_size

__all__ = ["TARGETS", "Slot", "Target", "aligned_bytes", "host_layout", "make_target", "torch_layout"]


@dataclasses.dataclass(slots=True)
class Slot:
    """One tensor's destination. `host`: writable bytes the loader reads into, or None (staged)."""

    key: str
    dtype: np.dtype[np.generic]
    shape: tuple[int, ...]
    nbytes: int
    host: memoryview | None
    handle: object = None
    extra: object = None
    #: For ``io="direct"``: whole pages around `host` (``host[0]`` is at ``padded[offset %
    #: 4096]`` for the tensor's file offset), so O_DIRECT reads land in place, no bounce buffer.
    padded: memoryview | None = None


def host_layout(entry: ParameterEntry) -> tuple[np.dtype[np.generic], tuple[int, ...]]:
    """The NumPy dtype and shape `entry.to_numpy()` would give (bytes when it has no type)."""
    dtype, shape = entry._view_plan(entry.tensor)  # the same checked plan to_numpy uses
    return dtype, shape if shape is not None else (entry.length,)


class Target(abc.ABC):
    """A kind of array the loader produces. Subclass it to load into something new."""

    #: Shown in summaries: ``numpy``, ``torch``, ``iree`` ...
    name: str = "?"
    device: str | None = None
    #: Whether `allocate` takes ``direct=True`` (slots with `Slot.padded` for in-place O_DIRECT).
    direct_slots: bool = False

    @abc.abstractmethod
    def allocate(self, key: str, entry: ParameterEntry) -> Slot:
        """The tensor's destination memory (called once per tensor, before its first read)."""

    def map_view(self, key: str, entry: ParameterEntry, mapping: mmap.mmap) -> Slot | None:
        """A slot whose array is a view of `mapping` (a copy-on-write map of the entry's whole
        file) at the entry's bytes, for ``io="mmap"``; None where this target cannot take the
        bytes in place (the default: every target but NumPy's and torch's on the CPU), and the
        loader reads them instead. `finish` is then called on the slot as on any other."""
        return None

    def upload(self, slot: Slot, offset: int, data: memoryview, owner: object) -> None:
        """Copy staged bytes to ``slot`` at `offset`, done when it returns (staged slots only).
        `owner` is the staging buffer's owner from `make_staging` (a pinned tensor, say);
        `data` is its first ``len(data)`` bytes."""
        raise NotImplementedError(f"{self.name} target reads into host memory; nothing to upload")

    @abc.abstractmethod
    def finish(self, slot: Slot) -> object:
        """The caller's array, once every byte of the slot has landed."""

    def make_staging(self, nbytes: int) -> tuple[object, memoryview]:
        """One staging buffer (its owner, a writable byte view). Plain host memory by default."""
        buf = bytearray(nbytes)
        return buf, memoryview(buf)

    def close(self) -> None:  # noqa: B027 -- a real default: nothing to release
        """Release what the target holds (streams, device handles) after a load."""


_UINT8: np.dtype[np.generic] = np.dtype(np.uint8)


def torch_layout(entry: ParameterEntry) -> tuple[str, tuple[int, ...]]:
    """(paramio dtype name, shape) of the torch tensor for `entry`: its declared type where the
    bytes hold exactly that many whole elements, else ``uint8`` bytes (as `host_layout`), found
    without NumPy's dtype (which for bfloat16 or fp8 would import ml_dtypes: 60 ms to seconds)."""
    info = entry.tensor
    if info is not None:
        try:
            d = dtype_by_name(info.dtype)
            if not d.is_subbyte and d.nbytes(info.count) == entry.length:
                return info.dtype, tuple(info.shape)
        except (InvalidArgumentError, AttributeError):
            pass
    return "uint8", (entry.length,)


def aligned_bytes(nbytes: int, alignment: int = 64) -> np.ndarray:
    """New ``uint8`` host memory starting at a multiple of `alignment` (and at a huge page
    boundary when it is that large; see `hostmem`): what XLA needs to take an array by DLPack
    without a copy, and what IREE's CPU kernels assume of a buffer."""
    return host_bytes(nbytes, alignment)


#: Tensors at least this large get in-place O_DIRECT memory (smaller ones go through a bounce
#: buffer: their extra pages would cost more than the copy saves).
DIRECT_IN_PLACE_MIN = 1 << 20


def _direct_flat(entry: ParameterEntry, itemsize: int) -> tuple[np.ndarray, memoryview] | None:
    """(flat bytes, padded pages) placed for in-place O_DIRECT reads, or None where that does
    not apply: a small tensor, or a file offset not element-aligned (the array would not be)."""
    phase = entry.offset % PAGE
    if entry.length < DIRECT_IN_PLACE_MIN or entry.source is None or phase % max(1, itemsize):
        return None
    flat, padded = direct_bytes(entry.length, phase)
    return flat, memoryview(padded)  # type: ignore[arg-type]


def _numpy_slot(key: str, entry: ParameterEntry, *, aligned: bool = False, direct: bool = False) -> Slot:
    dtype, shape = host_layout(entry)
    placed = _direct_flat(entry, dtype.itemsize) if direct and not aligned else None
    if placed is not None:
        flat, padded = placed
        arr = flat.view(dtype).reshape(shape)
        return Slot(key, dtype, shape, entry.length, memoryview(flat), arr, padded=padded)  # type: ignore[arg-type]
    if aligned or entry.length >= huge_page_size() > 0:
        # Large tensors start on a huge page (a view of a slightly larger block): fewer faults.
        flat = host_bytes(entry.length)
        arr = flat.view(dtype).reshape(shape)
    else:
        arr = np.empty(shape, dtype=dtype)
        flat = arr.reshape(-1).view(np.uint8)
    return Slot(key, dtype, shape, entry.length, memoryview(flat), arr)  # type: ignore[arg-type]


class NumpyTarget(Target):
    """New NumPy arrays, typed and shaped from the entries' metadata (``uint8`` bytes otherwise)."""

    name = "numpy"
    direct_slots = True

    def __init__(self, device: str | None = None) -> None:
        if device not in (None, "cpu"):
            raise InvalidArgumentError(f"NumPy arrays live on the host, not {device!r}")

    def allocate(self, key: str, entry: ParameterEntry, *, direct: bool = False) -> Slot:
        return _numpy_slot(key, entry, direct=direct)

    def map_view(self, key: str, entry: ParameterEntry, mapping: mmap.mmap) -> Slot | None:
        dtype, shape = host_layout(entry)
        if entry.offset % dtype.itemsize or entry.offset + entry.length > len(mapping):
            return None  # not element-aligned in the file: read into aligned memory instead
        flat = np.frombuffer(mapping, dtype=np.uint8, count=entry.length, offset=entry.offset)
        return Slot(key, dtype, shape, entry.length, None, flat.view(dtype).reshape(shape))

    def finish(self, slot: Slot) -> object:
        return slot.handle


class TorchTarget(Target):
    """``torch.Tensor``\\s. CPU: read straight into the tensor (large ones start on a huge page).
    Other devices: staged through host buffers from the budget and copied with ``copy_``; on
    CUDA the buffers are pinned and each piece is copied on the worker's own stream, so reads on
    some workers overlap copies on others.

    `staged=True` takes the device path on the CPU too (device tensors, staging buffers, one
    copy per piece): how the tests run that path on machines without a GPU."""

    name = "torch"
    direct_slots = True

    def __init__(self, device: str | None = None, *, staged: bool | None = None) -> None:
        self._torch = require("torch")
        self.device = device
        try:
            self._dev = self._torch.device(device or "cpu")
        except RuntimeError as exc:
            raise InvalidArgumentError(f"torch has no device {device!r}: {exc}") from exc
        self._cuda = self._dev.type == "cuda"
        if self._cuda and not self._torch.cuda.is_available():
            raise InvalidArgumentError(f"device {device!r}: torch finds no CUDA device")
        self._staged = self._dev.type != "cpu" if staged is None else staged
        self._maps: dict[int, object] = {}  # id(mapping) -> a uint8 tensor over all of it
        if self._staged and not self._cuda:
            try:  # fail here, naming the device, rather than in the first worker
                self._torch.empty(1, dtype=self._torch.uint8, device=self._dev)
            except (RuntimeError, NotImplementedError) as exc:
                raise InvalidArgumentError(f"device {device!r}: torch cannot allocate there: {exc}") from exc
        self._local = threading.local()

    def allocate(self, key: str, entry: ParameterEntry, *, direct: bool = False) -> Slot:
        torch = self._torch
        dtype = _UINT8  # torch slots keep their torch dtype in `extra`
        name, shape = torch_layout(entry)
        tdtype = torch_dtype(name)
        if self._staged:
            raw = torch.empty(entry.length, dtype=torch.uint8, device=self._dev)
            return Slot(key, dtype, shape, entry.length, None, raw, tdtype)
        placed = _direct_flat(entry, tdtype.itemsize) if direct else None  # type: ignore[attr-defined]
        if placed is not None:
            flat, padded = placed
            return Slot(key, dtype, shape, entry.length, memoryview(flat), torch.from_numpy(flat), tdtype, padded)  # type: ignore[arg-type]
        if entry.length >= huge_page_size() > 0:
            flat = host_bytes(entry.length)  # fewer page faults (see hostmem); the tensor keeps it
            return Slot(key, dtype, shape, entry.length, memoryview(flat), torch.from_numpy(flat), tdtype)  # type: ignore[arg-type]
        raw = torch.empty(entry.length, dtype=torch.uint8)
        return Slot(key, dtype, shape, entry.length, memoryview(raw.numpy()), raw, tdtype)

    def map_view(self, key: str, entry: ParameterEntry, mapping: mmap.mmap) -> Slot | None:
        if self._staged or entry.offset + entry.length > len(mapping):
            return None
        name, shape = torch_layout(entry)
        tdtype = torch_dtype(name)
        if entry.offset % tdtype.itemsize:  # type: ignore[attr-defined]
            return None  # a typed view needs element-aligned bytes: read this one instead
        whole = self._maps.get(id(mapping))
        if whole is None:
            whole = self._maps[id(mapping)] = self._torch.frombuffer(mapping, dtype=self._torch.uint8)
        raw = whole[entry.offset : entry.offset + entry.length]  # type: ignore[index]
        return Slot(key, _UINT8, shape, entry.length, None, raw, tdtype)

    def close(self) -> None:
        self._maps.clear()  # the tensors keep their mappings alive; the target holds none

    def make_staging(self, nbytes: int) -> tuple[object, memoryview]:
        if not self._staged:
            return super().make_staging(nbytes)
        # Pinned for CUDA: the copy is a true asynchronous DMA, and torch caches pinned blocks.
        t = self._torch.empty(nbytes, dtype=self._torch.uint8, pin_memory=self._cuda)
        return t, memoryview(t.numpy())

    def upload(self, slot: Slot, offset: int, data: memoryview, owner: object) -> None:
        n = len(data)
        src = owner[:n]  # type: ignore[index]  # the staging tensor itself (pinned on CUDA)
        dst = slot.handle[offset : offset + n]  # type: ignore[index]
        if not self._cuda:
            dst.copy_(src)  # synchronous: done when it returns
            return
        torch = self._torch
        stream = getattr(self._local, "stream", None)
        if stream is None:
            stream = self._local.stream = torch.cuda.Stream(device=self._dev)
        with torch.cuda.stream(stream):
            dst.copy_(src, non_blocking=True)
        stream.synchronize()  # the staging buffer goes back to the pool only once the copy is done

    def finish(self, slot: Slot) -> object:
        raw = slot.handle
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*not writable.*")
            return raw.view(slot.extra).reshape(slot.shape)  # type: ignore[attr-defined]


class JaxTarget(Target):
    """``jax.Array``\\s: read into 64-byte aligned host arrays, then DLPack on the CPU (zero-copy:
    XLA copies anything less aligned) or one ``device_put`` per tensor to an accelerator
    (``device="gpu"``, ``"gpu:1"``, ``"tpu"``)."""

    name = "jax"

    def __init__(self, device: str | None = None) -> None:
        self._jax = require("jax")
        self.device = device
        self._dev = None
        if device is not None:
            platform, _, num = device.partition(":")
            self._dev = self._jax.devices(platform)[int(num or 0)]

    def allocate(self, key: str, entry: ParameterEntry) -> Slot:
        return _numpy_slot(key, entry, aligned=True)

    def finish(self, slot: Slot) -> object:
        arr = slot.handle
        if self._dev is None or self._dev.platform == "cpu":
            try:
                return self._jax.dlpack.from_dlpack(arr)  # zero-copy where JAX accepts the alignment
            except Exception:  # noqa: BLE001 -- a dtype or alignment DLPack refuses: one copy instead
                pass
        return self._jax.device_put(arr, self._dev)


class CupyTarget(Target):
    """``cupy.ndarray``\\s on the current (or numbered, ``"cuda:1"``) GPU, staged through pinned
    host buffers. Element types CuPy lacks (bfloat16, fp8) come back as ``uint8`` bytes."""

    name = "cupy"

    def __init__(self, device: str | None = None) -> None:
        self._cupy = require("cupy")
        self.device = device
        self._num = int(device.partition(":")[2] or 0) if device else None
        self._local = threading.local()

    def _device(self) -> object:
        return self._cupy.cuda.Device(self._num) if self._num is not None else self._cupy.cuda.Device()

    def allocate(self, key: str, entry: ParameterEntry) -> Slot:
        dtype, shape = host_layout(entry)
        with self._device():  # type: ignore[attr-defined]
            raw = self._cupy.empty(entry.length, dtype=self._cupy.uint8)
        return Slot(key, dtype, shape, entry.length, None, raw)

    def make_staging(self, nbytes: int) -> tuple[object, memoryview]:
        mem = self._cupy.cuda.alloc_pinned_memory(nbytes)
        return mem, memoryview(np.frombuffer(mem, dtype=np.uint8, count=nbytes))  # type: ignore[arg-type]

    def upload(self, slot: Slot, offset: int, data: memoryview, owner: object) -> None:
        with self._device():  # type: ignore[attr-defined]
            stream = getattr(self._local, "stream", None)
            if stream is None:
                stream = self._local.stream = self._cupy.cuda.Stream(non_blocking=True)
            slot.handle[offset : offset + len(data)].set(np.frombuffer(data, dtype=np.uint8), stream=stream)  # type: ignore[index]
            stream.synchronize()

    def finish(self, slot: Slot) -> object:
        raw = slot.handle
        try:
            return raw.view(slot.dtype).reshape(slot.shape)  # type: ignore[attr-defined]
        except (TypeError, ValueError):
            return raw  # CuPy has no such element type


def make_target(into: str | Target, device: str | None) -> Target:
    """The target named by `into` (or `into` itself). Raises `InvalidArgumentError` for an
    unknown name, `ImportError` naming the extra when the framework is missing."""
    if isinstance(into, Target):
        return into
    spec = TARGETS.get(into)
    if spec is None:
        raise InvalidArgumentError(f"unknown target into={into!r}; known: {', '.join(TARGETS)}")
    module, _, name = spec.partition(":")
    cls: type[Target] = getattr(importlib.import_module(module), name)
    return cls(device)  # type: ignore[call-arg]


#: into= name -> "module:class", imported when first used (the IREE target needs iree.runtime).
TARGETS: dict[str, str] = {
    "numpy": "paramio.loading.targets:NumpyTarget",
    "torch": "paramio.loading.targets:TorchTarget",
    "jax": "paramio.loading.targets:JaxTarget",
    "cupy": "paramio.loading.targets:CupyTarget",
    "iree": "paramio.loading.iree_target:IreeTarget",
}
