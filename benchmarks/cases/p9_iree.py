"""P9: every tensor of an IRPA model onto an IREE ``local-task`` device. paramio
(``paramio.load(into="iree")``) against the loop a user writes with ``iree.runtime``:
``ParameterIndex.load`` + ``parameter_index_entry_as_numpy_ndarray`` + ``asdevicearray``.
Goal: <= 0.7x. Contenders take turns, `settle` before each run."""

# ruff: noqa: B023
from __future__ import annotations

from cases.common import Context, Record, model_irpa, round_robin, settle, skipped


def run(ctx: Context) -> list[Record]:
    name = "P9 irpa into IREE local-task device arrays"
    peer = "iree ParameterIndex + entry_as_numpy_ndarray + asdevicearray"
    try:
        import iree.runtime as rt
    except ImportError:
        return [skipped(name, peer, "iree-base-runtime not installed")]
    import paramio
    from paramio.index.index import ParameterIndex

    path = str(model_irpa(ctx))
    size = ParameterIndex.open(path).total_bytes
    device = rt.get_device("local-task")

    def mine() -> int:
        arrays = paramio.load(path, into="iree", device="local-task")
        return len(arrays)

    def theirs() -> int:
        index = rt.ParameterIndex()
        index.load(path)
        arrays = [rt.asdevicearray(device, rt.parameter_index_entry_as_numpy_ndarray(e)) for _, e in index.items()]
        return len(arrays)

    ctx.log(f"{name} ({size >> 20} MiB)")
    t = round_robin({"mine": mine, "theirs": theirs}, ctx.repeat, setup=lambda: settle(size))
    return [Record(f"{name}, {size >> 20} MiB", t["mine"], peer, t["theirs"])]
