"""IREE device arrays as a loader target (``into="iree", device="local-task"``).

On IREE's CPU devices (``local-task``, ``local-sync``) device-local memory is host memory, so
each tensor is read into a new host array and handed to IREE with ``import_host_allocation``:
no copy at all after the read (the returned array keeps the host array alive: see `finish`). That is one copy from the
page cache where IREE's own loop (``ParameterIndex`` + ``parameter_index_entry_as_numpy_ndarray``
+ ``asdevicearray``) makes the read and then a second copy into a new buffer. Devices that refuse
host imports (``cuda``, ``vulkan``) get ``allocate_buffer_copy`` instead: one copy per tensor,
which holds that tensor on the host, outside the staging budget.
"""

from __future__ import annotations

import numpy as np

from paramio.core.entry import ParameterEntry
from paramio.core.errors import InvalidArgumentError
from paramio.iree.bridge import iree_runtime
from paramio.loading.targets import Slot, Target, aligned_bytes, host_layout

__all__ = ["IreeTarget"]


class IreeTarget(Target):
    """``iree.runtime.DeviceArray``\\s on one HAL device (default ``local-task``)."""

    name = "iree"

    def __init__(self, device: str | None = None) -> None:
        self._rt = iree_runtime()
        self.device = device or "local-task"
        try:
            self._device = self._rt.get_device(self.device)
        except (ValueError, RuntimeError) as exc:
            raise InvalidArgumentError(f"IREE has no device {self.device!r}: {exc}") from exc
        from iree.runtime.array_interop import map_dtype_to_element_type

        self._element_type = map_dtype_to_element_type
        rt = self._rt
        self._memory = int(rt.MemoryType.DEVICE_LOCAL | rt.MemoryType.HOST_VISIBLE)
        self._usage = int(rt.BufferUsage.DEFAULT)
        #: Whether the device takes host arrays as its buffers (learned from the first tensor).
        self.imports: bool | None = None

    def allocate(self, key: str, entry: ParameterEntry) -> Slot:
        dtype, shape = host_layout(entry)
        et = self._element_type(dtype)
        if et is None:  # a type IREE has no element type for: its bytes
            dtype, shape, et = np.dtype(np.uint8), (entry.length,), self._element_type(np.dtype(np.uint8))
        arr = aligned_bytes(entry.length)
        return Slot(key, dtype, shape, entry.length, memoryview(arr), arr, int(et))  # type: ignore[arg-type]

    def finish(self, slot: Slot) -> object:
        rt = self._rt
        arr = slot.handle
        assert isinstance(arr, np.ndarray)
        bv = None
        keep: tuple[object, np.ndarray] | None = None
        if self.imports is not False and slot.nbytes:
            try:
                buf = self._device.allocator.import_host_allocation(arr, self._memory, self._usage)
                bv = rt.HalBufferView(buf, list(slot.shape), slot.extra)
                keep = (buf, arr)
                self.imports = True
            except (RuntimeError, ValueError):
                self.imports = False  # this device's memory is not the host's: copy instead
        if bv is None:
            bv = self._device.allocator.allocate_buffer_copy(
                memory_type=int(rt.MemoryType.DEVICE_LOCAL),
                allowed_usage=self._usage,
                device=self._device,
                buffer=arr.view(slot.dtype).reshape(slot.shape),
                element_type=slot.extra,
            )
        out = rt.DeviceArray(self._device, bv, override_dtype=slot.dtype)
        if keep is not None:
            # IREE 3.13: a buffer view retains the HAL buffer but not the Python wrapper that
            # holds the imported array; once the wrapper is collected the array is freed under
            # the view (use after free, measured: a segfault). The array keeps both alive.
            out._paramio_host = keep
        return out
