"""P5: peak resident memory while converting a model bigger than any one of its tensors.

Each measurement runs in a fresh child process that reports its own peak RSS (``VmHWM`` from
``/proc/self/status``: ``ru_maxrss`` would not do, as Linux carries the parent's peak across
``vfork``+``exec``); the figure is above a baseline child that only imports
the same modules. paramio streams entries (kernel copies), so it should stay near zero whatever
the model size; `safetensors.numpy.save_file` needs every tensor in memory."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from cases.common import Context, Record, drop, have_format, model_irpa, model_safetensors

_REPORT = "print('RSS', [l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM:')][0])"

_PARAMIO = """
import numpy, paramio
from paramio.index.index import ParameterIndex
{body}
"""

_PEER = """
import numpy, safetensors.numpy
{body}
"""


def _peak_kib(code: str) -> int:
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code) + "\n" + _REPORT], capture_output=True, text=True
    )
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr.strip()[-500:])
    return int(proc.stdout.split("RSS")[-1].strip())


def run(ctx: Context) -> list[Record]:
    fmt = "safetensors" if have_format("safetensors") else "irpa"
    src = model_safetensors(ctx) if fmt == "safetensors" else model_irpa(ctx)
    st = model_safetensors(ctx)
    dst = ctx.dir / "p5_out.irpa"
    peer_dst = ctx.dir / "p5_out.safetensors"
    ctx.log(f"P5 peak RSS ({fmt} -> irpa)")
    base = _peak_kib(_PARAMIO.format(body="pass"))
    mine = _peak_kib(
        _PARAMIO.format(
            body=f"i = ParameterIndex.open({str(src)!r}); paramio.write_path({str(dst)!r}, i.values(), attributes=i.attributes)"
        )
    )
    peer_base = _peak_kib(_PEER.format(body="pass"))
    peer = _peak_kib(
        _PEER.format(
            body=f"t = safetensors.numpy.load_file({str(st)!r}); safetensors.numpy.save_file(t, {str(peer_dst)!r})"
        )
    )
    drop(dst)
    drop(peer_dst)
    biggest = max(1, src.stat().st_size >> 20)
    above = (mine - base) / 1024
    peer_above = (peer - peer_base) / 1024
    return [
        Record(
            f"P5 peak RSS above baseline, convert {biggest} MiB {fmt}->irpa",
            above,
            "safetensors.numpy load_file+save_file",
            peer_above,
            unit="MiB",
            note=f"baselines {base / 1024:.0f} / {peer_base / 1024:.0f} MiB",
        )
    ]
