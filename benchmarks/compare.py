"""Compare `benchmarks/run.py --json` results of two builds, case by case.

    python benchmarks/compare.py --before a1.json a2.json --after b1.json b2.json [--md out.md]

Each side may hold several runs (the machine is noisy); a case's range is the lowest and highest
ratio over them. A case is *worse* when its best ratio after the change is above its worst ratio
before it by more than `--slack` (default 10 %): the two ranges do not overlap, so noise alone does
not explain it. Exit status 1 when any case is worse, so a script can gate on it.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable
from pathlib import Path

Case = tuple[str, str]


def ratios(paths: Iterable[Path]) -> dict[Case, list[float]]:
    """(case name, peer) -> every ratio measured in the given runs (skipped cases left out)."""
    found: dict[Case, list[float]] = {}
    for path in paths:
        for record in json.loads(path.read_text()):
            if record.get("ratio") is not None:
                found.setdefault((record["name"], record["peer"]), []).append(float(record["ratio"]))
    return found


def compare(before: dict[Case, list[float]], after: dict[Case, list[float]], slack: float) -> list[dict[str, object]]:
    rows = []
    for case in sorted(before.keys() | after.keys()):
        b, a = before.get(case), after.get(case)
        worse = bool(b and a and min(a) > max(b) * (1 + slack) and min(a) - max(b) > 0.02)
        rows.append({"case": case[0], "peer": case[1], "before": b, "after": a, "worse": worse})
    return rows


def _span(values: list[float] | None) -> str:
    if not values:
        return "-"
    lo, hi = min(values), max(values)
    return f"{lo:.2f}x" if abs(hi - lo) < 0.005 else f"{lo:.2f}-{hi:.2f}x"


def markdown(rows: list[dict[str, object]]) -> str:
    lines = ["| case | peer | before | after | |", "|---|---|---|---|---|"]
    for r in rows:
        flag = "**worse**" if r["worse"] else ""
        lines.append(f"| {r['case']} | {r['peer']} | {_span(r['before'])} | {_span(r['after'])} | {flag} |")  # type: ignore[arg-type]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", nargs="+", type=Path, required=True)
    parser.add_argument("--after", nargs="+", type=Path, required=True)
    parser.add_argument("--slack", type=float, default=0.10, help="tolerated excess over the worst run before")
    parser.add_argument("--md", type=Path, help="also write the table here")
    args = parser.parse_args(argv)
    rows = compare(ratios(args.before), ratios(args.after), args.slack)
    table = markdown(rows)
    sys.stdout.write(table)
    if args.md:
        args.md.write_text(table)
    worse = [r for r in rows if r["worse"]]
    print(f"\n{len(rows)} cases, {len(worse)} worse than every run before by more than {args.slack:.0%}")
    return 1 if worse else 0


if __name__ == "__main__":
    sys.exit(main())
