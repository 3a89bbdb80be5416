"""P3: read every tensor into new host arrays. paramio (`to_numpy(copy=True)`) against a plain
NumPy copy of the same byte spans (memory bandwidth: the floor), IREE's Python
``ParameterIndex`` (load, then a copy of each entry's ``file_view``), `safetensors.numpy.load_file`
and gguf-py's reader followed by a copy. Contenders take turns; before each run of the big
models, `settle` warms as much free memory as the new arrays take."""

# ruff: noqa: B023  (each closure is timed inside its own loop iteration)
from __future__ import annotations

import mmap
from collections.abc import Callable

import numpy as np

from cases.common import (
    Context,
    Record,
    have_format,
    many_file,
    model_gguf,
    model_irpa,
    model_safetensors,
    round_robin,
    settle,
    skipped,
)


def _paramio_copy(path: str) -> int:
    from paramio.index.index import ParameterIndex

    arrays = [e.to_numpy(copy=True) for e in ParameterIndex.open(path).values()]
    return sum(a.nbytes for a in arrays)


def _spans(path: str) -> list[tuple[int, int]]:
    from paramio.index.index import ParameterIndex

    return [(e.offset, e.length) for e in ParameterIndex.open(path).values() if e.source is not None]


def _numpy_copy(path: str, spans: list[tuple[int, int]]) -> int:
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
        raw = np.frombuffer(m, dtype=np.uint8)
        arrays = [raw[o : o + n].copy() for o, n in spans]
        del raw
    return sum(a.nbytes for a in arrays)


def _iree_copy(path: str) -> int:
    import iree.runtime as rt

    index = rt.ParameterIndex()
    index.load(path)
    arrays = [np.frombuffer(e.file_view, dtype=np.uint8).copy() for _, e in index.items() if e.is_file]
    return sum(a.nbytes for a in arrays)


def _safetensors_load(path: str) -> int:
    import safetensors.numpy

    return sum(a.nbytes for a in safetensors.numpy.load_file(path).values())


def _gguf_copy(path: str) -> int:
    import gguf

    arrays = [np.array(t.data, copy=True) for t in gguf.GGUFReader(path).tensors]  # all kept, as the others
    return sum(a.nbytes for a in arrays)


def run(ctx: Context) -> list[Record]:
    out: list[Record] = []
    irpa = str(model_irpa(ctx))
    ctx.log("P3 irpa")
    spans = _spans(irpa)
    mib = sum(n for _, n in spans) >> 20
    size = sum(n for _, n in spans)

    def fresh_memory() -> None:  # every contender allocates `size` bytes of new arrays
        settle(size)

    fns: dict[str, Callable[[], object]] = {
        "mine": lambda: _paramio_copy(irpa),
        "floor": lambda: _numpy_copy(irpa, spans),
    }
    try:
        import iree.runtime  # noqa: F401

        fns["iree"] = lambda: _iree_copy(irpa)
    except ImportError:
        pass
    t = round_robin(fns, ctx.repeat, setup=fresh_memory)
    mine, floor = t["mine"], t["floor"]
    out.append(Record(f"P3 irpa {mib} MiB copy every tensor", mine, "numpy copy of the same spans", floor))
    try:
        import iree.runtime  # noqa: F401
    except ImportError:
        out.append(
            skipped(
                f"P3 irpa {mib} MiB copy every tensor", "iree ParameterIndex + copy", "iree-base-runtime not installed"
            )
        )
    else:
        out.append(Record(f"P3 irpa {mib} MiB copy every tensor", mine, "iree ParameterIndex + copy", t["iree"]))
        count = ctx.small_counts[0]
        small = str(many_file(ctx, "irpa", count))  # per-entry costs, not bandwidth
        ctx.log(f"P3 irpa {count} small tensors")
        t = round_robin(
            {"mine": lambda: _paramio_copy(small), "iree": lambda: _iree_copy(small)},
            max(ctx.repeat, 5),
            setup=lambda: None,
        )
        out.append(
            Record(
                f"P3 irpa {count} small tensors copy every tensor", t["mine"], "iree ParameterIndex + copy", t["iree"]
            )
        )
    for fmt, make, peer_name, peer_fn in (
        ("safetensors", model_safetensors, "safetensors.numpy.load_file", _safetensors_load),
        ("gguf", model_gguf, "gguf.GGUFReader + copy", _gguf_copy),
    ):
        label = f"P3 {fmt} {ctx.size_mib} MiB copy every tensor"
        if not have_format(fmt):
            out.append(skipped(label, peer_name, "format not available"))
            continue
        path = str(make(ctx))
        ctx.log(label)
        spans = _spans(path)
        t = round_robin(
            {
                "mine": lambda: _paramio_copy(path),
                "peer": lambda: peer_fn(path),
                "floor": lambda: _numpy_copy(path, spans),
            },
            ctx.repeat,
            setup=fresh_memory,
        )
        out.append(Record(label, t["mine"], peer_name, t["peer"]))
        out.append(Record(label, t["mine"], "numpy copy of the same spans", t["floor"]))
    return out
