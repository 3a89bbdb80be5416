"""Per-entry records: `TensorInfo` and `ParameterEntry` construction, equality, hash, `repr` and
`replace`, one or two checkouts interleaved (a reader makes one of each per entry it lists).

    python benchmarks/records.py [--src DIR [--src DIR]] [--rounds N]

Each round starts one fresh process per checkout, the checkouts in turn (a load that comes and
goes hits them alike); a process times each operation with `timeit` (the least of 5 repeats of
100,000 calls, in ns per call). Medians over the rounds are printed, with the ratio of the second
checkout to the first. A checkout whose `TensorInfo` has no ``replace`` method (a dataclass, before
`paramio.core.records` made it a record) is timed with `dataclasses.replace`, which its callers
used.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

_PROBE = r"""
import json, timeit
from paramio.core.entry import EntryKind, ParameterEntry
from paramio.core.tensor import TensorInfo
from paramio.sources.memory import MemorySource

src = MemorySource(bytes(64))
info = TensorInfo("float32", (2, 3), {})
t = TensorInfo("uint8", (16,))
e = ParameterEntry.data("w", src, 0, 16, tensor=t, origin="safetensors", file_index=3)
if hasattr(TensorInfo, "replace"):
    replace_info = "i.replace(shape=(3, 2))"
else:
    import dataclasses
    replace_info = "dataclasses.replace(i, shape=(3, 2))"
cases = {
    "TensorInfo(dtype, shape)": 'TensorInfo("float32", (4096, 4096))',
    "TensorInfo(dtype, shape, extra)": 'TensorInfo("float32", (4096, 4096), E)',
    "TensorInfo ==": "i == j",
    "TensorInfo hash": "hash(h)",
    "TensorInfo repr": "repr(i)",
    "TensorInfo replace": replace_info,
    "ParameterEntry.data": 'ParameterEntry.data("w", src, 0, 16, tensor=t, origin="safetensors", file_index=3)',
    "ParameterEntry.splat": 'ParameterEntry.splat("s", b"\\1", 16)',
    "ParameterEntry(**keywords)": 'ParameterEntry(key="w", kind=DATA, length=16, source=src)',
    "ParameterEntry.replace": "e.replace(declared_tensor=t)",
}
g = dict(globals(), E={"a": 1}, i=info, j=TensorInfo("float32", (2, 3), {}), h=TensorInfo("f", (1,), ()))
g["DATA"] = EntryKind.DATA
n = 100_000
out = {name: min(timeit.repeat(stmt, globals=g, number=n, repeat=5)) / n * 1e9 for name, stmt in cases.items()}
print(json.dumps(out))
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--src", action="append", help="paramio sources to time (twice: two checkouts, interleaved)")
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    sources = args.src or [str(Path(__file__).resolve().parents[1] / "src")]
    runs: dict[str, list[dict[str, float]]] = {src: [] for src in sources}
    for _ in range(args.rounds):
        for src in sources:
            env = {**os.environ, "PYTHONPATH": src}
            done = subprocess.run([sys.executable, "-c", _PROBE], env=env, capture_output=True, text=True, check=True)
            runs[src].append(json.loads(done.stdout))
    names = list(runs[sources[0]][0])
    print(f"{args.rounds} interleaved rounds, python {sys.version.split()[0]}; ns per call, median of rounds")
    for i, src in enumerate(sources):
        print(f"  [{i}] {src}")
    header = "".join(f"{f'[{i}]':>10}" for i in range(len(sources)))
    print(f"{'operation':34}{header}{'[1]/[0]':>9}" if len(sources) > 1 else f"{'operation':34}{header}")
    for name in names:
        medians = [statistics.median(r[name] for r in runs[src]) for src in sources]
        row = f"{name:34}" + "".join(f"{m:10.0f}" for m in medians)
        if len(sources) > 1:
            row += f"{medians[1] / medians[0]:9.2f}"
        print(row)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
