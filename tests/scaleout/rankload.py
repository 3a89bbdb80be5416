"""Helpers for the multi-host loading tests: a model whose tensors each placement cuts, the byte
offsets NumPy says a slice holds in the file, and a file source that logs every read per
process (so a test learns which bytes each Ray actor read)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import ml_dtypes
import numpy as np

from paramio.sources import ByteSource, FileSource, register_scheme


def tensors() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(28)
    return {
        "embed": (rng.standard_normal((32, 8)) * 9).astype(ml_dtypes.bfloat16),
        "layers.0.norm": rng.standard_normal(24).astype(np.float32),
        "layers.0.wo": (rng.standard_normal((24, 16)) * 9).astype(np.float16),
        "layers.0.wq": rng.standard_normal((16, 24)).astype(np.float32),
        "layers.1.wq": rng.integers(-100, 100, (8, 4, 6)).astype(np.int8),
    }


def write(path: Path) -> Path:
    import safetensors.numpy

    safetensors.numpy.save_file(tensors(), str(path))
    return path


def data_starts(path: Path) -> tuple[dict[str, int], int]:
    """Each tensor's first byte in a safetensors file (its header parsed here, not by paramio),
    and where the data begins."""
    raw = path.read_bytes()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + n])
    base = 8 + n
    return {k: base + v["data_offsets"][0] for k, v in header.items() if k != "__metadata__"}, base


def slice_offsets(start: int, array: np.ndarray, index: object) -> np.ndarray:
    """The file offsets of every byte of ``array[index]`` for a C-order `array` stored at `start`."""
    elems = np.arange(array.size, dtype=np.int64).reshape(array.shape)[index].ravel()
    b = array.itemsize
    return (start + elems[:, None] * b + np.arange(b, dtype=np.int64)).ravel()


def read_offsets(reads: list[tuple[int, int]]) -> np.ndarray:
    if not reads:
        return np.zeros(0, np.int64)
    return np.sort(np.concatenate([np.arange(o, o + n, dtype=np.int64) for o, n in reads]))


class LoggedFile(ByteSource):
    """A local file read without mapping; every read appended as ``offset length`` to
    ``<log_dir>/<pid>.reads`` (each process its own log)."""

    def __init__(self, path: str, log_dir: str) -> None:
        self._file = FileSource(path, use_mmap=False)
        self.name = f"logged://{path}"
        self._log = os.path.join(log_dir, f"{os.getpid()}.reads")

    @property
    def size(self) -> int:
        return self._file.size

    def _note(self, offset: int, n: int) -> None:
        with open(self._log, "a") as f:
            f.write(f"{offset} {n}\n")

    def view(self, offset: int, length: int) -> memoryview:
        self.check_span(offset, length)
        self._note(offset, length)
        return self._file.view(offset, length)

    def readinto(self, offset: int, out: memoryview | bytearray) -> int:
        self.check_span(offset, len(out))
        self._note(offset, len(out))
        return self._file.readinto(offset, out)

    def close(self) -> None:
        self._file.close()


class LoggedOpener:
    """What each rank opens: `path` through `LoggedFile` (registered in the process that calls it)."""

    def __init__(self, path: Path, log_dir: Path) -> None:
        self.path, self.log_dir = str(path), str(log_dir)

    def __call__(self) -> str:
        log_dir = self.log_dir
        register_scheme("logged", lambda url, **options: LoggedFile(url.split("://", 1)[1], log_dir))
        return f"logged://{self.path}"


def reads_of(log_dir: Path, pid: int) -> list[tuple[int, int]]:
    log = log_dir / f"{pid}.reads"
    if not log.exists():
        return []
    return [(int(a), int(b)) for a, b in (line.split() for line in log.read_text().splitlines())]
