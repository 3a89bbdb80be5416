"""Fresh host memory for loaded tensors, placed so the kernel can back it with huge pages.

Loading a model is mostly the kernel's work: a fault on every new page (zeroing it), then the
copy from the page cache. With transparent huge pages (Linux, THP ``madvise`` or ``always``)
one fault maps 2 MiB instead of 4 KiB, but only for 2 MiB-aligned runs inside a region marked
for huge pages. `malloc` puts a large array a few bytes past a page boundary, anywhere inside
its mapping, so the first and last partial 2 MiB of every tensor fault 4 KiB at a time: about
500 small faults per large tensor. Measured on the 2-core benchmark VM, reading 2 GiB of
32 MiB tensors with two threads: 171 ms into `np.empty` arrays, 136 ms into arrays that start
on a huge page boundary (and 16% less CPU time); `benchmarks/cases/p3b_load.py` measures it.

`host_bytes` therefore over-allocates large tensors by one huge page and hands out the aligned
part. The slack is address space only: no byte of it is ever touched, so it costs no memory
(NumPy marks allocations of 4 MiB and more for huge pages, which covers the whole block).
Small tensors, and systems without THP, get plain 64-byte aligned memory.
"""

from __future__ import annotations

import functools

import numpy as np

__all__ = ["host_bytes", "huge_page_size"]

#: Huge pages larger than this (arm64 with 64 KiB base pages has 512 MiB ones) are not worth
#: the address space: tensors rarely fill one.
_MAX_HUGE = 32 << 20
_THP = "/sys/kernel/mm/transparent_hugepage/"


@functools.cache
def huge_page_size() -> int:
    """The transparent huge page size when THP can back NumPy's allocations, else 0."""
    try:
        with open(_THP + "enabled") as f:
            mode = f.read()
        with open(_THP + "hpage_pmd_size") as f:
            size = int(f.read())
    except (OSError, ValueError):
        return 0  # not Linux, or no THP in this kernel
    if "[never]" in mode or not 0 < size <= _MAX_HUGE or size & (size - 1):
        return 0
    return size


def host_bytes(nbytes: int, alignment: int = 64) -> np.ndarray:
    """New, uninitialised ``uint8`` memory of `nbytes`, starting at a multiple of `alignment`
    (64: what XLA needs to take an array by DLPack without a copy, and what IREE's CPU kernels
    assume), and at a huge page boundary when it is at least one huge page long."""
    huge = huge_page_size()
    if huge and nbytes >= huge:
        alignment = max(alignment, huge)
    raw = np.empty(nbytes + alignment, dtype=np.uint8)
    start = -raw.ctypes.data % alignment
    return raw[start : start + nbytes]
