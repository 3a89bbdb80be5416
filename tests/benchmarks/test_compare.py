"""`benchmarks/compare.py`: a case is worse only when every run after is above every run before."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

_SPEC = importlib.util.spec_from_file_location("compare", Path(__file__).parents[2] / "benchmarks" / "compare.py")
assert _SPEC is not None and _SPEC.loader is not None
compare = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(compare)


def _run(path: Path, **ratios: float | None) -> Path:
    path.write_text(json.dumps([{"name": n, "peer": "cp", "ratio": r} for n, r in ratios.items()]))
    return path


def test_overlapping_ranges_are_noise_and_disjoint_ones_are_worse(tmp_path: Path) -> None:
    before = [_run(tmp_path / "b1.json", a=1.0, b=1.0, c=0.001, d=None), _run(tmp_path / "b2.json", a=1.3, b=1.1)]
    after = [_run(tmp_path / "a1.json", a=1.2, b=1.5, c=0.01, d=2.0), _run(tmp_path / "a2.json", a=1.4, b=1.3)]
    rows = {r["case"]: r for r in compare.compare(compare.ratios(before), compare.ratios(after), 0.10)}
    assert rows["a"]["worse"] is False  # 1.2..1.4 overlaps 1.0..1.3
    assert rows["b"]["worse"] is True  # 1.3..1.5 is above 1.0..1.1 by more than 10 %
    assert rows["c"]["worse"] is False  # ten times a ratio near zero is still noise
    assert rows["d"]["before"] is None and rows["d"]["worse"] is False  # skipped before: nothing to compare
    assert compare.main(["--before", *map(str, before), "--after", *map(str, after)]) == 1
