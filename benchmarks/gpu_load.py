"""P6 on a GPU machine: the loader into CUDA memory, checked byte for byte, and its bandwidth
against pinned host-to-device copies and `safetensors.safe_open(device="cuda")`, in one run.

    python benchmarks/gpu_load.py [--size-mib 2048] [--dir DIR] [--repeat 3] [--json out.json]

Writes a safetensors model (transformer-like: 32 MiB matrices, small norms and biases), then:

1. correctness: ``paramio.load(into="torch", device="cuda")`` for budgets 64 MiB and 1 GiB; every
   tensor copied back and compared with the file's bytes (``safe_open`` numpy); staging high-water
   <= budget;
2. the pinned H2D ceiling: one pinned 256 MiB buffer copied to the device repeatedly (GB/s);
3. paramio GB/s vs that ceiling (goal >= 0.85x) and vs ``safe_open(framework="pt",
   device="cuda")`` reading every tensor (goal: faster), contenders in turns, median of --repeat.

Exits 0 with "skipped: ..." when torch or CUDA is missing, so it can run anywhere. A few minutes
for 2 GiB on a recent GPU; the file is read warm from the page cache (the figures compare copy
paths, not disks).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

MiB = 1 << 20


def _skip(why: str) -> int:
    print(f"P6 skipped: {why}")
    return 0


def pinned_h2d_gbps(torch: object, repeat: int) -> float:
    t = torch  # type: ignore[assignment]
    src = t.empty(256 * MiB, dtype=t.uint8, pin_memory=True)  # type: ignore[attr-defined]
    src.fill_(7)
    dst = t.empty(256 * MiB, dtype=t.uint8, device="cuda")  # type: ignore[attr-defined]
    dst.copy_(src, non_blocking=True)
    t.cuda.synchronize()  # type: ignore[attr-defined]
    times = []
    for _ in range(max(3, repeat)):
        start = time.perf_counter()
        for _ in range(8):
            dst.copy_(src, non_blocking=True)
        t.cuda.synchronize()  # type: ignore[attr-defined]
        times.append(time.perf_counter() - start)
    return 8 * 256 * MiB / statistics.median(times) / 1e9


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size-mib", type=int, default=2048)
    ap.add_argument("--dir", help="where to write the model (default: the system temp folder)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--concurrency", type=int, default=None)
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args(argv)
    try:
        import torch
    except ImportError:
        return _skip("torch is not installed")
    if not torch.cuda.is_available():
        return _skip("no CUDA device")
    import numpy as np
    import safetensors
    from cases.common import model_tensors, write_safetensors_raw

    import paramio

    work = Path(tempfile.mkdtemp(prefix="paramio-gpu-", dir=args.dir))
    path = work / "model.safetensors"
    print(f"writing {args.size_mib} MiB to {path}", flush=True)
    write_safetensors_raw(path, model_tensors(args.size_mib, 32))
    results: dict[str, object] = {"device": torch.cuda.get_device_name(), "size_mib": args.size_mib}

    # 1. correctness, two budgets
    with safetensors.safe_open(str(path), framework="np") as f:
        keys = list(f.keys())
        for budget in ("64MiB", "1GiB"):
            got = paramio.load(path, into="torch", device="cuda", budget=budget, concurrency=args.concurrency)
            s = got.summary
            assert s.peak_staging <= s.budget and s.peak_in_flight <= s.budget, s
            for k in keys:
                t = got[k]
                assert t.device.type == "cuda", k  # type: ignore[attr-defined]
                back = t.cpu().contiguous().view(torch.uint8).numpy()  # type: ignore[attr-defined]
                want = np.ascontiguousarray(f.get_tensor(k)).reshape(-1).view(np.uint8)
                if not np.array_equal(back, want):
                    print(f"FAIL: {k} differs from the file (budget {budget})")
                    return 1
            print(f"correct: {len(keys)} tensors, budget {budget}, staging high-water {s.peak_staging >> 20} MiB")
            del got
            torch.cuda.empty_cache()
    results["correct"] = True

    # 2. the ceiling, 3. the contenders in turns
    ceiling = pinned_h2d_gbps(torch, args.repeat)
    size = path.stat().st_size

    def mine() -> float:
        t = time.perf_counter()
        got = paramio.load(path, into="torch", device="cuda", concurrency=args.concurrency)
        torch.cuda.synchronize()
        dt = time.perf_counter() - t
        del got
        return dt

    def theirs() -> float:
        t = time.perf_counter()
        with safetensors.safe_open(str(path), framework="pt", device="cuda") as f:
            got = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 -- safe_open has no iterator
        torch.cuda.synchronize()
        dt = time.perf_counter() - t
        del got
        return dt

    mine()
    theirs()  # warm-up: CUDA context, page cache
    ts_mine, ts_theirs = [], []
    for _ in range(args.repeat):
        ts_mine.append(mine())
        torch.cuda.empty_cache()
        ts_theirs.append(theirs())
        torch.cuda.empty_cache()
    m, th = statistics.median(ts_mine), statistics.median(ts_theirs)
    gbps = size / m / 1e9
    results.update(
        {
            "pinned_h2d_gbps": round(ceiling, 2),
            "paramio_s": round(m, 4),
            "paramio_gbps": round(gbps, 2),
            "safe_open_cuda_s": round(th, 4),
            "ratio_vs_pinned": round(gbps / ceiling, 3),
            "ratio_vs_safe_open": round(m / th, 3),
        }
    )
    print(
        f"P6 {args.size_mib} MiB -> cuda: paramio {m:.3f} s ({gbps:.2f} GB/s) = {gbps / ceiling:.2f}x pinned H2D "
        f"({ceiling:.2f} GB/s, goal >= 0.85x); safe_open(device=cuda) {th:.3f} s: paramio/peer {m / th:.2f}x "
        "(goal < 1)"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1) + "\n")
    path.unlink()
    work.rmdir()
    return 0


if __name__ == "__main__":
    sys.exit(main())
