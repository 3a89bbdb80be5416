"""Start-up cost of paramio as a process, against a bare interpreter and IREE's C tool.

    python benchmarks/startup.py [--src DIR] [--repeat N] [--entries N] [--json out.json]

Runs, in one process each time and `--repeat` times (median and min reported): ``python -c pass``,
``python -c "import paramio"``, ``paramio --help``, ``paramio which --help``, ``paramio dump --help``, ``paramio dump`` of
an IRPA file of `--entries` entries, and ``iree-dump-parameters`` of the same file. ``paramio`` is
run the way its console script runs it (``from paramio.cli.main import main``) with `--src` on
PYTHONPATH, so one run can measure another checkout (``--src /work/main/src`` for main). Each
figure is also given as a ratio to ``python -c pass`` (and the dump to IREE's dump).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

#: What the ``paramio`` console script does (pyproject ``[project.scripts]``).
_CLI = "import sys; from paramio.cli.main import main; sys.argv[0] = 'paramio'; sys.exit(main())"


def _iree_dump() -> str | None:
    """The native ``iree-dump-parameters`` (the pip console-script wrapper adds a Python start)."""
    try:
        import iree._runtime_libs as libs  # type: ignore[import-not-found]

        native = Path(libs.__file__).parent / "iree-dump-parameters"
        if native.exists():
            return str(native)
    except ImportError:
        pass
    return shutil.which("iree-dump-parameters")


def _time(cmd: list[str], env: dict[str, str], repeat: int) -> tuple[float, float]:
    """(median, min) wall seconds of running `cmd` `repeat` times, after one warm-up run."""
    runs = []
    for i in range(repeat + 1):
        t0 = time.perf_counter()
        subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if i:
            runs.append(time.perf_counter() - t0)
    return statistics.median(runs), min(runs)


def _make_archive(src: str, path: Path, entries: int) -> None:
    code = (
        "import sys, numpy as np, paramio\n"
        "idx = paramio.ParameterIndex()\n"
        f"for i in range({entries}): idx.add_buffer(f'layer.{{i}}.weight', np.full(16, i, np.float32).tobytes())\n"
        "idx.create_archive_file(sys.argv[1])\n"
    )
    subprocess.run([sys.executable, "-c", code, str(path)], env={**os.environ, "PYTHONPATH": src}, check=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--src", default=str(Path(__file__).resolve().parents[1] / "src"), help="paramio sources to time")
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--entries", type=int, default=1000)
    ap.add_argument("--json", help="write the figures here")
    args = ap.parse_args()
    env = {**os.environ, "PYTHONPATH": args.src}
    py = sys.executable
    rows: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory() as tmp:
        archive = Path(tmp) / f"k{args.entries}.irpa"
        _make_archive(args.src, archive, args.entries)
        cases = [
            ("python -c pass", [py, "-c", "pass"]),
            ("python -c 'import paramio'", [py, "-c", "import paramio"]),
            ("paramio --help", [py, "-c", _CLI, "--help"]),
            ("paramio which --help", [py, "-c", _CLI, "which", "--help"]),
            ("paramio dump --help", [py, "-c", _CLI, "dump", "--help"]),
            (f"paramio dump ({args.entries} entries)", [py, "-c", _CLI, "dump", str(archive)]),
        ]
        iree = _iree_dump()
        if iree is not None:
            cases.append((f"iree-dump-parameters ({args.entries} entries)", [iree, f"--parameters={archive}"]))
        for name, cmd in cases:
            median, best = _time(cmd, env, args.repeat)
            rows.append({"name": name, "median_s": median, "min_s": best})
    bare = float(rows[0]["median_s"])  # type: ignore[arg-type]
    dump = next(float(r["median_s"]) for r in rows if str(r["name"]).startswith("paramio dump ("))  # type: ignore[arg-type]
    iree_s = next((float(r["median_s"]) for r in rows if str(r["name"]).startswith("iree-dump")), None)  # type: ignore[arg-type]
    print(f"paramio from {args.src}; {args.repeat} runs each, python {sys.version.split()[0]}")
    print(f"{'command':42} {'median ms':>10} {'min ms':>8} {'x bare':>7}")
    for r in rows:
        m, b = float(r["median_s"]), float(r["min_s"])  # type: ignore[arg-type]
        r["x_bare"] = m / bare
        print(f"{r['name']!s:42} {m * 1e3:10.1f} {b * 1e3:8.1f} {m / bare:7.1f}")
    if iree_s:
        print(f"paramio dump / iree-dump-parameters: {dump / iree_s:.1f}x")
    if args.json:
        Path(args.json).write_text(json.dumps({"src": args.src, "repeat": args.repeat, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
