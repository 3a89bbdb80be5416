"""P6 on a GPU machine: the loader into CUDA memory, checked byte for byte, and its bandwidth
against pinned host-to-device copies and `safetensors.safe_open(device="cuda")`, in one run.

    python benchmarks/gpu_load.py [--size-mib 2048] [--dir DIR] [--repeat 3] [--json out.json]
    python benchmarks/gpu_load.py --device cpu --size-mib 16 --repeat 1   # dry run, no GPU

Writes a safetensors model (transformer-like: 32 MiB matrices, small norms and biases), then:

1. correctness: ``paramio.load(into="torch", device="cuda")`` for budgets 64 MiB and 1 GiB (and
   ``into="cupy"`` where CuPy is installed); every tensor copied back and compared with the
   file's bytes (``safe_open`` numpy); staging high-water <= budget, and > 0 (the staged path ran);
2. the pinned H2D ceiling: one pinned 256 MiB buffer copied to the device repeatedly (GB/s);
3. paramio GB/s vs that ceiling (goal >= 0.85x) and vs ``safe_open(framework="pt",
   device="cuda")`` reading every tensor (goal: faster), contenders in turns, median of --repeat.

Exits 0 with "P6 skipped: ..." when torch or CUDA is missing, so it can run anywhere; exits 1 on a
wrong byte. ``--device cpu`` runs every step on the CPU instead (the loader's device path forced:
torch tensors filled through staging buffers and ``copy_``; the ceiling a host copy), so the
script itself is tested where no GPU is (tests/loading/test_gpu_script.py); its figures mean
nothing. A few minutes for 2 GiB on a recent GPU; the file is read warm from the page cache
(the figures compare copy paths, not disks).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

MiB = 1 << 20


def _skip(why: str) -> int:
    print(f"P6 skipped: {why}", flush=True)
    return 0


def _sync(torch: Any, device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def target_for(device: str) -> object:
    """What `paramio.load` is given: the device name, or on the CPU the torch target with its
    device path forced (staging buffers and one copy per piece, as on CUDA)."""
    if device.startswith("cuda"):
        return "torch"
    from paramio.loading.targets import TorchTarget

    return TorchTarget(device, staged=True)


def ceiling_gbps(torch: Any, device: str, repeat: int, nbytes: int = 256 * MiB) -> float:
    """Host-to-device bandwidth from one pinned buffer (a plain host copy on the CPU)."""
    cuda = device.startswith("cuda")
    src = torch.empty(nbytes, dtype=torch.uint8, pin_memory=cuda)
    src.fill_(7)
    dst = torch.empty(nbytes, dtype=torch.uint8, device=device)
    dst.copy_(src, non_blocking=cuda)
    _sync(torch, device)
    times = []
    for _ in range(max(3, repeat)):
        start = time.perf_counter()
        for _ in range(8):
            dst.copy_(src, non_blocking=cuda)
        _sync(torch, device)
        times.append(time.perf_counter() - start)
    return 8 * nbytes / statistics.median(times) / 1e9


def check_every_byte(path: Path, load: Callable[[str], Any], to_host: Callable[[Any], Any], what: str) -> str | None:
    """Load `path` with budgets 64 MiB and 1 GiB; compare every tensor's bytes with the file's.
    None when all match, else a line naming the first tensor that differs."""
    import numpy as np
    import safetensors

    with safetensors.safe_open(str(path), framework="np") as f:
        keys = list(f.keys())
        for budget in ("64MiB", "1GiB"):
            got = load(budget)
            s = got.summary
            if not (0 < s.peak_staging <= s.budget and s.peak_in_flight <= s.budget):
                return f"{what}: staging {s.peak_staging}, in flight {s.peak_in_flight}, budget {s.budget}"
            if sorted(got) != sorted(keys):
                return f"{what}: loaded keys differ from the file's"
            for k in keys:
                back = np.ascontiguousarray(to_host(got[k])).reshape(-1).view(np.uint8)
                want = np.ascontiguousarray(f.get_tensor(k)).reshape(-1).view(np.uint8)
                if not np.array_equal(back, want):
                    return f"{what}: {k} differs from the file (budget {budget})"
            print(
                f"correct ({what}): {len(keys)} tensors, budget {budget}, staging high-water {s.peak_staging >> 20} MiB"
            )
            del got
    return None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size-mib", type=int, default=2048)
    ap.add_argument("--dir", help="where to write the model (default: the system temp folder)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--concurrency", type=int, default=None)
    ap.add_argument("--device", default="cuda", help="cuda, cuda:N, or cpu for a dry run of the script")
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args(argv)
    device: str = args.device
    try:
        import torch
    except ImportError:
        return _skip("torch is not installed")
    if device.startswith("cuda") and not torch.cuda.is_available():
        return _skip("no CUDA device")
    import safetensors
    from cases.common import model_tensors, write_safetensors_raw

    import paramio

    work = Path(tempfile.mkdtemp(prefix="paramio-gpu-", dir=args.dir))
    path = work / "model.safetensors"
    print(f"writing {args.size_mib} MiB to {path}", flush=True)
    write_safetensors_raw(path, model_tensors(args.size_mib, 32))
    name = torch.cuda.get_device_name(device) if device.startswith("cuda") else "cpu (dry run)"
    results: dict[str, object] = {"device": name, "size_mib": args.size_mib}
    target = target_for(device)

    def load_torch(budget: str) -> Any:
        dev = device if target == "torch" else None
        return paramio.load(path, into=target, device=dev, budget=budget, concurrency=args.concurrency)  # type: ignore[arg-type]

    # 1. correctness, two budgets (and CuPy where it is installed)
    failure = check_every_byte(path, load_torch, lambda t: t.cpu().contiguous().view(torch.uint8).numpy(), "torch")
    if failure is None and device.startswith("cuda"):
        try:
            import cupy
        except ImportError:
            print("cupy not installed: into='cupy' not checked")
        else:
            failure = check_every_byte(
                path,
                lambda b: paramio.load(path, into="cupy", device=device, budget=b, concurrency=args.concurrency),
                cupy.asnumpy,
                "cupy",
            )
    if failure is not None:
        print(f"FAIL: {failure}")
        return 1
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
    results["correct"] = True

    # 2. the ceiling, 3. the contenders in turns
    ceiling = ceiling_gbps(torch, device, args.repeat)
    size = path.stat().st_size

    def mine() -> float:
        t = time.perf_counter()
        got = load_torch("256MiB")
        _sync(torch, device)
        dt = time.perf_counter() - t
        del got
        return dt

    def theirs() -> float:
        t = time.perf_counter()
        with safetensors.safe_open(str(path), framework="pt", device=device) as f:
            got = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 -- safe_open has no iterator
        _sync(torch, device)
        dt = time.perf_counter() - t
        del got
        return dt

    mine()
    theirs()  # warm-up: CUDA context, page cache, pinned blocks
    ts_mine, ts_theirs = [], []
    for _ in range(max(1, args.repeat)):
        ts_mine.append(mine())
        if device.startswith("cuda"):
            torch.cuda.empty_cache()
        ts_theirs.append(theirs())
        if device.startswith("cuda"):
            torch.cuda.empty_cache()
    m, th = statistics.median(ts_mine), statistics.median(ts_theirs)
    gbps = size / m / 1e9
    results.update(
        {
            "ceiling_gbps": round(ceiling, 2),
            "paramio_s": round(m, 4),
            "paramio_gbps": round(gbps, 2),
            "safe_open_s": round(th, 4),
            "ratio_vs_ceiling": round(gbps / ceiling, 3),
            "ratio_vs_safe_open": round(m / th, 3),
        }
    )
    ceiling_name = "pinned H2D" if device.startswith("cuda") else "host copy"
    print(
        f"P6 {args.size_mib} MiB -> {device}: paramio {m:.3f} s ({gbps:.2f} GB/s) = {gbps / ceiling:.2f}x "
        f"{ceiling_name} ({ceiling:.2f} GB/s, goal >= 0.85x); safe_open(device={device}) {th:.3f} s: "
        f"paramio/peer {m / th:.2f}x (goal < 1)"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1) + "\n")
    path.unlink()
    work.rmdir()
    return 0


if __name__ == "__main__":
    sys.exit(main())
