"""IREE device arrays as a loader target (``into="iree", device="local-task"``).

On devices whose device-local memory the host can map (IREE's CPU devices ``local-task`` and
``local-sync``), each tensor's HAL buffer is allocated mappable and the loader reads the file
straight into it: one copy from the page cache, none through NumPy. Other devices (``cuda``,
``vulkan``) get each tensor read into host memory and copied with ``allocate_buffer_copy``;
that copy holds one whole tensor on the host, outside the staging budget.
"""

from __future__ import annotations

import numpy as np

from paramio.errors import InvalidArgumentError
from paramio.index.entry import ParameterEntry
from paramio.iree.bridge import iree_runtime
from paramio.loading.targets import Slot, Target, host_layout

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
        self._usage = int(rt.BufferUsage.DEFAULT | rt.BufferUsage.MAPPING)
        self._mappable = True

    def allocate(self, key: str, entry: ParameterEntry) -> Slot:
        dtype, shape = host_layout(entry)
        et = self._element_type(dtype)
        if et is None:  # a type IREE has no element type for: its bytes
            dtype, shape, et = np.dtype(np.uint8), (entry.length,), self._element_type(np.dtype(np.uint8))
        n = entry.length
        if self._mappable:
            try:
                buf = self._device.allocator.allocate_buffer(
                    memory_type=self._memory, allowed_usage=self._usage, allocation_size=max(1, n)
                )
                mapped = buf.map()
                host = memoryview(mapped.asarray((max(1, n),), np.dtype(np.uint8)))[:n]
            except (RuntimeError, ValueError):
                self._mappable = False  # this device's memory is not host-visible: copy instead
            else:
                return Slot(key, dtype, shape, n, host, (buf, mapped), int(et))
        arr = np.empty(n, dtype=np.uint8)
        return Slot(key, dtype, shape, n, memoryview(arr), arr, int(et))  # type: ignore[arg-type]

    def finish(self, slot: Slot) -> object:
        rt = self._rt
        if isinstance(slot.handle, np.ndarray):
            view = slot.handle.view(slot.dtype).reshape(slot.shape)
            bv = self._device.allocator.allocate_buffer_copy(
                memory_type=int(rt.MemoryType.DEVICE_LOCAL),
                allowed_usage=int(rt.BufferUsage.DEFAULT),
                device=self._device,
                buffer=view,
                element_type=slot.extra,
            )
        else:
            buf = slot.handle[0]  # type: ignore[index]
            slot.host = None  # the mapping goes with the slot; the buffer stays with the array
            bv = rt.HalBufferView(buf, list(slot.shape), slot.extra)
        return rt.DeviceArray(self._device, bv, override_dtype=slot.dtype)
