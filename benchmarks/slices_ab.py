"""A rank's slices, interleaved A/B: `paramio.load(rank=, world_size=, split=)` against the
``safetensors`` library's ``safe_open(...).get_slice`` (what a user slicing a checkpoint picks
today) and a full load followed by a NumPy slice copy.

    python benchmarks/slices_ab.py [--size-mib 256] [--world 4] [--rounds 7] [--axis 0,1]

Writes a safetensors model of float32 [rows, 4096] matrices (`--size-mib` in all) into a
temporary folder (warm in the page cache: it was just written), checks that every contender
returns the same bytes for each rank, then times one rank's load per contender in turns
(`settle` before each run, as benchmarks/run.py does; one untimed round first) and prints each
one's median wall time and its ratio to paramio, per axis.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

COLS = 4096
TENSORS = 8


def write_model(folder: Path, size_mib: int) -> Path:
    from safetensors.numpy import save_file

    rows = max(1, (size_mib << 20) // (TENSORS * COLS * 4))
    rng = np.random.default_rng(0)
    tensors = {f"layers.{i}.weight": rng.standard_normal((rows, COLS), dtype=np.float32) for i in range(TENSORS)}
    path = folder / "model.safetensors"
    save_file(tensors, str(path))
    return path


def contenders(path: str, rank: int, world: int, axis: int) -> dict[str, Callable[[], dict[str, np.ndarray]]]:
    from safetensors import safe_open

    import paramio

    def ours() -> dict[str, np.ndarray]:
        return dict(paramio.load(path, rank=rank, world_size=world, split={"*": axis}))  # type: ignore[arg-type]

    def get_slice() -> dict[str, np.ndarray]:
        out = {}
        with safe_open(path, "numpy") as f:
            for key in f.keys():  # noqa: SIM118 -- safe_open is not a mapping
                s = f.get_slice(key)
                n = s.get_shape()[axis] // world
                index = [slice(None)] * len(s.get_shape())
                index[axis] = slice(rank * n, (rank + 1) * n)
                out[key] = s[tuple(index)]
        return out

    def full_then_slice() -> dict[str, np.ndarray]:
        whole = paramio.load(path)
        return {k: np.split(v, world, axis=axis)[rank].copy() for k, v in whole.items()}  # type: ignore[arg-type]

    return {"paramio": ours, "get_slice": get_slice, "full+slice": full_then_slice}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size-mib", type=int, default=256)
    ap.add_argument("--world", type=int, default=4)
    ap.add_argument("--rank", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--axis", default="0,1")
    args = ap.parse_args(argv)
    from cases.common import settle

    with tempfile.TemporaryDirectory() as tmp:
        path = write_model(Path(tmp), args.size_mib)
        size = os.path.getsize(path)
        print(
            f"{size >> 20} MiB safetensors, {TENSORS} float32 [{size // (TENSORS * COLS * 4)}, {COLS}] tensors, "
            f"rank {args.rank} of {args.world}, {args.rounds} rounds, load average {os.getloadavg()[0]:.1f}"
        )
        for axis in (int(a) for a in args.axis.split(",")):
            every = contenders(str(path), args.rank, args.world, axis)
            ref = every["full+slice"]()
            for name, fn in every.items():  # the same bytes from each, or no timing at all
                got = fn()
                assert got.keys() == ref.keys(), name
                for k in ref:
                    assert got[k].shape == ref[k].shape and got[k].tobytes() == ref[k].tobytes(), (name, k)
            wall: dict[str, list[float]] = {c: [] for c in every}
            for r in range(args.rounds + 1):
                for c, fn in every.items():
                    settle(size // args.world)
                    t = time.perf_counter()
                    got = fn()
                    dt = time.perf_counter() - t
                    del got
                    if r:
                        wall[c].append(dt)
            first = statistics.median(wall["paramio"])
            print(f"axis {axis}:")
            for c, times in wall.items():
                w = statistics.median(times)
                print(f"  {c:11} {w * 1e3:8.1f} ms  {w / first:5.2f}x  (min {min(times) * 1e3:.1f} ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
