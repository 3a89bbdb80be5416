"""P1: convert a model file to IRPA. paramio (library, and the CLI when present) against `cp` of
the same bytes (no fsync) and IREE's native `iree-convert-parameters` (which fsyncs: compared
with paramio's durable write, "equal durability"). The contenders take turns, round after
round, each run after `settle` (no dirty pages of another run, warm free memory)."""

# ruff: noqa: B023  (each closure is timed inside its own loop iteration)
from __future__ import annotations

import sys
from collections.abc import Callable

from cases.common import (
    Context,
    Record,
    drop,
    have_cli,
    have_format,
    iree_tool,
    model_irpa,
    model_safetensors,
    round_robin,
    run_quiet,
    settle,
    skipped,
)


def _paramio_convert(src: str, dst: str, durable: bool) -> None:
    import paramio
    from paramio.index.index import ParameterIndex

    index = ParameterIndex.open(src)
    paramio.write_path(dst, index.values(), attributes=index.attributes, durable=durable)


def run(ctx: Context) -> list[Record]:
    out: list[Record] = []
    convert = iree_tool("iree-convert-parameters")
    sources = [("irpa", model_irpa(ctx))]
    if have_format("safetensors"):
        sources.insert(0, ("safetensors", model_safetensors(ctx)))
    else:
        out.append(skipped("P1 safetensors->irpa", "cp / iree-convert-parameters", "format not available"))
    for fmt, src in sources:
        dst = ctx.dir / f"p1_out_{fmt}.irpa"
        peer_dst = ctx.dir / f"p1_peer_{fmt}.irpa"
        label = f"P1 {fmt}->irpa {src.stat().st_size >> 20} MiB"
        ctx.log(label)

        def clean() -> None:
            drop(dst)
            drop(peer_dst)
            # No timed run pays for another's dirty pages, nor for memory the host took back.
            settle(src.stat().st_size)

        fns: dict[str, Callable[[], object]] = {
            "fast": lambda: _paramio_convert(str(src), str(dst), False),
            "cp": lambda: run_quiet(["cp", str(src), str(peer_dst)]),
            "durable": lambda: _paramio_convert(str(src), str(dst), True),
            "cp_sync": lambda: run_quiet(["sh", "-c", f"cp '{src}' '{peer_dst}' && sync -f '{peer_dst}'"]),
        }
        if convert is not None:
            fns["native"] = lambda: run_quiet([convert, f"--parameters={src}", f"--output={peer_dst}"])
            if have_cli("convert"):
                fns["cli"] = lambda: run_quiet(
                    [sys.executable, "-m", "paramio", "convert", f"--parameters={src}", f"--output={dst}"]
                )
        t = round_robin(fns, ctx.repeat, setup=clean)
        out.append(Record(f"{label} (no fsync)", t["fast"], "cp", t["cp"]))
        out.append(Record(f"{label} (durable)", t["durable"], "cp + sync", t["cp_sync"]))
        if convert is None:
            out.append(skipped(f"{label} (durable)", "iree-convert-parameters", "IREE tools not installed"))
        else:
            out.append(Record(f"{label} (durable)", t["durable"], "iree-convert-parameters", t["native"]))
            if "cli" in t:
                out.append(Record(f"{label} CLI paramio convert", t["cli"], "iree-convert-parameters", t["native"]))
            else:
                out.append(
                    skipped(f"{label} CLI paramio convert", "iree-convert-parameters", "CLI command not available")
                )
        clean()
    return out
