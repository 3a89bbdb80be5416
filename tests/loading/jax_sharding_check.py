"""Run by test_jax_sharding.py in its own process: XLA_FLAGS gives JAX 8 CPU devices, which
must be set before JAX is imported (so not in the test process). Exits 0 after every check;
an assertion names what failed. Argument: a folder for the model files."""

from __future__ import annotations

import os
import sys

os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=8"

from pathlib import Path

import jax
import ml_dtypes
import numpy as np
from jax.sharding import Mesh, NamedSharding, SingleDeviceSharding
from jax.sharding import PartitionSpec as P

import paramio
from paramio.core.errors import InvalidArgumentError
from paramio.formats.registry import write_path
from paramio.index.index import ParameterIndex
from paramio.sources import ByteSource, FileSource, register_scheme

READS: list[int] = []


class Counting(ByteSource):
    def __init__(self, path: str) -> None:
        self._file = FileSource(path, use_mmap=False)
        self.name = f"jaxcount://{path}"

    @property
    def size(self) -> int:
        return self._file.size

    def view(self, offset: int, length: int) -> memoryview:
        READS.append(length)
        return self._file.view(offset, length)

    def readinto(self, offset: int, out: memoryview | bytearray) -> int:
        READS.append(len(out))
        return self._file.readinto(offset, out)


register_scheme("jaxcount", lambda url, **options: Counting(url.removeprefix("jaxcount://")))


def model(folder: Path, dtype: object) -> tuple[Path, dict[str, np.ndarray]]:
    rng = np.random.default_rng(5)
    tensors = {
        "w": (rng.standard_normal((16, 8, 4)) * 40).astype(dtype),
        "b": (rng.standard_normal(16) * 40).astype(dtype),
    }
    index = ParameterIndex()
    for k, v in tensors.items():
        index.add_array(k, v)
    path = folder / f"m-{np.dtype(dtype).name}.safetensors"
    write_path(path, list(index.entries), format="safetensors")
    return path, tensors


def check(path: Path, tensors: dict[str, np.ndarray], sharding: object, spec_name: str) -> None:
    index = ParameterIndex.open(f"jaxcount://{path}")
    READS.clear()
    got = paramio.load(index, into="jax", sharding={"w": sharding})
    a = got["w"]
    full = tensors["w"]
    assert isinstance(a, jax.Array) and a.shape == full.shape and a.dtype == full.dtype, (spec_name, a)
    assert a.sharding == sharding, (spec_name, a.sharding)
    distinct: dict[tuple[tuple[int, int], ...], int] = {}
    for shard in a.addressable_shards:
        want = full[shard.index]
        data = np.asarray(shard.data)
        assert data.tobytes() == want.tobytes() and data.shape == want.shape, (spec_name, shard.index)
        assert shard.data.devices() == {shard.device}, spec_name
        box = tuple((s.indices(n)[0], s.indices(n)[1]) for s, n in zip(shard.index, full.shape, strict=True))
        distinct[box] = want.nbytes
    assert np.asarray(got["b"]).tobytes() == tensors["b"].tobytes()  # not sharded: loaded whole
    # Each distinct slice read once (devices holding the same slice share it), nothing else.
    assert sum(READS) == sum(distinct.values()) + tensors["b"].nbytes, (spec_name, sum(READS), distinct)


def main(folder: Path) -> None:
    devices = jax.devices()
    assert len(devices) == 8 and devices[0].platform == "cpu", devices
    mesh = Mesh(np.array(devices).reshape(4, 2), ("x", "y"))
    specs = {
        "x,y": NamedSharding(mesh, P("x", "y")),  # both leading axes cut: strided reads
        "-,x": NamedSharding(mesh, P(None, "x")),  # a non-leading axis
        "-,-,x": NamedSharding(mesh, P(None, None, "x")),  # the innermost axis
        "y": NamedSharding(mesh, P("y")),  # half the devices hold each slice
        "xy": NamedSharding(mesh, P(("x", "y"))),  # axis 0 over all 8 devices
        "replicated": NamedSharding(mesh, P()),  # every device the whole tensor, read once
        "single": SingleDeviceSharding(devices[3]),
    }
    for dtype in (np.float32, ml_dtypes.bfloat16, np.int8, np.float16):
        path, tensors = model(folder, dtype)
        for name, sharding in specs.items():
            check(path, tensors, sharding, f"{np.dtype(dtype).name} {name}")
    path, tensors = model(folder, np.float32)

    # One sharding for all, a callable, glob patterns.
    s = NamedSharding(mesh, P("x"))
    got = paramio.load(path, into="jax", sharding=s)
    assert got["w"].sharding == s and got["b"].sharding == s
    got = paramio.load(path, into="jax", sharding=lambda key, shape: s if len(shape) == 3 else None)
    assert got["w"].sharding == s and got["b"].sharding != s
    got = paramio.load(path, into="jax", sharding={"[wz]": NamedSharding(mesh, P(None, "y"))})
    assert got["w"].sharding == NamedSharding(mesh, P(None, "y"))
    assert np.asarray(got["w"]).tobytes() == tensors["w"].tobytes()

    # Streaming, with a budget far below a tensor: the same arrays.
    streamed = dict(paramio.loading.stream(path, into="jax", sharding=s, budget="4KiB", concurrency=2))
    assert np.asarray(streamed["w"]).tobytes() == tensors["w"].tobytes()

    # Slices JAX cannot make evenly are refused before any read, naming the key.
    try:
        paramio.load(path, into="jax", sharding={"w": NamedSharding(mesh, P(None, None, ("x", "y")))})
    except InvalidArgumentError as exc:
        assert "'w'" in str(exc) and "cannot be sharded as asked" in str(exc), exc  # 4 over 8 devices
    else:
        raise AssertionError("an uneven sharding was accepted")
    try:
        paramio.load(path, into="jax", sharding=s, device="cpu")
    except InvalidArgumentError as exc:
        assert "leave device= out" in str(exc)
    else:
        raise AssertionError("device= beside sharding= was accepted")
    print("jax sharding checks passed")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
