"""Opening and reading a many-shard set: one source tree against another, interleaved.

    python benchmarks/sets_open.py --other /path/to/other/src [--shards 400] [--rounds 5]

Writes an IRPA set and a safetensors set of `--shards` shards (one 4 KiB tensor each), then, for
each round, runs the same child under this tree's ``src`` and under ``--other`` (A B A B ...):
open the set from its manifest, read every tensor (a NumPy view and a sum), close. Prints the
median seconds of each and the ratio. The child is a fresh interpreter each time (imports are
not timed: the clock starts after ``import paramio``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = """
import sys, time
import numpy as np
from paramio.formats.registry import read_path
t = time.perf_counter()
contents = read_path(sys.argv[1])
total = 0.0
for e in contents.entries:
    total += float(e.to_numpy().sum())
print(time.perf_counter() - t)
"""


def _run(src: str, path: Path) -> float:
    env = dict(os.environ, PYTHONPATH=src)
    out = subprocess.run([sys.executable, "-c", CHILD, str(path)], env=env, capture_output=True, text=True, check=True)
    return float(out.stdout.strip())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--other", required=True, help="the other tree's src folder (e.g. main's)")
    parser.add_argument("--shards", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    here = str(Path(__file__).resolve().parent.parent / "src")
    sys.path.insert(0, here)
    import numpy as np

    import paramio
    from paramio import ParameterIndex

    with tempfile.TemporaryDirectory() as tmp:
        index = ParameterIndex()
        for i in range(args.shards):
            index.add_array(f"w{i}", np.full(1024, i, np.float32))
        for ext in (".irpa", ".safetensors"):
            paramio.write_path(Path(tmp) / f"m{ext}", list(index.values()), max_shard_size=4096, durable=False)
            manifest = Path(tmp) / f"m{ext}.index.json"
            ours: list[float] = []
            theirs: list[float] = []
            for _ in range(args.rounds):
                ours.append(_run(here, manifest))
                theirs.append(_run(args.other, manifest))
            a, b = statistics.median(ours), statistics.median(theirs)
            print(
                f"{ext}: {args.shards} shards, this tree {a * 1000:.1f} ms, other {b * 1000:.1f} ms, ratio {a / b:.2f}"
            )


if __name__ == "__main__":
    main()
