"""Peak memory of tensor-parallel sharding: split a model into TP shards and merge it back.

    python benchmarks/tp_memory.py [--size-mib 2048] [--tensors 8] [--tp 4] [--dir DIR] [--json]

Makes a safetensors model of `--size-mib` MiB (`--tensors` float32 matrices, half split along
axis 0 (contiguous spans), half along axis 1 (strided gathers), plus a small replicated vector),
then in fresh child processes runs ``paramio.sharding.shard`` into `--tp` per-device IRPA files and
``paramio.sharding.merge`` back into one safetensors file, and checks the merge is byte for byte
the original. Each child reports its own peak RSS (``VmHWM``), above a baseline child that only
imports paramio; a plain conversion of the same model to one IRPA file is measured alongside as
the reference for time. The issue's bound: 64 MiB above the interpreter for a 2 GiB model in 4 shards.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np

_REPORT = "print('RSS', [l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM:')][0])"
_CHILD = """
import time, numpy, paramio, paramio.sharding
from paramio.sharding import shard, merge
t0 = time.perf_counter()
{body}
print('SECONDS', time.perf_counter() - t0)
"""


def make_model(path: Path, size_mib: int, tensors: int) -> dict[str, tuple[int, int]]:
    """A safetensors file written in 16 MiB blocks (bounded memory), returns name -> shape."""
    cols = 4096
    rows = max(8, (size_mib << 20) // tensors // (4 * cols) // 8 * 8)
    shapes = {f"blk.{i}.{'attn_q' if i % 2 == 0 else 'ffn_down'}.weight": (rows, cols) for i in range(tensors)}
    header: dict[str, object] = {}
    offset = 0
    for name, (r, c) in shapes.items():
        n = r * c * 4
        header[name] = {"dtype": "F32", "shape": [r, c], "data_offsets": [offset, offset + n]}
        offset += n
    header["output_norm.weight"] = {"dtype": "F32", "shape": [cols], "data_offsets": [offset, offset + cols * 4]}
    offset += cols * 4
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    block = np.random.default_rng(0).integers(0, 1 << 32, (4 << 20,), dtype=np.uint32).tobytes()  # 16 MiB
    with open(path, "wb") as f:
        f.write(len(text).to_bytes(8, "little") + text)
        left = offset
        while left:
            n = min(left, len(block))
            f.write(block[:n])
            left -= n
    return shapes


def _child(body: str) -> tuple[int, float]:
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join(
            [str(Path(__file__).resolve().parents[1] / "src"), os.environ.get("PYTHONPATH", "")]
        ),
    )
    code = textwrap.dedent(_CHILD.format(body=body)) + "\n" + _REPORT
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr.strip()[-2000:])
    out = proc.stdout
    return int(out.split("RSS")[-1].strip()), float(out.split("SECONDS")[-1].split()[0])


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            h.update(chunk)
    return h.hexdigest()


def measure(folder: Path, size_mib: int, tensors: int, tp: int) -> dict[str, object]:
    src = folder / "model.safetensors"
    make_model(src, size_mib, tensors)
    base, _ = _child("pass")
    # Reference: a plain conversion of the same model to one IRPA file (the same bytes moved).
    convert_peak, convert_s = _child(
        f"i = paramio.ParameterIndex.open({str(src)!r}); "
        f"paramio.write_path({str(folder / 'one.irpa')!r}, i.values(), attributes=i.attributes, durable=False)"
    )
    (folder / "one.irpa").unlink()
    split = {"*.attn_q.weight": 0, "*.ffn_down.weight": 1}
    shard_peak, shard_s = _child(
        f"shard({str(src)!r}, {str(folder / 'tp')!r}, tp={tp}, split={split!r}, replicate=['*'], durable=False)"
    )
    back = folder / "back.safetensors"
    merge_peak, merge_s = _child(f"merge({str(folder / 'tp')!r}, {str(back)!r}, durable=False)")
    exact = _digest(back) == _digest(src)
    return {
        "model_mib": src.stat().st_size / (1 << 20),
        "tp": tp,
        "baseline_mib": base / 1024,
        "convert_peak_above_mib": (convert_peak - base) / 1024,
        "convert_seconds": convert_s,
        "shard_peak_above_mib": (shard_peak - base) / 1024,
        "shard_seconds": shard_s,
        "merge_peak_above_mib": (merge_peak - base) / 1024,
        "merge_seconds": merge_s,
        "merge_bit_exact": exact,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size-mib", type=int, default=2048)
    ap.add_argument("--tensors", type=int, default=8)
    ap.add_argument("--tp", type=int, default=4)
    ap.add_argument("--dir", default=None, help="where to write the model (default: the system temp folder)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="paramio-tp-mem-") as d:
        result = measure(Path(d), args.size_mib, args.tensors, args.tp)
    result["total_seconds"] = time.perf_counter() - t0
    if args.json:
        print(json.dumps(result))
    else:
        for k, v in result.items():
            print(f"{k}: {v:.1f}" if isinstance(v, float) else f"{k}: {v}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
