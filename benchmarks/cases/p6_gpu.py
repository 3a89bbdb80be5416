"""P6: host to GPU. Runs only where `torch.cuda.is_available()`: paramio views moved with
`torch.from_numpy(...).to("cuda")` against `safetensors.torch.load_file(device="cuda")`."""

from __future__ import annotations

from cases.common import Context, Record, have_format, median_time, model_safetensors, skipped


def run(ctx: Context) -> list[Record]:
    name = "P6 safetensors -> cuda"
    peer = "safetensors.torch.load_file(device=cuda)"
    try:
        import torch
    except ImportError:
        return [skipped(name, peer, "torch not installed")]
    if not torch.cuda.is_available():
        return [skipped(name, peer, "no CUDA device")]
    if not have_format("safetensors"):
        return [skipped(name, peer, "format not available")]
    import safetensors.torch

    from paramio.index.index import ParameterIndex

    path = str(model_safetensors(ctx))

    def mine() -> None:
        index = ParameterIndex.open(path)
        tensors = [torch.from_numpy(e.to_numpy()).to("cuda", non_blocking=False) for e in index.values()]
        torch.cuda.synchronize()
        del tensors

    def theirs() -> None:
        tensors = safetensors.torch.load_file(path, device="cuda")
        torch.cuda.synchronize()
        del tensors

    return [Record(name, median_time(mine, ctx.repeat), peer, median_time(theirs, ctx.repeat))]
