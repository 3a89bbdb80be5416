"""Many threads reading one archive at once: every byte they get is right."""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path

import numpy as np

import paramio

THREADS = 16
SECONDS = 2.0
ENTRIES = 64


def _expected(i: int) -> np.ndarray:
    return (np.arange(1000 + 97 * i, dtype=np.uint32) * 2654435761 + i).astype(np.uint32)


def test_sixteen_threads_read_random_entries(tmp_path: Path) -> None:
    index = paramio.ParameterIndex()
    for i in range(ENTRIES):
        index.add_array(f"e{i}", _expected(i))
    index.add_splat("splat", np.uint32(0xDEADBEEF), 4 * 4096)
    path = tmp_path / "c.irpa"
    index.create_archive_file(str(path))
    shared = paramio.ParameterIndex.open(str(path))  # one index, one mapping, shared by all threads
    errors: list[str] = []
    counts = [0] * THREADS
    stop = time.monotonic() + SECONDS

    def worker(t: int) -> None:
        rng = random.Random(t)
        try:
            while time.monotonic() < stop:
                i = rng.randrange(ENTRIES + 1)
                if i == ENTRIES:
                    e = shared["splat"]
                    got = np.frombuffer(e.read(), dtype=np.uint32)
                    if not bool(np.all(got == 0xDEADBEEF)):
                        errors.append(f"thread {t}: splat wrong")
                    continue
                e = shared[f"e{i}"]
                want = _expected(i)
                how = rng.randrange(4)
                if how == 0:
                    got = e.to_numpy()
                elif how == 1:
                    got = np.frombuffer(e.read(), dtype=np.uint32)
                elif how == 2:
                    got = e.to_numpy(copy=True)
                else:
                    buf = np.empty_like(want)
                    start = rng.randrange(len(want))
                    e.readinto(buf[start:].view(np.uint8), offset=start * 4)
                    got, want = buf[start:], want[start:]
                if not np.array_equal(got, want):
                    errors.append(f"thread {t}: entry e{i} read {how} wrong")
                counts[t] += 1
        except Exception as exc:  # noqa: BLE001 - report it in the main thread
            errors.append(f"thread {t}: {type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(THREADS)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=SECONDS + 30)
    assert not errors, errors[:5]
    assert all(c > 0 for c in counts), counts
