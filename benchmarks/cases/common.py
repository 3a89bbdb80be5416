"""What every benchmark case shares: the run context, timing, records, data generators.

Data is generated once per run under the run's folder and reused by the cases that need it, so
each case times only its own work. Files are read warm (in the page cache): these numbers compare
CPU and copy costs, not disk speed.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

__all__ = [
    "Context",
    "Record",
    "Skip",
    "have_format",
    "iree_tool",
    "median_time",
    "quiesce",
    "round_robin",
    "settle",
    "skipped",
]

MiB = 1 << 20


class Skip(Exception):
    """A case (or one record of it) cannot run here; the message says why."""


@dataclasses.dataclass
class Record:
    """One comparison: paramio against one peer, measured in the same run."""

    name: str
    paramio_s: float | None
    peer: str
    peer_s: float | None
    ratio: float | None = None  # paramio / peer: below 1 means paramio is faster (or smaller)
    unit: str = "s"
    note: str = ""

    def __post_init__(self) -> None:
        if self.ratio is None and self.paramio_s is not None and self.peer_s:
            self.ratio = self.paramio_s / self.peer_s

    def as_json(self) -> dict[str, object]:
        return dataclasses.asdict(self)


def skipped(name: str, peer: str, why: str) -> Record:
    return Record(name, None, peer, None, None, note=f"skipped ({why})")


@dataclasses.dataclass
class Context:
    """Sizes and places for one run."""

    dir: Path
    quick: bool
    size_mib: int
    repeat: int
    verbose: bool = True
    _cache: dict[str, object] = dataclasses.field(default_factory=dict)

    def cached(self, key: str, make: Callable[[], object]) -> object:
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]

    def log(self, msg: str) -> None:
        if self.verbose:
            print(f"  .. {msg}", file=sys.stderr, flush=True)

    @property
    def small_counts(self) -> tuple[int, ...]:
        return (1_000, 10_000) if self.quick else (10_000, 100_000)


def median_time(fn: Callable[[], object], repeat: int, *, setup: Callable[[], object] | None = None) -> float:
    """Median wall time of `fn` over `repeat` runs (after one untimed warm-up run)."""
    if setup is not None:
        setup()
    fn()
    times = []
    for _ in range(max(1, repeat)):
        if setup is not None:
            setup()
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def round_robin(fns: dict[str, Callable[[], object]], repeat: int, setup: Callable[[], object]) -> dict[str, float]:
    """Median time of each of `fns`, run in turns (one untimed warm-up round first), `setup`
    (untimed) before every run: a slow spell of the VM hits every contender, not the one timed
    during it."""
    times: dict[str, list[float]] = {k: [] for k in fns}
    for r in range(max(1, repeat) + 1):
        for k, fn in fns.items():
            setup()
            t = time.perf_counter()
            fn()
            if r:
                times[k].append(time.perf_counter() - t)
    return {k: statistics.median(v) for k, v in times.items()}


def have_format(name: str) -> bool:
    """Whether paramio can read and write `name` in this checkout (peers write theirs in parallel)."""
    try:
        mod = importlib.import_module(f"paramio.formats.{name}")
    except ImportError:
        return False
    return callable(getattr(mod, "read_path", None)) and callable(getattr(mod, "write_path", None))


def have_cli(command: str) -> bool:
    try:
        importlib.import_module(f"paramio.cli.{command}")
    except ImportError:
        return False
    return True


def iree_tool(name: str) -> str | None:
    """The native IREE binary (the console-script wrapper adds ~25 ms of Python start-up)."""
    try:
        import iree._runtime_libs as libs  # type: ignore[import-not-found]

        cand = Path(libs.__file__).parent / name
        if cand.exists():
            return str(cand)
    except ImportError:
        pass
    return shutil.which(name)


def python_env() -> dict[str, str]:
    """The environment for timing a Python command as users run it: with bytecode caching on
    (``PYTHONDONTWRITEBYTECODE`` would make every run compile paramio's sources again, tens of
    milliseconds an installed package never pays; the untimed warm-up run writes the cache)."""
    return {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def run_quiet(args: list[str], env: dict[str, str] | None = None) -> None:
    proc = subprocess.run(args, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"{args[0]} failed ({proc.returncode}): {proc.stderr.strip()[-400:]}")


# -- data -------------------------------------------------------------------------------------


def _fill(rng: np.random.Generator, nbytes: int) -> np.ndarray:
    return rng.integers(0, 255, size=nbytes, dtype=np.uint8)


def model_tensors(total_mib: int, tensor_mib: int) -> list[tuple[str, tuple[int, ...], int]]:
    """(name, f32 shape, nbytes) for a transformer-like model of about `total_mib`, plus small
    norms and biases so that sizes and alignments vary."""
    out: list[tuple[str, tuple[int, ...], int]] = []
    big = max(1, tensor_mib) * MiB // 4
    cols = 1024
    rows = max(1, big // cols)
    total = 0
    layer = 0
    while total < total_mib * MiB:
        out.append((f"layers.{layer}.weight", (rows, cols), rows * cols * 4))
        out.append((f"layers.{layer}.bias", (cols + layer % 7,), (cols + layer % 7) * 4))
        out.append((f"layers.{layer}.norm", (cols,), cols * 4))
        total += (rows * cols + 2 * cols + layer % 7) * 4
        layer += 1
    return out


def write_safetensors_raw(path: Path, tensors: list[tuple[str, tuple[int, ...], int]], seed: int = 0) -> None:
    """A valid safetensors file written by streaming (the `safetensors` package would need every
    tensor in memory at once). Checked against `safetensors.safe_open` by the callers' peers."""
    header: dict[str, object] = {"__metadata__": {"format": "np", "made_by": "paramio-benchmarks"}}
    pos = 0
    for name, shape, nbytes in tensors:
        header[name] = {"dtype": "F32", "shape": list(shape), "data_offsets": [pos, pos + nbytes]}
        pos += nbytes
    blob = json.dumps(header, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)
    rng = np.random.default_rng(seed)
    block = _fill(rng, 8 * MiB).tobytes()
    tmp = path.with_suffix(".part")
    with open(tmp, "wb") as f:
        f.write(len(blob).to_bytes(8, "little"))
        f.write(blob)
        for i, (_name, _shape, nbytes) in enumerate(tensors):
            left = nbytes
            salt = bytes([i % 251]) * 64  # different bytes per tensor
            while left > 0:
                chunk = block[: min(left, len(block))]
                f.write(salt[: min(64, len(chunk))] + chunk[64:] if len(chunk) > 64 else chunk)
                left -= len(chunk)
    os.replace(tmp, path)


