"""P4: a typed array per tensor without copying. paramio's `entry.to_numpy()` (a view of the
mapping) against `safetensors.safe_open(framework="numpy").get_tensor` (which copies)."""

# ruff: noqa: B023  (each closure is timed inside its own loop iteration)
from __future__ import annotations

from cases.common import Context, Record, have_format, many_file, median_time, model_irpa, model_safetensors, skipped


def _paramio_views(path: str) -> int:
    from paramio.index.index import ParameterIndex

    index = ParameterIndex.open(path)
    return sum(e.to_numpy().size for e in index.values())


def _safe_open(path: str) -> int:
    from safetensors import safe_open

    with safe_open(path, framework="numpy") as f:
        return sum(f.get_tensor(k).size for k in f.keys())


def run(ctx: Context) -> list[Record]:
    out: list[Record] = []
    irpa_model = str(model_irpa(ctx))
    count = ctx.small_counts[0]
    if not have_format("safetensors"):
        out.append(skipped("P4 safetensors views", "safetensors.safe_open get_tensor", "format not available"))
        # Still useful: the cost of paramio's views alone, on IRPA, against safetensors on the same tensors.
        st = str(model_safetensors(ctx))
        mine = median_time(lambda: _paramio_views(irpa_model), ctx.repeat)
        peer = median_time(lambda: _safe_open(st), ctx.repeat)
        out.append(
            Record(
                f"P4 {ctx.size_mib} MiB model typed views (paramio on .irpa)",
                mine,
                "safetensors.safe_open get_tensor",
                peer,
                note="same tensors; paramio reads the IRPA copy",
            )
        )
        return out
    for label, path in (
        (f"P4 safetensors {ctx.size_mib} MiB model typed views", str(model_safetensors(ctx))),
        (f"P4 safetensors {count} small tensors typed views", str(many_file(ctx, "safetensors", count))),
    ):
        ctx.log(label)
        mine = median_time(lambda: _paramio_views(path), ctx.repeat)
        peer = median_time(lambda: _safe_open(path), ctx.repeat)
        out.append(Record(label, mine, "safetensors.safe_open get_tensor", peer))
    return out
