"""A long mutation-fuzzing campaign over every paramio reader (the bounded version runs in
``tests/hardening/test_fuzz.py``).

    python benchmarks/fuzz.py [--cases N] [--formats irpa,gguf] [--seed S] [--out failures/]

Each case mutates a valid file made by the format's own library (see
``tests/hardening/mutations.py``), opens it with paramio and reads every entry; only
`paramio.errors.ParamioError` may escape, within memory and time bounds. Failing inputs are saved
under --out with the mutation steps, and the exit status is non-zero if any case failed.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "hardening"))

import mutations  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", type=int, default=100_000, help="cases in all, shared among the formats")
    ap.add_argument("--formats", default=",".join(mutations.FORMATS))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="fuzz-failures", help="where failing inputs are saved")
    args = ap.parse_args(argv)
    formats = [f for f in args.formats.split(",") if f]
    rng = random.Random(args.seed)
    stats: dict[str, dict[str, int]] = {}
    failures = 0
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="paramio-fuzz-") as tmp:
        campaigns = {}
        for fmt in formats:
            why = mutations.format_available(fmt)
            if why:
                print(f"{fmt}: skipped ({why})")
                continue
            campaigns[fmt] = mutations.Campaign.make(Path(tmp) / fmt.replace(".", "_"), fmt, seed=args.seed)
            stats[fmt] = {"cases": 0, "parsed": 0, "refused": 0, "failed": 0}
        if not campaigns:
            return 2
        names = list(campaigns)
        for n in range(args.cases):
            fmt = names[n % len(names)]
            st = stats[fmt]
            st["cases"] += 1
            state = rng.getstate()
            try:
                outcome, _ = campaigns[fmt].run_one(rng)
                st["parsed"] += outcome.ok
                st["refused"] += outcome.error is not None
            except mutations.FuzzFailure as exc:
                st["failed"] += 1
                failures += 1
                out = Path(args.out)
                out.mkdir(parents=True, exist_ok=True)
                (out / f"{fmt}-{n}.txt").write_text(f"{exc}\nrng state: {state!r}\n")
                print(f"FAIL {fmt} case {n}: {str(exc)[:300]}", flush=True)
            if (n + 1) % 10_000 == 0:
                print(f"{n + 1} cases, {failures} failures, {time.perf_counter() - t0:.0f} s", flush=True)
    elapsed = time.perf_counter() - t0
    print(
        json.dumps(
            {"cases": args.cases, "failures": failures, "seconds": round(elapsed, 1), "by_format": stats}, indent=1
        )
    )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
