"""A long fuzzing campaign over every paramio reader (the bounded version runs in
``tests/hardening/test_fuzz.py`` and ``test_bounded.py``).

    python benchmarks/fuzz.py [--cases N] [--formats irpa,gguf,...] [--seed S] [--jobs J]
                              [--ops-every K] [--out failures/]

`--cases` is per reader. The readers are IRPA, TENSORv0 metadata/attributes (inside IRPA),
safetensors, GGUF, GGUF split sets and sharded safetensors sets (``index.json``); and the
surfaces of issue 24 (``tests/hardening/surfaces.py``): IRPA and safetensors sets and TP
manifests (``irpa-set``, ``st-set``, ``tp-manifest``, ``tp-keys-manifest``: valid sets with
mutated manifests and members), URLs served by a misbehaving loopback server (``url``: wrong
ranges, short bodies, changing validators, redirects, silence; 0.5 s idle timeout, 2 attempts),
the loader (``loader``: random tensors and splats, budgets, concurrency; the planner on lengths
up to 2**63) and MLIR text for ``mlir export``/``import`` (``mlir``). For readers
with a seed file, half the cases mutate the seed's bytes (``tests/hardening/mutations.py``)
and half are whole files from the structure-aware generators (``structured.py``: dims,
nesting, references, names, paths); the others are all structured. Every case opens the file
and reads every entry; every K-th also runs ``dump``, ``verify`` and a conversion.

A case fails when anything but a `paramio.core.errors.ParamioError` escapes (the CLI: anything but
exit 0/1, or its "unexpected ..." line), when it takes more than 10 s of CPU time (the wall
clock of a shared machine measures the neighbours too; the slowest wall time is reported
alongside), or when the process's
peak RSS passes 1 GiB (``ru_maxrss`` only grows, so the case that pushes it over is the one
named). Failing inputs are saved under --out with the mutation steps and the random state;
the exit status is non-zero if any case failed.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import random
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "hardening"))

import mutations  # noqa: E402

CASE_TIME_LIMIT_S = 10.0
RSS_LIMIT = 1 << 30


def _rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB


def _warm_up(folder: Path) -> None:
    """Import everything a case may touch before any case is timed: the first import of
    ml_dtypes (NumPy's bfloat16 and float8 types) alone takes over a second on a loaded machine."""
    import importlib

    for name in ("ml_dtypes", "paramio.cli.main", "paramio.cli.dump", "paramio.cli.verify", "paramio.cli.convert"):
        importlib.import_module(name)
    from paramio.core.dtypes import numpy_dtype

    for dtype in ("bfloat16", "float8_e4m3fn", "float8_e5m2"):
        try:
            numpy_dtype(dtype)
        except Exception:  # noqa: BLE001 - a dtype this paramio lacks: nothing to warm
            pass
    warm = mutations.Campaign.make(folder, "irpa", seed=0)
    mutations.exercise(str(warm.seed_path), ("dump", "verify", "convert"), folder, random.Random(0))


def run_format(fmt: str, cases: int, seed: int, ops_every: int, out: str, max_seconds: float) -> dict[str, object]:
    """`cases` cases of one reader in this process (fewer if `max_seconds` runs out first);
    returns its statistics."""
    rng = random.Random(f"{seed}-{fmt}")
    stats: dict[str, object] = {"cases": 0, "parsed": 0, "refused": 0, "failed": 0, "structured": 0}
    worst = worst_wall = 0.0
    failures: list[str] = []
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix=f"paramio-fuzz-{fmt}-") as tmp:
        _warm_up(Path(tmp) / "warm")
        t0 = time.perf_counter()
        seeded = None
        if fmt in mutations.FORMATS:
            seeded = mutations.Campaign.make(Path(tmp) / "seeded", fmt, seed=seed)
        structured = mutations.StructuredCampaign(Path(tmp) / "structured", fmt)
        for n in range(cases):
            if max_seconds and time.perf_counter() - t0 > max_seconds:
                stats["stopped"] = f"time budget of {max_seconds:.0f} s spent"
                break
            state = rng.getstate()
            ops = ("dump", "verify", "convert") if ops_every and n % ops_every == 0 else ()
            try:
                cpu0 = time.process_time()
                if seeded is not None and rng.random() < 0.5:
                    outcome, _ = seeded.run_one(rng, traced=False, time_limit=float("inf"), ops=ops)
                else:
                    outcome, _ = structured.run_one(rng, ops=ops, traced=False, time_limit=float("inf"))
                    stats["structured"] = int(stats["structured"]) + 1  # type: ignore[call-overload]
                # CPU time: on a shared machine the wall clock measures the neighbours too.
                seconds = time.process_time() - cpu0
                worst_wall = max(worst_wall, outcome.seconds)
                if seconds > CASE_TIME_LIMIT_S:
                    raise mutations.FuzzFailure(f"took {seconds:.1f} s of CPU (limit {CASE_TIME_LIMIT_S} s)")
                if _rss() > RSS_LIMIT:
                    raise mutations.FuzzFailure(f"peak RSS {_rss()} bytes passed {RSS_LIMIT}")
                worst = max(worst, seconds)
                stats["parsed"] = int(stats["parsed"]) + outcome.ok  # type: ignore[call-overload]
                stats["refused"] = int(stats["refused"]) + (outcome.error is not None)  # type: ignore[call-overload]
            except mutations.FuzzFailure as exc:
                stats["failed"] = int(stats["failed"]) + 1  # type: ignore[call-overload]
                folder = Path(out)
                folder.mkdir(parents=True, exist_ok=True)
                (folder / f"{fmt}-{n}.txt").write_text(f"{exc}\nrng state: {state!r}\n")
                failures.append(str(exc)[:300])
                print(f"FAIL {fmt} case {n}: {str(exc)[:300]}", flush=True)
            stats["cases"] = n + 1
            if (n + 1) % 2_000 == 0:
                print(f"{fmt}: {n + 1} cases, {stats['failed']} failures, {time.perf_counter() - t0:.0f} s", flush=True)
    stats["seconds"] = round(time.perf_counter() - t0, 1)
    stats["slowest_case_cpu_s"] = round(worst, 2)
    stats["slowest_case_wall_s"] = round(worst_wall, 2)
    stats["peak_rss_mib"] = round(_rss() / (1 << 20), 1)
    stats["first_failures"] = failures[:5]
    return stats