def safetensors_entries(path: Path) -> list[object]:
    """Entries over a safetensors file's tensors, parsed here (not by paramio's safetensors
    module, which may not exist yet) so that IRPA data can be made from it by streaming."""
    from paramio.core.entry import ParameterEntry
    from paramio.core.tensor import TensorInfo, encode_tensor_metadata
    from paramio.sources.file import FileSource

    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(n))
    source = FileSource(path)
    base = 8 + n
    out: list[object] = []
    for name, info in header.items():
        if name == "__metadata__":
            continue
        a, b = info["data_offsets"]
        meta = encode_tensor_metadata(TensorInfo("float32", tuple(info["shape"])))
        out.append(ParameterEntry.data(name, source, base + a, b - a, metadata=meta))
    return out


def write_irpa_model(path: Path, safetensors_path: Path) -> None:
    """An IRPA archive with the same tensors as `safetensors_path`, streamed by paramio's writer."""
    from paramio.formats.irpa.writer import write_archive

    write_archive(path, safetensors_entries(safetensors_path), durable=False)  # type: ignore[arg-type]


def write_gguf_model(path: Path, tensors: list[tuple[str, tuple[int, ...], int]], seed: int = 0) -> None:
    import gguf

    rng = np.random.default_rng(seed)
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_name("paramio-benchmark")
    arrays = []
    for name, shape, nbytes in tensors:
        a = _fill(rng, nbytes).view(np.float32).reshape(shape)
        arrays.append(a)
        w.add_tensor(name, a)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def many_small(count: int) -> list[tuple[str, np.ndarray]]:
    """`count` small f32 tensors with realistic dotted names."""
    base = np.arange(16, dtype=np.float32)
    return [(f"model.layers.{i // 8}.block{i % 8}.weight", base + i) for i in range(count)]


