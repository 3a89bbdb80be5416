"""P1: convert a model file to IRPA. paramio (library, and the CLI when present) against `cp` of
the same bytes (no fsync) and IREE's native `iree-convert-parameters` (which fsyncs: compared
with paramio's durable write, "equal durability")."""

# ruff: noqa: B023  (each closure is timed inside its own loop iteration)
from __future__ import annotations

import sys

from cases.common import (
    Context,
    Record,
    drop,
    have_cli,
    have_format,
    iree_tool,
    median_time,
    model_irpa,
    model_safetensors,
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

        fast = median_time(lambda: _paramio_convert(str(src), str(dst), False), ctx.repeat, setup=clean)
        cp = median_time(lambda: run_quiet(["cp", str(src), str(peer_dst)]), ctx.repeat, setup=clean)
        out.append(Record(f"{label} (no fsync)", fast, "cp", cp))
        durable = median_time(lambda: _paramio_convert(str(src), str(dst), True), ctx.repeat, setup=clean)
        cp_sync = median_time(
            lambda: run_quiet(["sh", "-c", f"cp '{src}' '{peer_dst}' && sync -f '{peer_dst}'"]), ctx.repeat, setup=clean
        )
        out.append(Record(f"{label} (durable)", durable, "cp + sync", cp_sync))
        if convert is None:
            out.append(skipped(f"{label} (durable)", "iree-convert-parameters", "IREE tools not installed"))
        else:
            native = median_time(
                lambda: run_quiet([convert, f"--parameters={src}", f"--output={peer_dst}"]), ctx.repeat, setup=clean
            )
            out.append(Record(f"{label} (durable)", durable, "iree-convert-parameters", native))
            if have_cli("convert"):
                cli = median_time(
                    lambda: run_quiet([sys.executable, "-m", "paramio", "convert", f"--parameters={src}", f"--output={dst}"]),
                    ctx.repeat,
                    setup=clean,
                )
                out.append(Record(f"{label} CLI paramio convert", cli, "iree-convert-parameters", native))
            else:
                out.append(skipped(f"{label} CLI paramio convert", "iree-convert-parameters", "CLI command not available"))
        clean()
    return out
