"""P7: write NumPy arrays already in memory (a model of realistic tensor sizes) to a file.

paramio: ``ParameterIndex()`` + ``add_array`` + ``create_archive_file`` (IRPA, durable: its
default), and ``paramio.write_path`` to IRPA and to safetensors, durable and not. Peers:
``safetensors.numpy.save_file`` (no fsync), the same followed by an fsync of the file and its
folder (what paramio's durable write does: "equal durability"), and IREE's Python
``ParameterIndex`` + ``add_buffer`` + ``create_archive_file`` (which fsyncs). Every timed run
starts after ``os.sync()`` with no output file, so no run pays for flushing another's pages.
Writes of gigabytes swing with the kernel's writeback (and any other load) by 2-4x from run to
run, so the writers take turns, round after round, and each keeps the median of its rounds: a
slow spell hits them all, not the one timed during it.
"""

# ruff: noqa: B023  (each closure is timed inside its own loop iteration)
from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from cases.common import Context, MiB, Record, drop, have_format, round_robin, settle, skipped


def model_arrays(total_mib: int, seed: int = 0) -> dict[str, np.ndarray]:
    """A decoder-style model of about `total_mib`: an embedding, per layer four square attention
    matrices, three MLP matrices and two norms (f32, bf16-free so every peer can write it)."""
    hidden = 2048 if total_mib >= 512 else 256
    mlp = hidden * 11 // 4
    vocab = 16 * hidden
    rng = np.random.default_rng(seed)

    def make(*shape: int) -> np.ndarray:
        return rng.random(shape, dtype=np.float32)

    out: dict[str, np.ndarray] = {"embed.weight": make(vocab, hidden)}
    total = out["embed.weight"].nbytes
    layer = 0
    while total < total_mib * MiB:
        p = f"layers.{layer}."
        for name in ("q", "k", "v", "o"):
            out[p + f"attn.{name}.weight"] = make(hidden, hidden)
        out[p + "mlp.gate.weight"] = make(mlp, hidden)
        out[p + "mlp.up.weight"] = make(mlp, hidden)
        out[p + "mlp.down.weight"] = make(hidden, mlp)
        out[p + "attn_norm.weight"] = make(hidden)
        out[p + "mlp_norm.weight"] = make(hidden)
        total = sum(a.nbytes for a in out.values())
        layer += 1
    out["norm.weight"] = make(hidden)
    return out


def _index(arrays: dict[str, np.ndarray]) -> object:
    from paramio.index.index import ParameterIndex

    index = ParameterIndex()
    for k, a in arrays.items():
        index.add_array(k, a)
    return index


def _paramio_archive(arrays: dict[str, np.ndarray], dst: Path) -> None:
    _index(arrays).create_archive_file(str(dst))  # type: ignore[attr-defined]


def _paramio_write(arrays: dict[str, np.ndarray], dst: Path, durable: bool) -> None:
    import paramio

    paramio.write_path(str(dst), _index(arrays).values(), durable=durable, on_loss="error")  # type: ignore[attr-defined]


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _st_save(arrays: dict[str, np.ndarray], dst: Path, durable: bool) -> None:
    import safetensors.numpy

    safetensors.numpy.save_file(arrays, str(dst))
    if durable:
        _fsync(dst)
        _fsync(dst.parent)


def _iree_archive(arrays: dict[str, np.ndarray], dst: Path) -> None:
    import iree.runtime as rt

    index = rt.ParameterIndex()
    for k, a in arrays.items():
        index.add_buffer(k, a)
    index.create_archive_file(str(dst))


def run(ctx: Context) -> list[Record]:
    out: list[Record] = []
    ctx.log(f"P7 making arrays ({ctx.size_mib} MiB)")
    arrays = model_arrays(ctx.size_mib)
    size = sum(a.nbytes for a in arrays.values())
    label = f"P7 write {len(arrays)} arrays {size >> 20} MiB"
    dsts = [ctx.dir / n for n in ("p7.irpa", "p7.safetensors", "p7_peer.safetensors", "p7_peer.irpa")]

    def clean() -> None:
        for d in dsts:
            drop(d)
        settle(2 * size)  # no run pays for another's dirty pages, nor for memory the host took back

    irpa, st, peer_st, peer_irpa = dsts
    fns: dict[str, Callable[[], object]] = {
        "st": lambda: _st_save(arrays, peer_st, False),
        "st_durable": lambda: _st_save(arrays, peer_st, True),
        "archive": lambda: _paramio_archive(arrays, irpa),
        "irpa_fast": lambda: _paramio_write(arrays, irpa, False),
    }
    try:
        import iree.runtime  # noqa: F401
    except ImportError:
        out.append(skipped(f"{label} irpa create_archive_file (durable)", "iree create_archive_file", "no iree"))
    else:
        fns["iree"] = lambda: _iree_archive(arrays, peer_irpa)
    if have_format("safetensors"):
        fns["st_p"] = lambda: _paramio_write(arrays, st, True)
        fns["st_p_fast"] = lambda: _paramio_write(arrays, st, False)
    else:
        out.append(skipped(f"{label} safetensors write_path", "save_file", "format not available"))
    ctx.log(label)
    t = round_robin(fns, ctx.repeat, clean)
    out.append(
        Record(f"{label} irpa create_archive_file (durable)", t["archive"], "save_file + fsync", t["st_durable"])
    )
    if "iree" in t:
        out.append(
            Record(f"{label} irpa create_archive_file (durable)", t["archive"], "iree create_archive_file", t["iree"])
        )
    out.append(Record(f"{label} irpa write_path (no fsync)", t["irpa_fast"], "save_file", t["st"]))
    if "st_p" in t:
        out.append(Record(f"{label} safetensors write_path (durable)", t["st_p"], "save_file + fsync", t["st_durable"]))
        out.append(Record(f"{label} safetensors write_path (no fsync)", t["st_p_fast"], "save_file", t["st"]))
    clean()
    return out
