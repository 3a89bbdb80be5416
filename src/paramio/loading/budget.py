"""The memory budget: bytes in flight counted against a limit, and staging buffers drawn from it.

`ByteBudget` is a semaphore counted in bytes: the loader acquires a task's bytes before it starts
the read and releases them when the bytes have landed where they go, so bytes in flight never
exceed the limit. `StagingPool` hands out the host buffers device targets read into before a copy
to the device; it holds at most ``limit // chunk`` buffers of ``chunk`` bytes, reused across tasks
(pinned memory is slow to allocate), and records its high-water mark so tests can prove the bound.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable

from paramio.core.errors import InvalidArgumentError

__all__ = ["MIN_BUDGET", "ByteBudget", "StagingPool", "parse_size"]

#: Below this a budget could not hold one page-sized read; refused as a mistake.
MIN_BUDGET = 4096

_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b?)\s*", re.IGNORECASE)


def parse_size(value: int | str) -> int:
    """Bytes from ``268435456``, ``"256MiB"``, ``"1GiB"``, ``"64M"`` or ``"1.5G"`` (binary units:
    a budget is memory). Raises `InvalidArgumentError` for anything else."""
    if isinstance(value, bool):
        raise InvalidArgumentError(f"not a size: {value!r}")
    if isinstance(value, int):
        n = value
    else:
        m = _SIZE.fullmatch(value)
        if m is None:
            raise InvalidArgumentError(f"not a size: {value!r} (write e.g. 268435456, 256MiB or 1GiB)")
        n = int(float(m.group(1)) * _UNITS[m.group(2).lower()])
    if n < 0:
        raise InvalidArgumentError(f"size {value!r} is negative")
    return n


class ByteBudget:
    """A counting semaphore in bytes, with the high-water mark of what was held at once."""

    def __init__(self, limit: int) -> None:
        if limit < MIN_BUDGET:
            raise InvalidArgumentError(f"budget {limit} bytes is below the minimum of {MIN_BUDGET}")
        self.limit = limit
        self.held = 0
        self.high_water = 0
        self._cond = threading.Condition()

    def try_acquire(self, n: int) -> bool:
        """Take `n` bytes if they fit now; never blocks."""
        if n > self.limit:
            raise InvalidArgumentError(f"a request of {n} bytes can never fit a budget of {self.limit}")
        with self._cond:
            if self.held + n > self.limit:
                return False
            self.held += n
            self.high_water = max(self.high_water, self.held)
            return True

    def acquire(self, n: int, *, cancelled: Callable[[], bool] = lambda: False) -> bool:
        """Wait until `n` bytes fit (or `cancelled()` turns true: then False)."""
        if n > self.limit:
            raise InvalidArgumentError(f"a request of {n} bytes can never fit a budget of {self.limit}")
        with self._cond:
            while self.held + n > self.limit:
                if cancelled():
                    return False
                self._cond.wait(0.05)
            self.held += n
            self.high_water = max(self.high_water, self.held)
            return True

    def release(self, n: int) -> None:
        with self._cond:
            self.held -= n
            assert self.held >= 0, "budget released more than it held"
            self._cond.notify_all()


class StagingPool:
    """Host staging buffers of `chunk` bytes, at most ``limit // chunk`` of them alive at once.

    `make(nbytes)` allocates one buffer (a `bytearray`, pinned host memory for CUDA). `get` and
    `put` are thread-safe; `clear` drops every buffer (after a load or a cancel), so staging
    memory is freed, not just returned to the pool.
    """

    def __init__(self, limit: int, chunk: int, make: Callable[[int], tuple[object, memoryview]] | None = None) -> None:
        if chunk > limit:
            raise InvalidArgumentError(f"staging chunk {chunk} is larger than the budget {limit}")
        self.limit = limit
        self.chunk = chunk
        self.capacity = max(1, limit // chunk)
        self._make = make or _bytearray
        self._free: list[tuple[object, memoryview]] = []
        self._lock = threading.Lock()
        #: Bytes of staging buffers that exist now, and the most that ever existed at once.
        self.allocated = 0
        self.high_water = 0
        self.in_use = 0

    def get(self) -> tuple[object, memoryview]:
        """A free buffer (owner object, writable byte view of `chunk` bytes)."""
        with self._lock:
            if self.in_use >= self.capacity:
                raise InvalidArgumentError("staging pool exhausted: the loader took more than its budget")
            self.in_use += 1
            if self._free:
                return self._free.pop()
            self.allocated += self.chunk
            self.high_water = max(self.high_water, self.allocated)
        return self._make(self.chunk)

    def put(self, buf: tuple[object, memoryview]) -> None:
        with self._lock:
            self.in_use -= 1
            self._free.append(buf)

    def clear(self) -> None:
        with self._lock:
            self.allocated -= self.chunk * len(self._free)
            for _, view in self._free:
                view.release()
            self._free.clear()


def _bytearray(n: int) -> tuple[object, memoryview]:
    buf = bytearray(n)
    return buf, memoryview(buf)
