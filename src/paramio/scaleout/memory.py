"""A task's peak memory: the process's resident set (Python objects, NumPy buffers, and what
native libraries such as the object-store client hold), its high-water mark reset when the task
starts (Linux ``/proc/self/clear_refs``), minus what the process held then."""

from __future__ import annotations

from types import TracebackType

__all__ = ["PeakMemory", "resident_bytes"]


def _status(field: str) -> int | None:
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        return None
    return None


def resident_bytes() -> int | None:
    """This process's resident set now, or None where /proc does not say."""
    return _status("VmRSS")


def _reset_high_water() -> bool:
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
            f.write("5")  # resets VmHWM to the current RSS (Linux 4.0+)
        return True
    except OSError:
        return False


class PeakMemory:
    """``with PeakMemory() as m: ...``; then `m.peak` is the most bytes the block added to the
    process's resident set (None where the platform cannot say)."""

    def __init__(self) -> None:
        self.peak: int | None = None
        self._base: int | None = None

    def __enter__(self) -> PeakMemory:
        self._base = resident_bytes() if _reset_high_water() else None
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        high = _status("VmHWM")
        if self._base is not None and high is not None:
            self.peak = max(0, high - self._base)
