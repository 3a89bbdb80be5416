"""paramio benchmarks: every figure is a ratio against a peer measured in the same run.

    python benchmarks/run.py [--quick] [--json out.json] [--md out.md] [--only P1,P3]
                             [--size-mib N] [--dir DIR] [--repeat N]

Cases (see ``benchmarks/cases/``): P1 convert to IRPA, P2 open + list keys, P3 read every tensor,
P4 zero-copy typed views, P5 peak RSS while converting, P6 GPU (only with CUDA), P7 write arrays
from memory, P3' the loader into host arrays (time, peak RSS per budget, time to first tensor),
P8 every tensor from S3 (s3rver, moto; nginx) on loopback into host arrays, P9 the loader into IREE device arrays. A case whose
format paramio cannot yet read is reported as "skipped (format not available)". Data is generated
in a temporary folder under --dir (default: the system temp folder; say whether it is tmpfs) and
removed afterwards. `--json` writes a list of ``{name, paramio_s, peer, peer_s, ratio, unit, note}``.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import json
import os
import platform
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cases.common import Context, Record, skipped  # noqa: E402

CASES = {
    "P1": "cases.p1_convert",
    "P2": "cases.p2_index",
    "P3": "cases.p3_read",
    "P4": "cases.p4_view",
    "P5": "cases.p5_rss",
    "P6": "cases.p6_gpu",
    "P7": "cases.p7_write",
    "P8": "cases.p8_remote",
    "P3'": "cases.p3b_load",
    "P9": "cases.p9_iree",
    "P11": "cases.p11_load",
}


def _fs_type(path: Path) -> str:
    """The filesystem type holding `path` (from /proc/mounts), e.g. tmpfs or ext4."""
    try:
        best = ("", "?")
        real = str(path.resolve())
        with open("/proc/mounts") as f:
            for line in f:
                parts = line.split()
                mnt, fstype = parts[1], parts[2]
                if (real == mnt or real.startswith(mnt.rstrip("/") + "/")) and len(mnt) > len(best[0]):
                    best = (mnt, fstype)
        return best[1]
    except OSError:
        return "?"


def _fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "s":
        return f"{value * 1e3:.2f} ms" if value < 1 else f"{value:.3f} s"
    return f"{value:.1f} {unit}"


def markdown(records: list[Record], header: str) -> str:
    lines = [header, "", "| case | paramio | peer | peer time | paramio / peer |", "|---|---:|---|---:|---:|"]
    for r in records:
        ratio = f"{r.ratio:.2f}x" if r.ratio is not None else (r.note or "-")
        note = f" ({r.note})" if r.note and r.ratio is not None else ""
        lines.append(
            f"| {r.name}{note} | {_fmt(r.paramio_s, r.unit)} | {r.peer} | {_fmt(r.peer_s, r.unit)} | {ratio} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small sizes; under a minute on 2 cores")
    ap.add_argument("--json", help="write the records as JSON here")
    ap.add_argument("--md", help="write the markdown table here")
    ap.add_argument("--only", help="comma-separated case ids (P1..P7, P3', P9), e.g. P1,P3")
    ap.add_argument("--size-mib", type=int, help="model size for P1/P3/P4/P5/P7 (default 2048; 32 with --quick)")
    ap.add_argument("--repeat", type=int, help="timed runs per measurement (median; default 5, 3 with --quick)")
    ap.add_argument("--dir", help="where to generate data (default: the system temp folder)")
    ap.add_argument("--keep", action="store_true", help="keep the generated data")
    args = ap.parse_args(argv)

    size = args.size_mib or (32 if args.quick else 2048)
    repeat = args.repeat or (3 if args.quick else 5)
    parent = Path(args.dir or tempfile.gettempdir())
    parent.mkdir(parents=True, exist_ok=True)
    need = size * 4 * (1 << 20)
    free = shutil.disk_usage(parent).free
    if free < need:
        print(f"not enough space in {parent}: need about {need >> 20} MiB, have {free >> 20} MiB", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="paramio-bench-", dir=parent))
    fstype = _fs_type(work)
    wanted = [c.strip().upper() for c in args.only.split(",")] if args.only else list(CASES)
    unknown = [c for c in wanted if c not in CASES]
    if unknown:
        print(f"unknown case(s): {', '.join(unknown)}; known: {', '.join(CASES)}", file=sys.stderr)
        return 2
    ctx = Context(dir=work, quick=args.quick, size_mib=size, repeat=repeat)
    command = "python benchmarks/run.py " + " ".join(argv if argv is not None else sys.argv[1:])
    header = (
        f"paramio benchmarks, {datetime.date.today().isoformat()}: {os.cpu_count()} CPUs, "
        f"{platform.machine()}, Python {platform.python_version()}, data in {work.parent} ({fstype}, files warm in "
        f"the page cache), median of {repeat}.\nCommand: `{command.strip()}`. Ratio = paramio / peer: below 1 is better."
    )
    print(header, file=sys.stderr)
    records: list[Record] = []
    t0 = time.perf_counter()
    try:
        for case in wanted:
            mod = importlib.import_module(CASES[case])
            try:
                records.extend(mod.run(ctx))
            except Exception as exc:  # one case failing must not hide the others
                traceback.print_exc()
                records.append(skipped(f"{case} failed", "-", f"error: {type(exc).__name__}: {exc}"))
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    table = markdown(records, header)
    print(table)
    print(f"total {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    if args.json:
        Path(args.json).write_text(json.dumps([r.as_json() for r in records], indent=1) + "\n")
    if args.md:
        Path(args.md).write_text(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
