"""What the device gives with O_DIRECT, as the limit of a cold load: the file read into memory
that is already faulted in (the device's speed) and into fresh memory (plus the kernel zeroing
every new page, in the reading threads), at several reader threads and read sizes, the page
cache dropped before each round; and what faulting in fresh memory costs by itself.

    python benchmarks/direct_limit.py FILE [ROUNDS]     (root: it writes /proc/sys/vm/drop_caches)
"""

from __future__ import annotations

import mmap
import os
import resource
import statistics
import sys
import threading
import time

MiB = 1 << 20
CONFIGS = [(2, 16 * MiB), (8, 16 * MiB), (16, 4 * MiB), (64, 1 * MiB)]


def _drop() -> None:
    os.sync()
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("1\n")


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def read_direct(path: str, size: int, threads: int, chunk: int, into: memoryview) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
    nxt = [0]
    lock = threading.Lock()

    def worker() -> None:
        while True:
            with lock:
                off = nxt[0]
                nxt[0] += chunk
            if off >= size:
                return
            n = -(-min(chunk, size - off) // 4096) * 4096
            os.preadv(fd, [into[off : off + n]], off)

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    os.close(fd)


def main(path: str, rounds: int) -> None:
    size = os.path.getsize(path)
    span = -(-size // 4096) * 4096
    warm = mmap.mmap(-1, span)
    warm.madvise(23)  # MADV_POPULATE_WRITE: faulted in once, before any clock
    warm_view = memoryview(warm)
    res: dict[str, list[tuple[float, float]]] = {}
    for _ in range(rounds):
        for threads, chunk in CONFIGS:
            for fresh in (False, True):
                buf = mmap.mmap(-1, span) if fresh else None
                if buf is not None and hasattr(mmap, "MADV_HUGEPAGE"):
                    buf.madvise(mmap.MADV_HUGEPAGE)
                view = memoryview(buf) if buf is not None else warm_view
                _drop()
                c0, t0 = _cpu(), time.perf_counter()
                read_direct(path, size, threads, chunk, view)
                key = f"O_DIRECT, {threads} threads x {chunk // MiB} MiB, {'fresh' if fresh else 'faulted-in'} memory"
                res.setdefault(key, []).append((time.perf_counter() - t0, _cpu() - c0))
                if buf is not None:
                    view.release()
                    buf.close()
        fresh_mem = mmap.mmap(-1, span)
        c0, t0 = _cpu(), time.perf_counter()
        fresh_mem.madvise(23)
        res.setdefault("faulting in fresh memory of the file's size (one thread)", []).append(
            (time.perf_counter() - t0, _cpu() - c0)
        )
        fresh_mem.close()
    for k, v in res.items():
        wall, cpu = statistics.median(x[0] for x in v), statistics.median(x[1] for x in v)
        print(f"{k}: {wall:.3f} s, cpu {cpu:.2f} s, {size / wall / 1e9:.2f} GB/s")
    print(f"load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 3)
