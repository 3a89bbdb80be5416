"""The listing itself: ``paramio dump FILE`` in one process, first run and warm, and open + ``keys()``
/ ``items()``, for IRPA, safetensors and GGUF files; one or two checkouts, interleaved.

    python benchmarks/listing.py [--src DIR [--src DIR]] [--rounds N] [--entries 1000,10000]

Files: what `startup._make_archive` writes (untyped entries written to IRPA, then converted to
safetensors and GGUF, so they carry paramio's ``paramio.carried`` records: `startup.py`'s case),
and typed files written by the peers: safetensors by the ``safetensors`` package (f32 and bf16
tensors of four shapes) and GGUF by the ``gguf`` package (f32 and f16).

Each round starts one fresh process per (checkout, file), the checkouts in turn, so a load that
comes and goes hits them alike. A process imports ``paramio.cli.main`` (as the console script
does), then times ``main(['dump', FILE])`` with standard output redirected: its first run (lazy
imports and first calls included) and the least of 20 more (warm); then the least of 10
``ParameterIndex.open(FILE).keys()`` and of 10 ``.items()`` (P2's measures). NumPy is not
imported before (a dump imports none below 8,192 entries; the readers' NumPy paths take larger
tables). Medians over the rounds are printed, in ms, with the ratio of the second checkout to
the first.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from startup import _make_archive  # noqa: E402

_CHILD = r"""
import contextlib, io, json, sys, time
t0 = time.perf_counter()
from paramio.cli.main import main
imported = time.perf_counter() - t0
path = sys.argv[1]

def dump():
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["dump", path]) == 0

t0 = time.perf_counter(); dump(); first = time.perf_counter() - t0
warm = []
for _ in range(20):
    t0 = time.perf_counter(); dump(); warm.append(time.perf_counter() - t0)
from paramio.index.index import ParameterIndex
keys, items = [], []
for _ in range(10):
    t0 = time.perf_counter(); ParameterIndex.open(path).keys(); keys.append(time.perf_counter() - t0)
for _ in range(10):
    t0 = time.perf_counter(); ParameterIndex.open(path).items(); items.append(time.perf_counter() - t0)
print(json.dumps({"import": imported, "first": first, "warm": min(warm), "keys": min(keys), "items": min(items)}))
"""

_MEASURES = ("first", "warm", "keys", "items")


def _typed_files(folder: Path, entries: int) -> list[Path]:
    """A typed safetensors file (the ``safetensors`` package) and GGUF (the ``gguf`` package)."""
    out: list[Path] = []
    try:
        import ml_dtypes
        import numpy as np
        from safetensors.numpy import save_file
    except ImportError:
        pass
    else:
        shapes = [(4, 8), (16,), (2, 3, 4), (8, 8)]
        tensors = {
            f"model.layers.{i}.weight": np.zeros(shapes[i % 4], np.float32 if i % 2 else ml_dtypes.bfloat16)
            for i in range(entries)
        }
        path = folder / f"typed{entries}.safetensors"
        save_file(tensors, str(path), metadata={"format": "pt"})
        out.append(path)
    try:
        import gguf
        import numpy as np
    except ImportError:
        return out
    path = folder / f"typed{entries}.gguf"
    w = gguf.GGUFWriter(str(path), "llama")
    for i in range(entries):
        shape = [(4, 32), (32,), (2, 2, 32), (8, 32)][i % 4]
        w.add_tensor(f"blk.{i}.attn.weight", np.zeros(shape, np.float32 if i % 2 else np.float16))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    out.append(path)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--src", action="append", help="paramio sources (twice: two checkouts, interleaved)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--entries", default="1000", help="comma-separated entry counts")
    ap.add_argument("--json", help="write the figures here")
    args = ap.parse_args()
    sources = args.src or [str(Path(__file__).resolve().parents[1] / "src")]
    counts = [int(c) for c in args.entries.split(",")]
    base = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    results: dict[tuple[str, str], dict[str, list[float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        files: list[Path] = []
        for n in counts:
            archive = Path(tmp) / f"k{n}.irpa"
            _make_archive(sources[0], archive, n)
            files += [archive, archive.with_suffix(".safetensors"), archive.with_suffix(".gguf")]
            files += _typed_files(Path(tmp), n)
        for r in range(args.rounds + 1):  # round 0 warms up (compiled files, page cache)
            for f in files:
                for src in sources:
                    done = subprocess.run(
                        [sys.executable, "-c", _CHILD, str(f)],
                        env={**base, "PYTHONPATH": src},
                        check=True,
                        capture_output=True,
                        text=True,
                    )
                    got = json.loads(done.stdout.strip().splitlines()[-1])
                    if r:
                        row = results.setdefault((f.name, src), {m: [] for m in _MEASURES})
                        for m in _MEASURES:
                            row[m].append(got[m])
    load = os.getloadavg()
    print(
        f"{args.rounds} rounds, python {sys.version.split()[0]}, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
    )
    print("ms, median over rounds: " + ", ".join(f"[{i}] {s}" for i, s in enumerate(sources)))
    header = f"{'file':28}" + "".join(f"{m + f' [{i}]':>12}" for m in _MEASURES for i in range(len(sources)))
    if len(sources) == 2:
        header += "".join(f"{m + ' 1/0':>11}" for m in _MEASURES)
    print(header)
    table = []
    for f in files:
        med = {src: {m: statistics.median(results[(f.name, src)][m]) for m in _MEASURES} for src in sources}
        line = f"{f.name:28}" + "".join(f"{med[s][m] * 1e3:12.2f}" for m in _MEASURES for s in sources)
        if len(sources) == 2:
            a, b = sources
            line += "".join(f"{med[b][m] / med[a][m]:11.2f}" for m in _MEASURES)
        print(line)
        table.append({"file": f.name, "medians_s": med})
    if args.json:
        Path(args.json).write_text(json.dumps({"sources": sources, "rounds": args.rounds, "rows": table}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
