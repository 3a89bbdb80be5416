"""Fresh host memory for loaded tensors, placed so the kernel can back it with huge pages.

Loading a model is mostly the kernel's work: a fault on every new page (zeroing it), then the
copy from the page cache. With transparent huge pages (Linux, THP ``madvise`` or ``always``)
one fault maps 2 MiB instead of 4 KiB, but only for 2 MiB-aligned runs inside a region marked
for huge pages. `malloc` puts a large array a few bytes past a page boundary, anywhere inside
its mapping, so the first and last partial 2 MiB of every tensor fault 4 KiB at a time: about
500 small faults per large tensor. Measured on the 2-core development VM, 2 GiB of 32 MiB
tensors, `benchmarks/load_ab.py` (interleaved rounds): the loader took 0.73 to 0.89x the time (five sessions)
and 0.74 to 0.93x the CPU time with this placement than with `np.empty` arrays.

`host_bytes` therefore maps each large tensor itself (private anonymous memory, one huge page
more than it needs), starts the tensor on a huge page boundary inside it, asks for huge pages for
the whole huge pages of the tensor and for small pages after them. The slack is address space
only: no byte of it is ever touched, so it costs no memory; and the tensor's last partial huge
page is never a whole huge page (without that, a tensor of 2.5 huge pages would hold 3 of
them: measured 15 MiB above 150 MiB of such tensors). Small tensors, and systems without THP,
get plain 64-byte aligned memory. Dropping the array unmaps its memory.

Not on a virtual machine whose balloon hands free memory back to its host (virtio free page
reporting, in blocks of a huge page or less: firecracker, cloud-hypervisor, QEMU with
``free-page-reporting=on``). There a huge page is always a whole free block the host has taken
back, so every huge page fault is also the host's fault, and its cost follows the host's load:
P11's warm 2 GiB load on such a 2-core VM took 0.42-0.63 s with huge pages when quiet, but
1.4-6.5 s (1.9-6.0 CPU s) against 0.65-2.2 s (0.9-1.2 CPU s) with small pages while other
processes used the machine (load average 3.5-4, interleaved, benchmarks/results/p11-load.md).
Small pages come from blocks the guest still holds. Memory for in-place O_DIRECT reads keeps
huge pages there (`direct_huge_page_size`: measured the other way round). ``PARAMIO_HUGE_PAGES=1``
asks for huge pages anyway, ``=0`` never.
"""

from __future__ import annotations

import functools
import mmap
import os

import numpy as np

__all__ = [
    "PAGE",
    "direct_bytes",
    "direct_huge_page_size",
    "host_bytes",
    "host_reclaims_free_blocks",
    "huge_page_size",
]

#: O_DIRECT reads land on whole pages of this size (`sources.file.DIRECT_ALIGN`).
PAGE = 4096

#: Huge pages larger than this (arm64 with 64 KiB base pages has 512 MiB ones) are not worth
#: the address space: tensors rarely fill one.
_MAX_HUGE = 32 << 20
_THP = "/sys/kernel/mm/transparent_hugepage/"
_VIRTIO = "/sys/bus/virtio/devices/"
_REPORTING_ORDER = "/sys/module/page_reporting/parameters/page_reporting_order"
#: virtio's device id of a memory balloon, and its feature bit for free page reporting.
_BALLOON, _F_REPORTING = 5, 5
#: The kernel's default reporting order where it does not say (pageblock order: 2 MiB on x86).
_DEFAULT_ORDER = 9


def _thp_size() -> int:
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


def _wanted() -> bool | None:
    wanted = os.environ.get("PARAMIO_HUGE_PAGES", "").strip()
    return None if wanted not in ("0", "1") else wanted == "1"


@functools.cache
def huge_page_size() -> int:
    """The transparent huge page size when THP can back NumPy's allocations and huge pages are
    worth asking for here (see the module docstring; ``PARAMIO_HUGE_PAGES``), else 0."""
    size, wanted = _thp_size(), _wanted()
    if not size or wanted is not None:
        return size if wanted or wanted is None else 0
    return 0 if host_reclaims_free_blocks(size) else size


