"""Issue 26's figures, contenders in turns in one process: digests against reading the same bytes,
a verified load against a plain one, conversions storing digests against plain ones, and a
remote diff's bytes on the wire.

    python benchmarks/integrity.py [--size-mib 2048] [--rounds 5] [--md benchmarks/results/integrity.md]

- digest throughput of a model warm in the page cache, per algorithm (``paramio.digest``), against
  ``cat FILE > /dev/null`` (the same bytes read, nothing done with them) and against the
  packages' own single-call hash of the file's bytes (the hashing alone);
- the anonymous memory each digest run holds above the interpreter (a child process per run);
- ``paramio.load(path, verify=True)`` against ``paramio.load(path)``, with the process CPU time
  of each (on few cores the hash's CPU time, not a second pass over memory, sets the ratio's
  floor: (load CPU + hash CPU) / cores);
- ``paramio.convert`` to IRPA: without a record, computing one while copying, and carrying the
  input's (`--no-convert` skips it);
- ``paramio.diff`` of two copies of the model on nginx (loopback) that differ in one tensor, both
  with stored digests: the bytes nginx sent, from its access log, against both headers plus
  that tensor (`--no-remote` skips it; needs nginx and obstore).

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


_PEAK_ANON = """
import re, threading, time
def _anon():
    return int(re.search(r'RssAnon:\\s+(\\d+)', open('/proc/self/status').read()).group(1))
_peak = [_anon()]
_stop = threading.Event()
def _sample():
    while not _stop.is_set():
        _peak[0] = max(_peak[0], _anon())
        time.sleep(0.005)
_t = threading.Thread(target=_sample, daemon=True)
_t.start()
"""


def child_peak_anon(code: str) -> float:
    """Peak anonymous memory (MiB) a child holds while running `code` (sampled every 5 ms), minus
    what the same child holds before it (the interpreter with paramio, numpy and the hash
    packages imported). Peak RSS would count the mapped file's clean pages, which the kernel
    reclaims as page cache; anonymous memory is what the work allocates."""
    probe = "import paramio, paramio.integrity, numpy, blake3, xxhash;"
    run = subprocess.run(
        [
            sys.executable,
            "-c",
            probe
            + _PEAK_ANON
            + "_base = _anon();"
            + code
            + ";_stop.set();_t.join();_peak[0] = max(_peak[0], _anon());print(_peak[0] - _base)",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(run.stdout.split()[-1]) / 1024


def warm(paths: list[Path]) -> None:
    """Read `paths` into the page cache (untimed)."""
    buf = bytearray(16 << 20)
    for path in paths:
        with open(path, "rb", buffering=0) as f:
            while f.readinto(buf):
                pass


def resident(paths: list[Path]) -> float:
    """The fraction of `paths`' bytes in the page cache now."""
    from paramio.sources.file import resident_bytes

    total = sum(p.stat().st_size for p in paths)
    return sum(resident_bytes(p) for p in paths) / total if total else 1.0


#: Each contender's wall seconds per round, from the last `interleaved` call: ratios are taken
#: round by round (both sides ran within seconds of each other, under the same load).
ROUNDS: dict[str, list[float]] = {}


def paired(a: str, b: str) -> str:
    """``median (min-max)`` of the per-round ratios a/b."""
    r = sorted(x / y for x, y in zip(ROUNDS[a], ROUNDS[b], strict=True))
    return f"{statistics.median(r):.2f}x ({r[0]:.2f}-{r[-1]:.2f})"


def interleaved(
    contenders: dict[str, tuple[Callable[[], object], list[Path]]], rounds: int
) -> tuple[dict[str, float], dict[str, float], list[float], int]:
    """Medians of wall and CPU seconds, contenders in turns (one untimed round first), the
    1-minute load average after each round, and how many timed runs were repeated.

    "Warm" is made sure of, not assumed: this machine's page cache is dropped by other work
    (cold-read benchmarks) and reclaimed by the host, so each contender's files are read into
    the cache right before it runs, and a run after which they are not all still resident is
    repeated (up to 5 times)."""
    for fn, _files in contenders.values():  # the imports, the first calls
        fn()
    times: dict[str, list[float]] = {k: [] for k in contenders}
    cpus: dict[str, list[float]] = {k: [] for k in contenders}
    loads: list[float] = []
    repeated = 0
    for _ in range(rounds):
        for name, (fn, files) in contenders.items():
            for _attempt in range(5):
                warm(files)
                cpu: list[float] = []
                wall = timed(fn, cpu)
                if resident(files) >= 0.99:
                    break
                repeated += 1
            times[name].append(wall)
            cpus[name].append(cpu[0])
        loads.append(os.getloadavg()[0])
    ROUNDS.update(times)
    return (
        {k: statistics.median(v) for k, v in times.items()},
        {k: statistics.median(v) for k, v in cpus.items()},
        loads,
        repeated,
    )


