"""Issue 28's figures: the same convert on the one-machine path and on Ray with 1 and 2 workers,
in turns in one run, and the driver's memory while planning sets of up to 100,000 tensors.

    python benchmarks/scaleout.py [--size-mib 2048] [--rounds 3] [--md benchmarks/results/scaleout.md]

- **convert**: a safetensors set of `--size-mib` MiB (members of 256 MiB, float32 and bfloat16
  tensors) to an IRPA set with ``max_shard_size=256MiB`` (one engine task per output member):
  ``paramio.convert`` (one machine) against ``paramio.scaleout.convert.convert_job(...,
  engine="ray")`` on a local cluster of one node of one CPU ("1 worker") and one of two nodes of
  one CPU each ("2 workers"). Both clusters are started once, before timing, as a user's cluster
  is already running; each timed call connects (``ray.init``) untimed and includes planning,
  scheduling, the tasks and the commit. Contenders run in turns (the order rotates each round)
  after one untimed round; medians, throughput of input bytes, ratio to the one-machine path.
  Each task's own throughput (bytes read over the task's seconds) is what the 400 GB model in
  docs/scale-out.md takes as a worker's rate.
- **plan memory**: in a fresh interpreter per size, a synthetic safetensors file of N tensors
  whose data is a hole (sparse: only the header is real; planning reads only headers) is planned
  as a convert to an IRPA set (``ConvertJob.plan``) and as a multi-host load
  (``paramio.scaleout.plan_ranks`` with a rank split): the peak resident memory above the
  interpreter after imports, the seconds, the tasks and the bytes of their arguments as Ray
  ships them (cloudpickle).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "scaleout"))

MEMBER = 256 << 20


def make_set(folder: Path, size_mib: int) -> Path:
    """A safetensors set of about `size_mib` MiB in members of 256 MiB; returns its index."""
    import ml_dtypes

    import paramio

    index_path = folder / "model.safetensors.index.json"
    if index_path.exists():
        return index_path
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    base = rng.standard_normal(1 << 20).astype(np.float32)
    index = paramio.ParameterIndex()
    done, layer = 0, 0
    while done < size_mib << 20:
        dtype = np.float32 if layer % 2 == 0 else ml_dtypes.bfloat16
        w = np.resize(base, 4096 * (4096 if dtype == np.float32 else 8192)).astype(dtype).reshape(4096, -1)
        index.add_array(f"layers.{layer}.weight", w)
        index.add_array(f"layers.{layer}.norm", np.ones(4096, np.float32))
        done += w.nbytes + 4096 * 4
        layer += 1
    paramio.write_path(index_path.parent / "model.safetensors", index.values(), max_shard_size=MEMBER)
    return index_path


#: A driver process: connects once (to a cluster, or not at all for the one-machine path), then
#: runs each ``SRC OUT`` line it reads as one convert and prints its seconds (and, on Ray, each
#: task's seconds and bytes) as one JSON line, as a user's long-lived driver would.
_DRIVER = textwrap.dedent(
    """
    import json, sys, time
    import paramio
    address = sys.argv[1]
    if address != "local":
        import ray
        from paramio.scaleout.convert import convert_job
        ray.init(address=address, logging_level="ERROR", log_to_driver=False)
    print("ready", flush=True)
    for line in sys.stdin:
        src, out, member = line.split()
        t = time.perf_counter()
        if address == "local":
            paramio.convert(src, out, max_shard_size=int(member))
            tasks = []
        else:
            _, report = convert_job(src, out, engine="ray", max_shard_size=int(member))
            tasks = [(r.seconds, r.bytes_read) for r in report.results]
        print(json.dumps({"seconds": time.perf_counter() - t, "tasks": tasks}), flush=True)
    """
)


class Driver:
    def __init__(self, address: str, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _DRIVER, address],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**env, "PYTHONPATH": str(ROOT / "src")},
        )
        assert self.proc.stdout is not None
        if self.proc.stdout.readline().strip() != "ready":
            raise RuntimeError(f"the driver for {address} did not start")

    def convert(self, src: Path, out: Path) -> dict[str, object]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(f"{src} {out} {MEMBER}\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the driver ended ({self.proc.wait()})")
        got: dict[str, object] = json.loads(line)
        return got

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(60)


def bench_convert(src: Path, work: Path, rounds: int) -> dict[str, object]:
    from ray_cluster import ray_env, run_ray_cluster

    import paramio

    total = sum(e.length for e in paramio.ParameterIndex.open(str(src)).values())
    times: dict[str, list[float]] = {"local": [], "ray1": [], "ray2": []}
    first: dict[str, float] = {}
    task_rates: dict[str, list[float]] = {"ray1": [], "ray2": []}
    #: 1 worker: the job's seconds less its tasks' own (planning, scheduling, the commit).
    overhead: list[float] = []
    tasks: dict[str, int] = {}
    with run_ray_cluster(num_nodes=1) as one, run_ray_cluster(num_nodes=2) as two:
        drivers = {
            "local": Driver("local", ray_env()),
            "ray1": Driver(one.address, one.env),
            "ray2": Driver(two.address, two.env),
        }
        try:
            order = list(times)
            for r in range(rounds + 1):
                for name in order:
                    out = work / name
                    shutil.rmtree(out, ignore_errors=True)
                    out.mkdir()
                    got = drivers[name].convert(src, out / "model.irpa")
                    shutil.rmtree(out, ignore_errors=True)
                    seconds = float(got["seconds"])  # type: ignore[arg-type]
                    busy = sum(t for t, _ in got["tasks"])  # type: ignore[attr-defined]
                    print(f"round {r} {name}: {seconds:.2f} s (tasks' own seconds, summed: {busy:.2f})", flush=True)
                    if r == 0:
                        first[name] = seconds  # the driver's first job: Ray starts its workers
                        continue
                    times[name].append(seconds)
                    if name == "ray1":
                        overhead.append(seconds - busy)
                    if name != "local":
                        done = got["tasks"]
                        assert isinstance(done, list)
                        tasks[name] = len(done)
                        task_rates[name] += [b / t for t, b in done if t > 0]
                order = order[1:] + order[:1]
        finally:
            for d in drivers.values():
                d.close()
    med = {k: statistics.median(v) for k, v in times.items()}
    # Each round's ratio to the one-machine run of the same round (seconds apart): robust to the
    # load other work puts on the machine, which moves the three together.
    paired = {k: statistics.median(a / b for a, b in zip(v, times["local"], strict=True)) for k, v in times.items()}
    return {
        "overhead_1_worker_s": overhead,
        "paired_ratio_median": paired,
        "bytes": total,
        "rounds": rounds,
        "first_job_s": first,
        "seconds": times,
        "median_s": med,
        "gb_per_s": {k: total / v / 1e9 for k, v in med.items()},
        "ratio_to_local": {k: med[k] / med["local"] for k in med},
        "tasks": tasks,
        "task_gb_per_s_median": {k: statistics.median(v) / 1e9 for k, v in task_rates.items() if v},
    }


_PLAN_CHILD = textwrap.dedent(
    """
    import json, os, sys, time
    import paramio, paramio.scaleout
    from paramio.formats.registry import prepare_write
    from paramio.index.convert import plan_conversion
    from paramio.scaleout.convert import ConvertJob
    from paramio.scaleout import RankSplit, plan_ranks
    import ray.cloudpickle as cloudpickle

    def status(field):  # kB -> bytes; VmHWM is this process's own peak (exec starts a new one)
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
        raise KeyError(field)

    path, what = sys.argv[1], sys.argv[2]
    base = status("VmRSS")
    t = time.perf_counter()
    if what == "convert":
        plan = plan_conversion([path])
        fmt, out, prepared, _ = prepare_write(os.path.join(os.path.dirname(path), "out.irpa"), plan.entries,
                                              attributes=plan.attributes, max_shard_size=8 << 20)
        job = ConvertJob(out, prepared.entries, format=fmt.name, attributes=prepared.attributes,
                         writer_options={"max_shard_size": 8 << 20}, source_options={})
        made = job.plan()
    else:
        made = plan_ranks(path, RankSplit(8, {"*.w": 0}))
    seconds = time.perf_counter() - t
    peak = status("VmHWM") - base
    shipped = sum(len(cloudpickle.dumps(x)) for x in made)
    print(json.dumps({"seconds": seconds, "peak_above_imports": max(0, peak), "tasks": len(made), "shipped": shipped}))
    """
)


def synthetic(path: Path, n: int) -> None:
    """A safetensors file of `n` float32 [16, 16] tensors (every 8th named ``*.w``) whose data is
    a hole: the header is written, the data region only sized (sparse)."""
    header: dict[str, object] = {}
    off = 0
    for i in range(n):
        header[f"layers.{i // 8}.t{i % 8}{'.w' if i % 8 == 0 else ''}"] = {
            "dtype": "F32",
            "shape": [16, 16],
            "data_offsets": [off, off + 1024],
        }
        off += 1024
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    with open(path, "wb") as f:
        f.write(len(raw).to_bytes(8, "little"))
        f.write(raw)
        f.truncate(8 + len(raw) + off)


def bench_plan_memory(work: Path, sizes: list[int]) -> list[dict[str, object]]:
    rows = []
    for n in sizes:
        path = work / f"synthetic-{n}.safetensors"
        synthetic(path, n)
        for what in ("convert", "load"):
            done = subprocess.run(
                [sys.executable, "-c", _PLAN_CHILD, str(path), what],
                capture_output=True,
                text=True,
                timeout=900,
                env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
            )
            if done.returncode != 0:
                raise RuntimeError(done.stderr)
            row = json.loads(done.stdout.strip().splitlines()[-1])
            row.update(tensors=n, plan=what, header_bytes=int.from_bytes(path.read_bytes()[:8], "little"))
            rows.append(row)
            print(row, flush=True)
        path.unlink()
    return rows


def markdown(convert: dict[str, object] | None, plans: list[dict[str, object]], conditions: str) -> str:
    lines = ["# Scale-out on Ray: measured figures (issue 28)", "", conditions, ""]
    if convert is not None:
        med: dict[str, float] = convert["median_s"]  # type: ignore[assignment]
        gbs: dict[str, float] = convert["gb_per_s"]  # type: ignore[assignment]
        ratio: dict[str, float] = convert["ratio_to_local"]  # type: ignore[assignment]
        tasks: dict[str, int] = convert["tasks"]  # type: ignore[assignment]
        rates: dict[str, float] = convert["task_gb_per_s_median"]  # type: ignore[assignment]
        paired: dict[str, float] = convert["paired_ratio_median"]  # type: ignore[assignment]
        names = {"local": "one machine (`paramio.convert`)", "ray1": "Ray, 1 worker", "ray2": "Ray, 2 workers"}
        lines += [
            f"## Convert: {convert['bytes'] / 2**30:.2f} GiB safetensors set -> IRPA set (256 MiB members)",
            "",
            f"Medians of {convert['rounds']} rounds after an untimed one, contenders in turns.",
            "",
            "| path | median s | GB/s | ratio of medians | median of per-round ratios | tasks | a task's GB/s (median) |",
            "|---|---|---|---|---|---|---|",
        ]
        for k in med:
            lines.append(
                f"| {names[k]} | {med[k]:.2f} | {gbs[k]:.3f} | {ratio[k]:.2f}x | {paired[k]:.2f}x | {tasks.get(k, '-')} | "
                + (f"{rates[k]:.3f}" if k in rates else "-")
                + " |"
            )
        firsts: dict[str, float] = convert["first_job_s"]  # type: ignore[assignment]
        over: list[float] = convert["overhead_1_worker_s"]  # type: ignore[assignment]
        lines += [
            "",
            f"With 1 worker the tasks run one after another, so a job's seconds less its tasks' own seconds are"
            f" the engine's overhead (planning, scheduling, the commit): median {statistics.median(over):.2f} s"
            f" (rounds: {', '.join(f'{x:.2f}' for x in over)}), {statistics.median(over) / med['local']:.2f}x"
            " of the one-machine median; the rest of the difference is the tasks' own time, which moves"
            " with the machine's load as the one-machine runs do.",
        ]
        rounds_s: dict[str, list[float]] = convert["seconds"]  # type: ignore[assignment]
        lines += [
            "",
            "A driver's first job (the untimed round) also waits for Ray to start its worker processes: "
            + ", ".join(f"{names[k]} {v:.2f} s" for k, v in firsts.items())
            + ".",
            "",
            "All rounds (s): " + json.dumps({k: [round(x, 2) for x in v] for k, v in rounds_s.items()}),
            "",
        ]
    if plans:
        lines += [
            "## The driver while planning (headers only)",
            "",
            "| tensors | header bytes | plan | seconds | peak memory above imports | tasks | bytes shipped to workers |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in plans:
            lines.append(
                f"| {r['tensors']:,} | {r['header_bytes']:,} | {r['plan']} | {r['seconds']:.2f} | "
                f"{r['peak_above_imports'] / 2**20:.1f} MiB | {r['tasks']} | {r['shipped']:,} |"
            )
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size-mib", type=int, default=2048)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--work", default="", help="folder for the inputs and outputs (default: a temporary one)")
    ap.add_argument("--plan-sizes", default="1000,10000,100000")
    ap.add_argument("--skip-convert", action="store_true")
    ap.add_argument("--md", default="")
    ap.add_argument("--json", default="")
    args = ap.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="paramio-scaleout-"))
    work.mkdir(parents=True, exist_ok=True)
    conditions = (
        f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; files on the local disk, warm in the page cache; "
        "the machine shared with other work (figures are from one run, contenders in turns)."
    )
    convert = None
    if not args.skip_convert:
        src = make_set(work / "src", args.size_mib)
        convert = bench_convert(src, work, args.rounds)
    plans = bench_plan_memory(work, [int(x) for x in args.plan_sizes.split(",") if x])
    text = markdown(convert, plans, conditions)
    print(text)
    if args.md:
        Path(args.md).write_text(text)
    if args.json:
        Path(args.json).write_text(json.dumps({"convert": convert, "plans": plans}, indent=2))


if __name__ == "__main__":
    main()
