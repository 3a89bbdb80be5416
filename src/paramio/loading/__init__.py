"""The loader: many tensors from any paramio source into NumPy, torch, JAX, CuPy or IREE
devices, in parallel, within a memory budget, sync or async, streaming as they land.

Layers (each module one job): `plan` (pure: which bytes each task reads), `spans` (the one seam
to byte sources: read a span of an entry into a buffer), `budget` (bytes in flight, staging
buffers), `targets` / `iree_target` (where tensors go), `engine` (one load's state and the sync
and async loops), `io` (the ``io=`` strategies per source: pread, O_DIRECT, mmap; page-cache
hints), `pagecache` (`prefetch`), `api` (the public functions).
"""

from __future__ import annotations

from paramio.loading.api import Loaded, LoadStream, astream, load, load_async, resolve, stream
from paramio.loading.budget import parse_size
from paramio.loading.pagecache import PrefetchResult, prefetch
from paramio.loading.summary import LoadSummary
from paramio.loading.targets import Slot, Target

__all__ = [
    "LoadStream",
    "LoadSummary",
    "Loaded",
    "PrefetchResult",
    "Slot",
    "Target",
    "astream",
    "load",
    "load_async",
    "parse_size",
    "prefetch",
    "resolve",
    "stream",
]