def remote_diff(folder: Path, model: Path) -> list[str]:
    """Two copies of `model` on nginx, one tensor changed in the second, both with stored
    digests (xxh3): `paramio.diff` of their URLs, and the bytes nginx sent for it."""
    sys.path.insert(0, str(ROOT / "tests" / "sources"))
    sys.path.insert(0, str(ROOT / "tests" / "remote"))
    try:
        import obstore  # noqa: F401
        from logs import synced_log
        from remote_servers import nginx_binary, run_nginx
    except ImportError as exc:
        return [f"Remote diff skipped: {exc}."]
    import paramio

    binary = nginx_binary()
    if binary is None:
        return ["Remote diff skipped: nginx is not installed."]
    index = paramio.ParameterIndex.open(model)
    floats = [k for k in index.keys() if k.endswith(".weight") and index[k].tensor.dtype == "float32"]  # type: ignore[union-attr]
    victim = floats[len(floats) // 2]  # compared by value: both sides' bytes are read
    changed = [
        e if e.key != victim else paramio.ParameterEntry.splat(e.key, b"\x01\x00\x00\x00", e.length, tensor=e.tensor)
        for e in index.values()
    ]
    with tempfile.TemporaryDirectory(dir=folder) as work, run_nginx(binary, Path(work)) as server:
        os.symlink(model, server.root / "a.safetensors")
        b = server.root / "b.safetensors"
        paramio.write_path(b, changed, attributes=index.attributes, on_loss="ignore")  # record computed anew
        base = len(synced_log(server, server.root))
        t = time.perf_counter()
        report = paramio.diff(f"{server.url}/a.safetensors", f"{server.url}/b.safetensors")
        wall = time.perf_counter() - t
        lines = synced_log(server, server.root)[base:]
        sent = sum(int(line.rsplit(" ", 1)[-1]) for line in lines if line.startswith("GET"))
        heads = []
        for path in (model, b):
            with open(path, "rb") as f:
                heads.append(8 + int.from_bytes(f.read(8), "little"))
        tensor = index[victim].length
    found = [d.key for d in report.differences]
    return [
        f"Remote diff ({model.stat().st_size / 2**30:.1f} GiB each, nginx on loopback, both with xxh3 records, "
        f"{victim!r} changed): differences {found}, {report.by_digest} entries equal by stored digest, "
        f"{len(lines)} requests, {sent:,} bytes sent (headers {heads[0]:,} + {heads[1]:,}, the tensor twice "
        f"{2 * tensor:,}: {sum(heads) + 2 * tensor:,}; the listing reads each header plus 64 KiB ahead), "
        f"{wall:.2f} s.",
    ]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-mib", type=int, default=2048)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--dir", default=None, help="where the model is written (default: a temporary folder)")
    ap.add_argument("--md", default=None, help="write the table here too")
    ap.add_argument("--no-convert", action="store_true", help="skip the conversion timings")
    ap.add_argument("--no-remote", action="store_true", help="skip the remote diff")
    args = ap.parse_args()

    import blake3
    import xxhash

    import paramio
    from paramio.formats.digests import DEFAULT_ALGORITHM

    folder = Path(args.dir or tempfile.mkdtemp(prefix="paramio-integrity-"))
    model = folder / "model.safetensors"
    if not model.exists():
        make_model(model, args.size_mib)
    fast = folder / "model-xxh3.safetensors"  # the same model, its digests stored as xxh3
    if not fast.exists():
        index = paramio.ParameterIndex.open(model)
        paramio.write_path(fast, index.values(), attributes=index.attributes, digests="xxh3")
    bare = folder / "model-bare.safetensors"  # the same model without a record
    if not bare.exists() and not args.no_convert:
        index = paramio.ParameterIndex.open(model)
        paramio.write_path(bare, index.values(), attributes=index.attributes, digests=False)
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

    m, f = [model], [fast]
    contenders: dict[str, tuple[Callable[[], object], list[Path]]] = {
        "cat > /dev/null": (lambda: subprocess.run(["cat", str(model)], stdout=subprocess.DEVNULL, check=True), m),
        "paramio.digest blake3": (lambda: paramio.digest(model, "blake3"), m),
        "paramio.digest xxh3": (lambda: paramio.digest(model, "xxh3"), m),
        "paramio.digest sha256": (lambda: paramio.digest(model, "sha256"), m),
        "blake3 package, whole file, all cores": (whole(lambda: blake3.blake3(max_threads=blake3.blake3.AUTO)), m),
        "xxhash package, whole file": (whole(xxhash.xxh3_128), m),
    }
    med, cpu, loads, repeated = interleaved(contenders, args.rounds)
    # The loads in turns of their own (each allocates 2 GiB; mixed with the digests above, one
    # run saw a plain load take 8 s of which 6 s CPU, once, in the kernel).
    # Each verified load against a plain load of the same file (the page cache's layout of two
    # files can differ: one run saw the same plain load 20% apart between them).
    loading: dict[str, tuple[Callable[[], object], list[Path]]] = {
        "load": (lambda: paramio.load(model), m),
        "load verify=True, blake3 record": (lambda: paramio.load(model, verify=True), m),
        "load, xxh3 file": (lambda: paramio.load(fast), f),
        "load verify=True, xxh3 record": (lambda: paramio.load(fast, verify=True), f),
    }
    lmed, lcpu, lloads, lrepeated = interleaved(loading, 2 * args.rounds + 1)
    plain = {"load verify=True, blake3 record": "load", "load verify=True, xxh3 record": "load, xxh3 file"}
    load_ratio = {k: paired(k, base) for k, base in plain.items()}
    med.update(lmed)
    cpu.update(lcpu)
    loads += lloads
    repeated += lrepeated
    rss = {alg: child_peak_anon(f"paramio.digest({str(model)!r}, {alg!r})") for alg in ("blake3", "xxh3", "sha256")}
    gbs = lambda s: size / s / 1e9  # noqa: E731
    lines = [
        f"Issue 26 figures, {time.strftime('%Y-%m-%d %H:%M')}: {os.cpu_count()} CPUs, {platform.machine()}, Python "
        f"{platform.python_version()}, {size / 2**20:.0f} MiB safetensors warm in the page cache, median of "
        f"{args.rounds} rounds, contenders in turns, 1-minute load average {min(loads):.1f}-{max(loads):.1f} "
        f"during the rounds ({repeated} runs repeated: the file left the page cache during them). "
        f"The default algorithm is {DEFAULT_ALGORITHM}. "
        "Command: `python benchmarks/integrity.py`.",
        "",
        f"Ratios of the loads: the median of the per-round ratios (their range), {2 * args.rounds + 1} rounds.",
        "",
        "| case | time | GB/s | ratio | peak anonymous memory above the interpreter |",
        "|---|---:|---:|---:|---:|",
    ]
    cat = med["cat > /dev/null"]
    for name in contenders:
        alg = name.split()[-1] if name.startswith("paramio.digest") else None
        ratio = f"{cat / med[name]:.2f}x read speed" if name != "cat > /dev/null" else "1 (the read)"
        mem = f"{rss[alg]:.1f} MiB" if alg in rss else "-"
        lines.append(f"| {name} | {med[name] * 1e3:.0f} ms | {gbs(med[name]):.2f} | {ratio} | {mem} |")
    for name, base in plain.items():
        lines.append(
            f"| {name} vs load | {med[name] * 1e3:.0f} vs {med[base] * 1e3:.0f} ms "
            f"(CPU {cpu[name] * 1e3:.0f} vs {cpu[base] * 1e3:.0f} ms: {cpu[name] / cpu[base]:.2f}x) | - "
            f"| {load_ratio[name]} | - |"
        )
    if not args.no_convert:
        out = folder / "converted.irpa"

        def convert(src: Path, **kw: object) -> Callable[[], object]:
            def run() -> object:
                index = paramio.ParameterIndex.open(src)
                paramio.write_path(out, index.values(), attributes=index.attributes, **kw)
                return None

            return run

        conversions: dict[str, tuple[Callable[[], object], list[Path]]] = {
            "convert to IRPA, no record": (convert(bare), [bare]),
            "convert to IRPA, xxh3 record computed while copying": (convert(bare, digests="xxh3"), [bare]),
            "convert to IRPA, blake3 record computed while copying": (convert(bare, digests="blake3"), [bare]),
            "convert to IRPA, carrying the input's record": (lambda: paramio.convert(model, out), [model]),
            "digest pass, then convert (the old way, xxh3)": (
                lambda: (paramio.digest(bare, "xxh3"), convert(bare)()),
                [bare],
            ),
        }
        cmed, ccpu, cloads, crepeated = interleaved(conversions, max(3, args.rounds // 2))
        base = cmed["convert to IRPA, no record"]
        lines += [
            "",
            f"Conversions (safetensors -> IRPA, fsynced, same disk; load average {min(cloads):.1f}-{max(cloads):.1f}; "
            f"{crepeated} runs repeated):",
            "",
            "| case | time | CPU | ratio to no record |",
            "|---|---:|---:|---:|",
        ]
        for name in conversions:
            lines.append(
                f"| {name} | {cmed[name] * 1e3:.0f} ms | {ccpu[name] * 1e3:.0f} ms | {cmed[name] / base:.2f}x |"
            )
        out.unlink(missing_ok=True)
    if not args.no_remote:
        lines += ["", *remote_diff(folder, fast)]
    text = "\n".join(lines) + "\n"
    print(text)
    print(json.dumps({k: v for k, v in med.items()}, indent=1), file=sys.stderr)
    if args.md:
        Path(args.md).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
