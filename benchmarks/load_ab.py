"""P3' as an interleaved A/B: `paramio.load` into NumPy against today's P3 loop, many rounds.

    python benchmarks/load_ab.py MODEL.safetensors [--rounds 9] [--order load,plain,dropped,kept]

Contenders, each run once per round in the given order, `settle` before every run (as
benchmarks/run.py does), one untimed round first; prints each one's median wall time and CPU
time (user + system, all threads) and its ratio to the first contender:

- ``load``: ``paramio.load(path)`` (large tensors start on a huge page: `paramio.loading.hostmem`);
- ``plain``: the same loader with large tensors in plain ``np.empty`` arrays (before hostmem);
- ``kept``: ``[e.to_numpy(copy=True) for e in index.values()]``, P3's loop, every array kept;
- ``dropped``: the same loop dropping each array at once (recycles one tensor's memory).

On a shared VM whose load moves absolute times by 2x within minutes, many interleaved rounds in
one process compare better than separate runs of benchmarks/run.py (5 rounds each); run both
orders to see that position in a round does not decide the result.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def contenders(path: str) -> dict[str, Callable[[], object]]:
    import paramio
    from paramio.index.index import ParameterIndex
    from paramio.loading import hostmem, targets

    real = hostmem.huge_page_size

    def placement(huge: Callable[[], int]) -> None:
        targets.huge_page_size = huge  # type: ignore[assignment]
        hostmem.huge_page_size = huge  # type: ignore[assignment]

    def load() -> object:
        placement(real)
        return paramio.load(path)

    def plain() -> object:
        placement(lambda: 0)
        try:
            return paramio.load(path)
        finally:
            placement(real)

    return {
        "load": load,
        "plain": plain,
        "kept": lambda: [e.to_numpy(copy=True) for e in ParameterIndex.open(path).values()],
        "dropped": lambda: sum(e.to_numpy(copy=True).nbytes for e in ParameterIndex.open(path).values()),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--order", default="load,plain,dropped,kept")
    args = ap.parse_args(argv)
    from cases.common import settle

    size = os.path.getsize(args.model)
    every = contenders(args.model)
    order = [c.strip() for c in args.order.split(",")]
    unknown = [c for c in order if c not in every]
    if unknown:
        print(f"unknown contender(s): {', '.join(unknown)}; known: {', '.join(every)}", file=sys.stderr)
        return 2
    wall: dict[str, list[float]] = {c: [] for c in order}
    cpu: dict[str, list[float]] = {c: [] for c in order}
    for r in range(args.rounds + 1):
        for c in order:
            settle(size)
            r0 = resource.getrusage(resource.RUSAGE_SELF)
            t = time.perf_counter()
            got = every[c]()
            dt = time.perf_counter() - t
            r1 = resource.getrusage(resource.RUSAGE_SELF)
            del got
            if r:
                wall[c].append(dt)
                cpu[c].append(r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime)
    first = statistics.median(wall[order[0]])
    print(f"{Path(args.model).name}, {size >> 20} MiB, {args.rounds} rounds, load average {os.getloadavg()[0]:.1f}")
    for c in order:
        w, u = statistics.median(wall[c]), statistics.median(cpu[c])
        print(f"  {c:8} {w * 1e3:8.1f} ms  {w / first:5.2f}x  cpu {u * 1e3:7.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
