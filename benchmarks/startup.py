"""Start-up cost of paramio as a process, against a bare interpreter and IREE's C tool.

    python benchmarks/startup.py [--src DIR] [--repeat N] [--entries N] [--json out.json]

Runs, in one process each time and `--repeat` rounds, the commands interleaved (each round runs
every command once, so a load that comes and goes hits them alike; median and min reported):
``python -c pass``, ``python -c "import paramio"``, ``paramio --help``, ``paramio which --help``,
``paramio dump --help``, ``paramio dump`` of an IRPA, a safetensors and a GGUF file of `--entries`
entries, and ``iree-dump-parameters`` of the IRPA file. ``paramio`` is run the way its console
script runs it (``from paramio.cli.main import main``) with `--src` on PYTHONPATH, so one run can
measure another checkout (``--src /work/main/src`` for main); `--src` may be given twice to
interleave two checkouts in one run. Each figure is also given as a ratio to ``python -c pass``
(and the IRPA dump to IREE's dump).

``PYTHONDONTWRITEBYTECODE`` is dropped from the environment, so the warm-up round leaves compiled
``.pyc`` files beside `--src`, as an installed package has them: with it set, every run compiles
every paramio module from source (about 1.5x the start-up an installed paramio has).
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


def _time(cases: list[tuple[str, list[str], dict[str, str]]], repeat: int) -> dict[str, list[float]]:
    """Wall seconds of each case's command, `repeat` rounds of every case in turn, after one
    warm-up round."""
    runs: dict[str, list[float]] = {name: [] for name, _, _ in cases}
    for i in range(repeat + 1):
        for name, cmd, env in cases:
            t0 = time.perf_counter()
            subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            if i:
                runs[name].append(time.perf_counter() - t0)
    return runs


def _make_archive(src: str, path: Path, entries: int) -> None:
    code = (
        "import sys, numpy as np, paramio\n"
        "idx = paramio.ParameterIndex()\n"
        f"for i in range({entries}): idx.add_buffer(f'layer.{{i}}.weight', np.full(16, i, np.float32).tobytes())\n"
        "idx.create_archive_file(sys.argv[1])\n"
    )
    subprocess.run([sys.executable, "-c", code, str(path)], env={**os.environ, "PYTHONPATH": src}, check=True)
    for ext in ("safetensors", "gguf"):  # the same entries (untyped bytes: U8 and I8 tensors)
        code = "import sys, paramio; paramio.write_path(sys.argv[2], paramio.read_path(sys.argv[1]).entries)"
        other = path.with_suffix("." + ext)
        subprocess.run(
            [sys.executable, "-c", code, str(path), str(other)], env={**os.environ, "PYTHONPATH": src}, check=True
        )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    default_src = str(Path(__file__).resolve().parents[1] / "src")
    ap.add_argument("--src", action="append", help="paramio sources to time (twice: two checkouts, interleaved)")
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--entries", type=int, default=1000)
    ap.add_argument("--json", help="write the figures here")
    args = ap.parse_args()
    sources = args.src or [default_src]
    base = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    py = sys.executable
    cases: list[tuple[str, list[str], dict[str, str]]] = [("python -c pass", [py, "-c", "pass"], base)]
    with tempfile.TemporaryDirectory() as tmp:
        archive = Path(tmp) / f"k{args.entries}.irpa"
        _make_archive(sources[0], archive, args.entries)
        for src in sources:
            env = {**base, "PYTHONPATH": src}
            tag = f" [{src}]" if len(sources) > 1 else ""
            cases += [
                ("python -c 'import paramio'" + tag, [py, "-c", "import paramio"], env),
                ("paramio --help" + tag, [py, "-c", _CLI, "--help"], env),
                ("paramio which --help" + tag, [py, "-c", _CLI, "which", "--help"], env),
                ("paramio dump --help" + tag, [py, "-c", _CLI, "dump", "--help"], env),
            ]
            for ext in ("irpa", "safetensors", "gguf"):
                name = f"paramio dump {ext} ({args.entries} entries){tag}"
                cases.append((name, [py, "-c", _CLI, "dump", str(archive.with_suffix("." + ext))], env))
        iree = _iree_dump()
        if iree is not None:
            cases.append(
                (f"iree-dump-parameters irpa ({args.entries} entries)", [iree, f"--parameters={archive}"], base)
            )
        runs = _time(cases, args.repeat)
    rows: list[dict[str, object]] = [
        {"name": name, "median_s": statistics.median(times), "min_s": min(times)} for name, times in runs.items()
    ]
    bare = float(rows[0]["median_s"])  # type: ignore[arg-type]
    iree_s = next((float(r["median_s"]) for r in rows if str(r["name"]).startswith("iree-dump")), None)  # type: ignore[arg-type]
    print(f"paramio from {', '.join(sources)}; {args.repeat} interleaved rounds, python {sys.version.split()[0]}")
    width = max(len(str(r["name"])) for r in rows)
    print(f"{'command':{width}} {'median ms':>10} {'min ms':>8} {'x bare':>7} {'x bare min':>10}")
    bare_min = float(rows[0]["min_s"])  # type: ignore[arg-type]
    for r in rows:
        m, b = float(r["median_s"]), float(r["min_s"])  # type: ignore[arg-type]
        r["x_bare"] = m / bare
        r["x_bare_min"] = b / bare_min
        print(f"{r['name']!s:{width}} {m * 1e3:10.1f} {b * 1e3:8.1f} {m / bare:7.1f} {b / bare_min:10.1f}")
    if iree_s:
        for r in rows:
            if str(r["name"]).startswith("paramio dump irpa ("):
                print(f"{r['name']} / iree-dump-parameters: {float(r['median_s']) / iree_s:.1f}x")  # type: ignore[arg-type]
    if args.json:
        Path(args.json).write_text(json.dumps({"src": sources, "repeat": args.repeat, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
