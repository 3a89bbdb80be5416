"""What a load did, for people and for scripts (``paramio load --json``)."""

from __future__ import annotations

import dataclasses

__all__ = ["LoadSummary"]


@dataclasses.dataclass(frozen=True, slots=True)
class LoadSummary:
    """Counts and times of one load. `peak_in_flight` never exceeds `budget`; `peak_staging`
    is the most staging memory that existed at once (0 when every read went straight to the
    destination)."""

    tensors: int
    bytes: int
    seconds: float
    first_tensor_seconds: float | None
    into: str
    device: str | None
    budget: int
    concurrency: int
    chunk: int
    peak_in_flight: int
    peak_staging: int
    #: How the bytes were read: ``pread``, ``direct``, ``mmap`` (mapped, not read), ``remote``
    #: (a URL's ranged reads), ``memory``; several joined by ``+``. `io_note`: why a strategy
    #: asked for was not used (``O_DIRECT refused ...``), or what was copied under ``mmap``.
    io: str = "pread"
    io_note: str = ""

    @property
    def gb_per_s(self) -> float:
        """Decimal gigabytes per second (as disks and links are rated)."""
        return self.bytes / self.seconds / 1e9 if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, object]:
        d = dataclasses.asdict(self)
        d["gb_per_s"] = round(self.gb_per_s, 3)
        return d

    def format_text(self) -> str:
        first = f", first tensor after {self.first_tensor_seconds * 1e3:.1f} ms" if self.first_tensor_seconds else ""
        where = f" ({self.device})" if self.device else ""
        note = f"; {self.io_note}" if self.io_note else ""
        return (
            f"loaded {self.tensors} tensors, {self.bytes} bytes into {self.into}{where} in {self.seconds:.3f} s "
            f"({self.gb_per_s:.2f} GB/s{first}; io: {self.io}{note})"
        )