@functools.cache
def direct_huge_page_size() -> int:
    """`huge_page_size` for memory O_DIRECT reads land in: huge pages wherever THP allows,
    the host's reclaiming aside (``PARAMIO_HUGE_PAGES=0`` still says no). There the pages are
    faulted by the reading threads, 8 of them waiting on the device, not by two copying
    threads: P11's cold 2 GiB load on the development VM took 1.14-1.17 s with huge pages
    against 1.40-1.55 s with small ones (load average 4, interleaved)."""
    return 0 if _wanted() is False else _thp_size()


def host_reclaims_free_blocks(huge: int) -> bool:
    """Whether a virtio balloon reports free memory to its host in blocks of at most `huge`
    bytes (so the host takes back the very blocks a huge page would come from)."""
    try:
        devices = os.listdir(_VIRTIO)
    except OSError:
        return False  # not Linux, or no virtio bus: no balloon
    for name in devices:
        try:
            with open(_VIRTIO + name + "/device") as f:
                if int(f.read(), 16) != _BALLOON:
                    continue
            with open(_VIRTIO + name + "/features") as f:
                bits = f.read().strip()
        except (OSError, ValueError):
            continue
        if len(bits) > _F_REPORTING and bits[_F_REPORTING] == "1":
            try:
                with open(_REPORTING_ORDER) as f:
                    order = int(f.read())
            except (OSError, ValueError):
                order = _DEFAULT_ORDER
            return (PAGE << order) <= huge
    return False


def host_bytes(nbytes: int, alignment: int = 64) -> np.ndarray:
    """New, uninitialised ``uint8`` memory of `nbytes`, starting at a multiple of `alignment`
    (64: what XLA needs to take an array by DLPack without a copy, and what IREE's CPU kernels
    assume), and at a huge page boundary when it is at least one huge page long."""
    huge = huge_page_size()
    if huge and nbytes >= huge and huge % alignment == 0:
        return _huge_aligned(nbytes, huge)
    raw = np.empty(nbytes + alignment, dtype=np.uint8)
    start = -raw.ctypes.data % alignment
    return raw[start : start + nbytes]


def _huge_aligned(nbytes: int, huge: int) -> np.ndarray:
    m = mmap.mmap(-1, nbytes + huge, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ | mmap.PROT_WRITE)
    whole = np.frombuffer(m, dtype=np.uint8)  # the array keeps the mapping; unmapped with it
    start = -whole.ctypes.data % huge
    body = nbytes - nbytes % huge
    m.madvise(mmap.MADV_HUGEPAGE, start, body)
    if start + body < len(m):  # the partial huge page at the end: small pages (THP "always" too)
        m.madvise(mmap.MADV_NOHUGEPAGE, start + body, len(m) - start - body)
    return whole[start : start + nbytes]


def direct_bytes(nbytes: int, phase: int) -> tuple[np.ndarray, np.ndarray]:
    """New ``uint8`` memory of `nbytes` that an ``O_DIRECT`` read can land in without a bounce
    buffer: (the array, the padded block around it). The array starts `phase` bytes into a page
    (`phase` = the tensor's file offset modulo `PAGE`, so page boundaries of the memory and of
    the file coincide), and the padded block runs from that page's start to the page after the
    array's end: whole pages, the read's landing area. Large blocks start on a huge page, as in
    `host_bytes`. The padding is the array's own mapping: no other data shares it."""
    if not 0 <= phase < PAGE:
        raise ValueError(f"phase {phase} outside a page")
    padded_len = -(-(phase + nbytes) // PAGE) * PAGE
    huge = direct_huge_page_size()
    if huge and nbytes >= huge:
        m = mmap.mmap(-1, padded_len + huge, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ | mmap.PROT_WRITE)
        whole = np.frombuffer(m, dtype=np.uint8)
        start = -whole.ctypes.data % huge
        body = padded_len - padded_len % huge
        m.madvise(mmap.MADV_HUGEPAGE, start, body)
        if start + body < len(m):
            m.madvise(mmap.MADV_NOHUGEPAGE, start + body, len(m) - start - body)
    else:
        m = mmap.mmap(-1, padded_len, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ | mmap.PROT_WRITE)
        whole = np.frombuffer(m, dtype=np.uint8)
        start = 0
    padded = whole[start : start + padded_len]
    return padded[phase : phase + nbytes], padded
