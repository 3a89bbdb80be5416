"""Issue 26's figures, contenders in turns in one process: digests against reading the same bytes,
and a verified load against a plain one.

    python benchmarks/integrity.py [--size-mib 2048] [--rounds 5] [--md benchmarks/results/integrity.md]

- digest throughput of a model warm in the page cache, per algorithm (``paramio.digest``), against
  ``cat FILE > /dev/null`` (the same bytes read, nothing done with them) and against the
  packages' own single-call hash of the file's bytes (the hashing alone);
- the anonymous memory each digest run holds above the interpreter (a child process per run);
- ``paramio.load(path, verify=True)`` against ``paramio.load(path)``, with the process CPU time
  of each (on few cores the hash's CPU time, not a second pass over memory, sets the ratio's
  floor: (load CPU + hash CPU) / cores).

The model is a safetensors file of float32 and bfloat16 tensors (a realistic mix: large
matrices, small norms), written once with digests stored (blake3). Medians of `--rounds`, one
untimed round first; ratios are paramio / peer (below 1 is better).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def make_model(path: Path, size_mib: int) -> None:
    import ml_dtypes

    import paramio

    rng = np.random.default_rng(0)
    index = paramio.ParameterIndex()
    big = 4096 * 4096  # 64 MiB of float32
    done, layer = 0, 0
    while done < size_mib << 20:
        dtype = np.float32 if layer % 2 == 0 else ml_dtypes.bfloat16
        w = rng.standard_normal(big // (1 if dtype == np.float32 else 2) // 8, dtype=np.float32).astype(dtype)
        w = np.resize(w, big if dtype == np.float32 else 2 * big).reshape(4096, -1)
        index.add_array(f"layers.{layer}.weight", w)
        index.add_array(f"layers.{layer}.norm", np.ones(4096, np.float32))
        done += w.nbytes + 4096 * 4
        layer += 1
    paramio.write_path(path, index.values(), digests="blake3")


def timed(fn: Callable[[], object], cpu: list[float] | None = None) -> float:
    """Wall seconds of `fn()`; its process CPU seconds (user + system) appended to `cpu`."""
    c, t = os.times(), time.perf_counter()
    fn()
    wall, c2 = time.perf_counter() - t, os.times()
    if cpu is not None:
        cpu.append(c2.user + c2.system - c.user - c.system)
    return wall


_ANON = "import re;print(int(re.search(r'RssAnon:\\s+(\\d+)', open('/proc/self/status').read()).group(1)))"


def child_anon(code: str) -> float:
    """Anonymous memory (MiB) a child holds after running `code`, minus that of a child importing
    what it imports: the memory the work allocated and kept. (Peak RSS would count the mapped
    file's clean pages, which the kernel reclaims as page cache.)"""
    probe = "import paramio, paramio.integrity, numpy;"
    base = subprocess.run([sys.executable, "-c", probe + _ANON], capture_output=True, text=True, check=True)
    run = subprocess.run([sys.executable, "-c", probe + code + ";" + _ANON], capture_output=True, text=True, check=True)
    return (int(run.stdout.split()[-1]) - int(base.stdout.split()[-1])) / 1024


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-mib", type=int, default=2048)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--dir", default=None, help="where the model is written (default: a temporary folder)")
    ap.add_argument("--md", default=None, help="write the table here too")
    args = ap.parse_args()

    import blake3
    import xxhash

    import paramio

    folder = Path(args.dir or tempfile.mkdtemp(prefix="paramio-integrity-"))
    model = folder / "model.safetensors"
    if not model.exists():
        make_model(model, args.size_mib)
    fast = folder / "model-xxh3.safetensors"  # the same model, its digests stored as xxh3
    if not fast.exists():
        index = paramio.ParameterIndex.open(model)
        paramio.write_path(fast, index.values(), attributes=index.attributes, digests="xxh3")
    size = model.stat().st_size
    data_view = lambda: memoryview(np.memmap(model, dtype=np.uint8, mode="r"))  # noqa: E731

    def whole(h: Callable[[], object]) -> Callable[[], object]:
        def run() -> object:
            hasher = h()
            view = data_view()
            for i in range(0, len(view), 8 << 20):
                hasher.update(view[i : i + (8 << 20)])  # type: ignore[attr-defined]
            return hasher.hexdigest()  # type: ignore[attr-defined]

        return run

    contenders: dict[str, Callable[[], object]] = {
        "cat > /dev/null": lambda: subprocess.run(["cat", str(model)], stdout=subprocess.DEVNULL, check=True),
        "paramio.digest blake3": lambda: paramio.digest(model, "blake3"),
        "paramio.digest xxh3": lambda: paramio.digest(model, "xxh3"),
        "paramio.digest sha256": lambda: paramio.digest(model, "sha256"),
        "blake3 package, whole file, all cores": whole(lambda: blake3.blake3(max_threads=blake3.blake3.AUTO)),
        "xxhash package, whole file": whole(xxhash.xxh3_128),
        "load": lambda: paramio.load(model),
        "load verify=True": lambda: paramio.load(model, verify=True),
        "load verify=True, xxh3 record": lambda: paramio.load(fast, verify=True),
    }
    for fn in contenders.values():  # warm the page cache and the imports
        fn()
    times: dict[str, list[float]] = {k: [] for k in contenders}
    cpus: dict[str, list[float]] = {k: [] for k in contenders}
    for _ in range(args.rounds):
        for name, fn in contenders.items():
            times[name].append(timed(fn, cpus[name]))
    med = {k: statistics.median(v) for k, v in times.items()}
    cpu = {k: statistics.median(v) for k, v in cpus.items()}
    rss = {alg: child_anon(f"paramio.digest({str(model)!r}, {alg!r})") for alg in ("blake3", "xxh3", "sha256")}
    gbs = lambda s: size / s / 1e9  # noqa: E731
    lines = [
        f"Issue 26 figures, {time.strftime('%Y-%m-%d')}: {os.cpu_count()} CPUs, {platform.machine()}, Python "
        f"{platform.python_version()}, {size / 2**20:.0f} MiB safetensors warm in the page cache, median of {args.rounds} "
        f"rounds, contenders in turns, load average {os.getloadavg()[0]:.1f} at the end. "
        "Command: `python benchmarks/integrity.py`.",
        "",
        "| case | time | GB/s | ratio | anonymous memory above the interpreter |",
        "|---|---:|---:|---:|---:|",
    ]
    cat = med["cat > /dev/null"]
    for name in contenders:
        if name.startswith("load"):
            continue  # below
        alg = name.split()[-1] if name.startswith("paramio.digest") else None
        ratio = f"{cat / med[name]:.2f}x read speed" if name != "cat > /dev/null" else "1 (the read)"
        mem = f"{rss[alg]:.1f} MiB" if alg in rss else "-"
        lines.append(f"| {name} | {med[name] * 1e3:.0f} ms | {gbs(med[name]):.2f} | {ratio} | {mem} |")
    for name in ("load verify=True", "load verify=True, xxh3 record"):
        lines.append(
            f"| {name} vs load | {med[name] * 1e3:.0f} vs {med['load'] * 1e3:.0f} ms "
            f"(CPU {cpu[name] * 1e3:.0f} vs {cpu['load'] * 1e3:.0f} ms) | - | {med[name] / med['load']:.2f}x | - |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    print(json.dumps({k: v for k, v in med.items()}, indent=1), file=sys.stderr)
    if args.md:
        Path(args.md).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
