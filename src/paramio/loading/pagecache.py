"""`prefetch`: bring a file into the page cache ahead of a consumer that maps it, within a budget.

A loader that maps its file (``safetensors.torch.load_file``, `paramio.load(io="mmap")`, llama.cpp)
reads each page on its first touch: one small synchronous read per fault, which on network
filesystems (NFS, Lustre) means one round trip per 4 KiB to 64 KiB. Reading the file ahead in
large sequential requests turns that into a stream; the mapped consumer then finds every page in
memory. The budget bounds how much of the file is brought in (from its start, where the header
and the first layers are), so prefetching a model larger than memory does not evict the part
read first.
"""

from __future__ import annotations

import dataclasses
import mmap
import os
import time

from paramio.core.errors import InvalidArgumentError
from paramio.loading.budget import parse_size
from paramio.sources.file import FileSource, resident_bytes

__all__ = ["PrefetchResult", "available_memory", "prefetch"]

_WINDOW = 16 << 20


@dataclasses.dataclass(frozen=True, slots=True)
class PrefetchResult:
    """What `prefetch` did: the bytes it was asked to bring in (`wanted`: the budget or the
    file, whichever is smaller) and how many of the file's bytes were cached before and after."""

    path: str
    size: int
    wanted: int
    resident_before: int
    resident_after: int
    seconds: float

    def to_dict(self) -> dict[str, object]:
        return dataclasses.asdict(self)

    def format_text(self) -> str:
        return (
            f"prefetched {self.path}: {self.resident_after} of {self.size} bytes in the page cache "
            f"(were {self.resident_before}; budget {self.wanted}) in {self.seconds:.3f} s"
        )


def available_memory() -> int | None:
    """``MemAvailable`` from /proc/meminfo (bytes), or None where there is none."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def prefetch(path: str | os.PathLike[str], budget: int | str | None = None) -> PrefetchResult:
    """Read the first `budget` bytes of the local file `path` (all of it by default, but never
    more than half the memory the system says is available) into the page cache, in 16 MiB
    sequential reads after a ``POSIX_FADV_WILLNEED`` hint; returns how much of the file is
    cached before and after. Pages already cached are not read again.

    Raises `SourceError` for a file that cannot be opened, `InvalidArgumentError` for a bad
    budget."""
    limit = None if budget is None else parse_size(budget)
    if limit is not None and limit <= 0:
        raise InvalidArgumentError(f"prefetch budget must be positive, not {budget!r}")
    started = time.perf_counter()
    name = os.fspath(path)
    source = FileSource(name, use_mmap=False)
    try:
        size = source.size
        before = resident_bytes(name)
        avail = available_memory()
        wanted = size if limit is None else min(size, limit)
        if limit is None and avail is not None:
            wanted = min(wanted, avail // 2)
        if hasattr(os, "POSIX_FADV_WILLNEED") and wanted:
            # No read-ahead past the budget on this descriptor (a sequential read would pull
            # up to read_ahead_kb more), and the kernel starts on the whole budget at once.
            source.advise(0, 0, os.POSIX_FADV_RANDOM)
            source.advise(0, wanted, os.POSIX_FADV_WILLNEED)
        if wanted:
            buf = mmap.mmap(-1, min(_WINDOW, wanted))
            view = memoryview(buf)
            try:
                for start in range(0, wanted, _WINDOW):  # waits for the bytes, reads what it skipped
                    source.readinto(start, view[: min(_WINDOW, wanted - start)])
            finally:
                view.release()
                buf.close()
        after = resident_bytes(name)
    finally:
        source.close()
    return PrefetchResult(name, size, wanted, before, after, time.perf_counter() - started)
