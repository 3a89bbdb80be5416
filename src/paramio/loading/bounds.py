"""What a load may allocate: a tensor is refused, before any memory is taken, when it is larger
than the memory the system has available (a 4 KiB file whose splat claims 16 GiB must not make
the process fill 16 GiB and die of ENOMEM); an allocation the allocator refuses anyway is the
same paramio error, never a bare `MemoryError` or ``OSError(ENOMEM)``.

Host memory only: a device target's allocator says for itself (and is translated the same way).
"""

from __future__ import annotations

import errno

from paramio.core.entry import ParameterEntry
from paramio.core.errors import ParamioError
from paramio.loading.targets import Slot, Target

__all__ = ["AllocationError", "allocate", "available_memory"]

_HOST_DEVICES = (None, "cpu", "local-task", "local-sync")
#: Tensors smaller than this are not checked against ``MemAvailable``: reading /proc/meminfo
#: costs 20-60 us, which for 10,000 norms and biases was more than loading them, and a tensor
#: this small cannot be the claim that fills the memory (the allocator still says ENOMEM).
CHECK_FROM = 1 << 20


class AllocationError(ParamioError, MemoryError):
    """A tensor the loader cannot allocate (larger than the memory available, or refused)."""


def available_memory() -> int | None:
    """Bytes the kernel says can be allocated without swapping out (``MemAvailable``) plus free
    swap, or None where it does not say."""
    try:
        with open("/proc/meminfo", "rb") as f:
            fields = dict(line.split(b":", 1) for line in f.read().splitlines() if b":" in line)
        return sum(int(fields[k].split()[0]) * 1024 for k in (b"MemAvailable", b"SwapFree") if k in fields)
    except (OSError, ValueError, IndexError):
        return None


def _what(entry: ParameterEntry) -> str:
    return f"a splat of {entry.length} bytes" if entry.is_splat else f"{entry.length} bytes"


def allocate(target: Target, key: str, entry: ParameterEntry, *, direct: bool = False) -> Slot:
    """`target.allocate`, refused first when the tensor cannot fit in host memory (host targets),
    and with allocation failures raised as `AllocationError` naming the tensor. `direct`: ask a
    target with `Target.direct_slots` for memory O_DIRECT reads land in (``io="direct"``)."""
    path = entry.source.name if entry.source is not None else None
    if target.device in _HOST_DEVICES and entry.length >= CHECK_FROM:
        free = available_memory()
        if free is not None and entry.length > free:
            raise AllocationError(
                f"{_what(entry)} is more than the {free} bytes of memory available to load it into",
                path=path,
                key=key,
            )
    try:
        if direct and target.direct_slots:
            return target.allocate(key, entry, direct=True)  # type: ignore[call-arg]
        return target.allocate(key, entry)
    except MemoryError as exc:
        raise AllocationError(f"cannot allocate {_what(entry)}: out of memory", path=path, key=key) from exc
    except (OSError, RuntimeError) as exc:
        if isinstance(exc, OSError) and exc.errno != errno.ENOMEM:
            raise
        if isinstance(exc, RuntimeError) and "memory" not in str(exc).lower():
            raise
        raise AllocationError(f"cannot allocate {_what(entry)}: {exc}", path=path, key=key) from exc