def _job(args: tuple[str, int, int, int, str, float]) -> tuple[str, dict[str, object]]:
    return args[0], run_format(*args)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", type=int, default=100_000, help="cases per reader")
    ap.add_argument("--formats", default=",".join(mutations.STRUCTURED_FORMATS + mutations.SURFACE_FORMATS))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--jobs", type=int, default=1, help="readers fuzzed in parallel, one process each")
    ap.add_argument("--ops-every", type=int, default=20, help="run dump, verify and a conversion every K-th case")
    ap.add_argument("--out", default="fuzz-failures", help="where failing inputs are saved")
    ap.add_argument("--max-seconds", type=float, default=0, help="stop each reader after this long (0: never)")
    args = ap.parse_args(argv)
    formats = []
    for fmt in (f for f in args.formats.split(",") if f):
        why = mutations.format_available(fmt)
        if why:
            print(f"{fmt}: skipped ({why})")
        else:
            formats.append(fmt)
    if not formats:
        return 2
    t0 = time.perf_counter()
    jobs = [(fmt, args.cases, args.seed, args.ops_every, args.out, args.max_seconds) for fmt in formats]
    if args.jobs > 1:
        with multiprocessing.get_context("spawn").Pool(args.jobs, maxtasksperchild=1) as pool:
            results = dict(pool.imap_unordered(_job, jobs))
    else:
        results = dict(map(_job, jobs))
    failures = sum(int(r["failed"]) for r in results.values())  # type: ignore[call-overload]
    summary = {
        "cases_per_reader": args.cases,
        "max_seconds": args.max_seconds,
        "seed": args.seed,
        "failures": failures,
        "seconds": round(time.perf_counter() - t0, 1),
        "by_reader": {f: results[f] for f in formats},
    }
    print(json.dumps(summary, indent=1))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