def write_many_irpa(path: Path, count: int) -> None:
    from paramio.formats.irpa.writer import write_archive
    from paramio.index.index import ParameterIndex

    index = ParameterIndex()
    for name, arr in many_small(count):
        index.add_array(name, arr)
    write_archive(path, list(index.values()), durable=False)


def write_many_safetensors(path: Path, count: int) -> None:
    import safetensors.numpy

    safetensors.numpy.save_file(dict(many_small(count)), str(path))


def write_many_gguf(path: Path, count: int) -> None:
    import gguf

    w = gguf.GGUFWriter(str(path), "llama")
    for name, arr in many_small(count):
        w.add_tensor(name, arr)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


# -- shared files, made once per run ----------------------------------------------------------


def model_layout(ctx: Context) -> list[tuple[str, tuple[int, ...], int]]:
    tensor_mib = 4 if ctx.quick else 32
    return model_tensors(ctx.size_mib, tensor_mib)


def model_safetensors(ctx: Context) -> Path:
    def make() -> Path:
        p = ctx.dir / "model.safetensors"
        ctx.log(f"generating {p.name} ({ctx.size_mib} MiB)")
        write_safetensors_raw(p, model_layout(ctx))
        return p

    return ctx.cached("model.safetensors", make)  # type: ignore[return-value]


def model_irpa(ctx: Context) -> Path:
    def make() -> Path:
        p = ctx.dir / "model.irpa"
        ctx.log(f"generating {p.name}")
        write_irpa_model(p, model_safetensors(ctx))
        return p

    return ctx.cached("model.irpa", make)  # type: ignore[return-value]


def model_gguf(ctx: Context) -> Path:
    def make() -> Path:
        p = ctx.dir / "model.gguf"
        ctx.log(f"generating {p.name}")
        write_gguf_model(p, model_layout(ctx))
        return p

    return ctx.cached("model.gguf", make)  # type: ignore[return-value]


_MANY = {"irpa": write_many_irpa, "safetensors": write_many_safetensors, "gguf": write_many_gguf}


def many_file(ctx: Context, fmt: str, count: int) -> Path:
    def make() -> Path:
        p = ctx.dir / f"many{count}.{fmt}"
        ctx.log(f"generating {p.name}")
        _MANY[fmt](p, count)
        return p

    return ctx.cached(f"many.{fmt}.{count}", make)  # type: ignore[return-value]


def settle(nbytes: int) -> None:
    """Before a timed write of about `nbytes`: flush earlier runs' dirty pages, then touch and free
    that much memory (plus 1 GiB), so the run starts with warm free memory.

    Why: these VMs report freed guest memory to the host (virtio-balloon free page reporting),
    which takes it back; the next run to allocate page cache faults it in again from the host.
    Without this step the same `cp` of 2 GiB measured 0.6 to 5.5 s; with it, within about 15%.
    Reporting waits about two seconds, so the memory is still warm when the timed run starts.
    """
    os.sync()
    block = np.ones(nbytes + (1 << 30), dtype=np.uint8)
    del block


def quiesce(seconds: float = 2.0) -> None:
    """Before millisecond timings: flush dirty pages and give the kernel's background work
    (writeback, ext4's discards of deleted gigabytes) time to finish."""
    os.sync()
    time.sleep(seconds)
    os.sync()


def drop(path: Path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
