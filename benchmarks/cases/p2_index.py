"""P2: open a file of many small entries and list every key.

paramio (`ParameterIndex.open` + `keys()`, and + `items()`, which builds every entry object) against
IREE's Python `ParameterIndex.load` + `items()`, the format's own reader, and, per process,
`iree-dump-parameters` (native) against `paramio dump` when that command exists. Each file's
contenders take turns after `quiesce` (the writeback and discards of earlier cases' gigabytes
otherwise share the two cores with these millisecond timings)."""

# ruff: noqa: B023  (each closure is timed inside its own loop iteration)
from __future__ import annotations

import sys
from collections.abc import Callable

from cases.common import (
    Context,
    Record,
    have_cli,
    have_format,
    iree_tool,
    many_file,
    median_time,
    python_env,
    quiesce,
    round_robin,
    run_quiet,
    skipped,
)


def _paramio_keys(path: str) -> int:
    from paramio.index.index import ParameterIndex

    return len(ParameterIndex.open(path).keys())


def _paramio_items(path: str) -> int:
    from paramio.index.index import ParameterIndex

    return len(ParameterIndex.open(path).items())


def _iree_items(path: str) -> int:
    import iree.runtime as rt

    index = rt.ParameterIndex()
    index.load(path)
    return len(index.items())


def _safetensors_keys(path: str) -> int:
    from safetensors import safe_open

    with safe_open(path, framework="numpy") as f:
        return len(list(f.keys()))


def _gguf_keys(path: str) -> int:
    import gguf

    return len([t.name for t in gguf.GGUFReader(path).tensors])


_OWN_PEER = {"safetensors": ("safetensors.safe_open keys", _safetensors_keys), "gguf": ("gguf.GGUFReader", _gguf_keys)}


def run(ctx: Context) -> list[Record]:
    out: list[Record] = []
    try:
        import iree.runtime  # noqa: F401

        have_iree = True
    except ImportError:
        have_iree = False
    fmts = [("irpa", ctx.small_counts)] + [
        (f, (ctx.small_counts[0] if ctx.quick else 10_000,)) for f in ("safetensors", "gguf")
    ]
    repeat = max(3 * ctx.repeat, 9)  # milliseconds each: more rounds, cheaply
    for fmt, counts in fmts:
        for count in counts:
            label = f"P2 {fmt} {count} entries open+list"
            if not have_format(fmt):
                out.append(skipped(label, "iree ParameterIndex.load+items", "format not available"))
                continue
            path = str(many_file(ctx, fmt, count))
            ctx.log(label)
            assert _paramio_keys(path) == count
            fns: dict[str, Callable[[], object]] = {
                "keys": lambda: _paramio_keys(path),
                "items": lambda: _paramio_items(path),
            }
            if have_iree:
                fns["iree"] = lambda: _iree_items(path)
            if fmt in _OWN_PEER:
                peer_name, peer_fn = _OWN_PEER[fmt]
                fns["peer"] = lambda: peer_fn(path)
            quiesce()
            t = round_robin(fns, repeat, setup=lambda: None)
            keys, items = t["keys"], t["items"]
            if have_iree:
                out.append(Record(f"{label} keys()", keys, "iree ParameterIndex.load+items", t["iree"]))
                out.append(Record(f"{label} items()", items, "iree ParameterIndex.load+items", t["iree"]))
            else:
                out.append(skipped(label, "iree ParameterIndex.load+items", "iree-base-runtime not installed"))
            if fmt in _OWN_PEER:
                out.append(Record(f"{label} keys()", keys, _OWN_PEER[fmt][0], t["peer"]))
            dump = iree_tool("iree-dump-parameters")
            if count == counts[-1] and dump is not None:
                native = median_time(lambda: run_quiet([dump, f"--parameters={path}"]), 3)
                if have_cli("dump"):
                    cmd = [sys.executable, "-m", "paramio", "dump", f"--parameters={path}"]
                    mine = median_time(lambda: run_quiet(cmd, python_env()), 3)
                    out.append(Record(f"{label} process dump", mine, "iree-dump-parameters", native))
                else:
                    out.append(skipped(f"{label} process dump", "iree-dump-parameters", "CLI command not available"))
    return out
