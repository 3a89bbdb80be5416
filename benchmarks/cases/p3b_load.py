"""P3': the loader (`paramio.load`) reading every tensor of a safetensors model into new host
arrays, against today's P3 path (`to_numpy(copy=True)` per entry, every array kept, as P3 and a
model loader keep them) and `safetensors.numpy.load_file`; also against the same loop dropping
each array at once (it recycles one tensor's memory, so it never pays for the pages of a whole
model: shown for reference, it loads nothing);
its peak RSS above the arrays for budgets of 64 MiB and 1 GiB (bound: budget + 32 MiB); and the
streaming form's time to first tensor as a share of the full load (goal <= 5%).
Contenders take turns; `settle` warms as much free memory as the new arrays take before each run."""

# ruff: noqa: B023  (each closure is timed inside its own loop iteration)
from __future__ import annotations

import subprocess
import sys
import textwrap
import time

from cases.common import Context, Record, model_safetensors, round_robin, settle

MiB = 1 << 20

_RSS = """
import paramio
from paramio import ParameterIndex
def hwm():
    return [int(l.split()[1]) * 1024 for l in open('/proc/self/status') if l.startswith('VmHWM:')][0]
index = ParameterIndex.open({path!r})
small = min(index.keys(), key=lambda k: index[k].length)
paramio.load(index, [small], budget={budget})  # imports and threads, outside the figure
before = hwm()
arrays = paramio.load(index, budget={budget})
print('ABOVE', hwm() - before - sum(a.nbytes for a in arrays.values()))
"""


def _today(path: str) -> int:
    """P3's paramio contender exactly (cases/p3_read.py `_paramio_copy`): every array kept."""
    from paramio.index.index import ParameterIndex

    arrays = [e.to_numpy(copy=True) for e in ParameterIndex.open(path).values()]
    return sum(a.nbytes for a in arrays)


def _today_dropped(path: str) -> int:
    """The loop as P3' first measured it: each array freed before the next is made, so malloc
    hands the same (already faulted, cache-warm) memory back every time."""
    from paramio.index.index import ParameterIndex

    return sum(e.to_numpy(copy=True).nbytes for e in ParameterIndex.open(path).values())


def _load(path: str, budget: str = "256MiB") -> int:
    import paramio

    return sum(a.nbytes for a in paramio.load(path, budget=budget).values())  # type: ignore[attr-defined]


def _safetensors(path: str) -> int:
    import safetensors.numpy

    return sum(a.nbytes for a in safetensors.numpy.load_file(path).values())


def _first_tensor(path: str) -> tuple[float, float]:
    import paramio.loading

    t = time.perf_counter()
    s = paramio.loading.stream(path)
    next(s)
    first = time.perf_counter() - t
    for _ in s:
        pass
    return first, time.perf_counter() - t


def _rss_above(path: str, budget: int) -> float:
    code = textwrap.dedent(_RSS.format(path=path, budget=budget))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr.strip()[-500:])
    return int(proc.stdout.split("ABOVE")[-1]) / MiB


def run(ctx: Context) -> list[Record]:
    path = str(model_safetensors(ctx))
    from paramio.index.index import ParameterIndex

    size = ParameterIndex.open(path).total_bytes
    mib = size >> 20
    ctx.log(f"P3' load {mib} MiB")
    t = round_robin(
        {
            "load": lambda: _load(path),
            "today": lambda: _today(path),
            "dropped": lambda: _today_dropped(path),
            "st": lambda: _safetensors(path),
        },
        ctx.repeat,
        setup=lambda: settle(size),
    )
    label = f"P3' safetensors {mib} MiB paramio.load into numpy"
    out = [
        Record(label, t["load"], "to_numpy(copy=True) per entry, arrays kept (P3; goal <= 1x)", t["today"]),
        Record(label, t["load"], "the same loop dropping each array (memory recycled; reference)", t["dropped"]),
        Record(label, t["load"], "safetensors.numpy.load_file", t["st"]),
    ]
    for budget in (64 * MiB, 1 << 30):
        ctx.log(f"P3' peak RSS, budget {budget >> 20} MiB")
        above = _rss_above(path, budget)
        bound = budget / MiB + 32
        out.append(
            Record(
                f"P3' peak RSS above the arrays, budget {budget >> 20} MiB",
                above,
                "bound: budget + 32 MiB",
                bound,
                unit="MiB",
            )
        )
    ctx.log("time to first tensor")
    firsts, fulls = [], []
    for _ in range(max(3, ctx.repeat)):
        settle(size)
        f, full = _first_tensor(path)
        firsts.append(f)
        fulls.append(full)
    firsts.sort()
    fulls.sort()
    out.append(
        Record(
            f"time to first tensor, stream {mib} MiB",
            firsts[len(firsts) // 2],
            "the full load (goal <= 0.05x)",
            fulls[len(fulls) // 2],
        )
    )
    return out
