"""Every byte loaded equals the file, for every format and kind of source, checked against the
format's own library (or IREE's runtime) reading the same file."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

import paramio
from paramio import ParameterIndex, Provider
from paramio.core.errors import InvalidArgumentError, ParameterNotFoundError
from paramio.loading import load, load_async, stream


def _same(got: dict[str, object], want: dict[str, np.ndarray]) -> None:
    assert list(got) == list(want)
    for k, w in want.items():
        g = got[k]
        assert isinstance(g, np.ndarray)
        assert g.dtype == w.dtype and g.shape == w.shape, k
        assert g.tobytes() == w.tobytes(), k
        assert g.flags.writeable and g.flags.c_contiguous


@pytest.mark.interop
@pytest.mark.parametrize("budget", ["4KiB", "64KiB", "256MiB"])
def test_safetensors_equals_the_library(st_file: tuple[Path, dict[str, np.ndarray]], budget: str) -> None:
    import safetensors.numpy

    path, _ = st_file
    want = safetensors.numpy.load_file(str(path))
    got = load(path, budget=budget)
    assert list(got) == ParameterIndex.open(path).keys()  # the file's order, whatever landed first
    _same(got, {k: want[k] for k in got})
    assert set(got) == set(want)
    assert got.summary.bytes == sum(a.nbytes for a in want.values()) and got.summary.tensors == len(want)


@pytest.mark.interop
def test_sharded_set_equals_its_arrays(st_set: tuple[Path, dict[str, np.ndarray]]) -> None:
    index, a = st_set
    got = load(index, budget="64KiB", concurrency=3)
    _same(dict(sorted(got.items())), dict(sorted(a.items())))
    shard = sorted(index.parent.glob("model-0000*"))[1]  # any shard opens the whole set
    assert set(load(shard)) == set(a)


@pytest.mark.interop
def test_gguf_equals_gguf_py(gguf_file: tuple[Path, dict[str, np.ndarray]]) -> None:
    import gguf

    path, _ = gguf_file
    reader = gguf.GGUFReader(str(path))
    got = load(path, budget="64KiB")
    assert len(got) == len(reader.tensors)
    for t in reader.tensors:
        g = got[t.name]
        assert isinstance(g, np.ndarray)
        assert g.tobytes() == np.asarray(t.data).tobytes(), t.name
        assert g.size == int(np.prod(t.shape))


@pytest.mark.interop
def test_irpa_with_splats_equals_iree_runtime(irpa_file: Path) -> None:
    import iree.runtime as rt

    index = rt.ParameterIndex()
    index.load(str(irpa_file))
    got = load(irpa_file, budget="8KiB", concurrency=2)
    want = {}
    for k, e in index.items():
        want[k] = (e.splat_pattern * (e.length // len(e.splat_pattern))) if e.is_splat else bytes(e.file_view)
    assert list(got) == list(want)
    for k, w in want.items():
        g = got[k]
        assert isinstance(g, np.ndarray)
        assert g.tobytes() == w, k
    # IREE's tool writes no type metadata: untyped entries load as their bytes.
    assert got["fours"].dtype == np.uint8 and np.all(got["fours"].view(np.int16) == 4)
    assert np.all(got["b"] == 3) and not got["a"].any()  # a wide --data pattern fails in IREE 3.13 (reference bug list)


def test_index_and_entries_and_keys(st_file: tuple[Path, dict[str, np.ndarray]]) -> None:
    path, a = st_file
    index = ParameterIndex.open(path)
    index_mem = ParameterIndex()
    index_mem.add_array("x", np.arange(10, dtype=np.int32))
    index_mem.add_splat("s", np.float32(2.5), 64)
    got = load(index_mem)
    assert got["x"].tolist() == list(range(10))  # type: ignore[attr-defined]
    assert got["s"].tobytes() == np.full(16, 2.5, np.float32).tobytes()  # type: ignore[attr-defined]
    sub = load(index, ["head", "ids"])
    assert list(sub) == ["head", "ids"]
    _same(sub, {"head": a["head"], "ids": a["ids"]})
    assert list(load(index.values())) == list(index.keys())  # a plain list of entries
    with pytest.raises(ParameterNotFoundError, match="nope"):
        load(index, ["head", "nope"])


def test_provider_scopes_and_overlays(tmp_path: Path, st_file: tuple[Path, dict[str, np.ndarray]]) -> None:
    path, a = st_file
    p = Provider()
    p.add_file(path, "model")
    p.attach_overlay(tmp_path / "ov.irpa", "model")
    patched = np.full_like(a["norm"], 7)
    p.write("model::norm", patched)  # copy-on-write into the overlay: the overlay wins
    extra = ParameterIndex()
    extra.add_array("t", np.arange(3, dtype=np.uint16))
    p.add_index(extra, "")
    got = load(p)
    assert set(got) == {f"model::{k}" for k in a} | {"t"}
    assert got["model::norm"].tobytes() == patched.tobytes()  # type: ignore[attr-defined]
    assert got["model::embed"].tobytes() == a["embed"].tobytes()  # type: ignore[attr-defined]
    assert got["t"].tolist() == [0, 1, 2]  # type: ignore[attr-defined]


def test_async_twin_and_stream_give_the_same(st_file: tuple[Path, dict[str, np.ndarray]]) -> None:
    path, a = st_file
    got = asyncio.run(load_async(path, budget="64KiB"))
    _same(dict(sorted(got.items())), dict(sorted(a.items())))
    assert got.summary.tensors == len(a)
    streamed = dict(stream(path, budget="64KiB"))
    _same(dict(sorted(streamed.items())), dict(sorted(a.items())))
    assert paramio.load is load


def test_bad_arguments(st_file: tuple[Path, dict[str, np.ndarray]]) -> None:
    path, _ = st_file
    with pytest.raises(InvalidArgumentError, match="no byte source for ftp:// URLs"):
        load("ftp://host/model.safetensors")  # URLs that work: tests/remote
    with pytest.raises(InvalidArgumentError, match="unknown target into='tensorflow'"):
        load(path, into="tensorflow")
    with pytest.raises(InvalidArgumentError, match="below the minimum"):
        load(path, budget=100)
    with pytest.raises(InvalidArgumentError, match="not a size"):
        load(path, budget="lots")
    with pytest.raises(InvalidArgumentError, match="concurrency must be at least 1"):
        load(path, concurrency=0)
    with pytest.raises(InvalidArgumentError, match="cannot load from a int"):
        load(3)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="live on the host"):
        load(path, device="cuda")


def test_progress_callback_counts_every_byte(st_file: tuple[Path, dict[str, np.ndarray]]) -> None:
    path, a = st_file
    seen: list[int] = []
    got = load(path, budget="16KiB", progress=seen.append)
    assert sum(seen) == sum(x.nbytes for x in a.values()) == got.summary.bytes
    assert len(seen) > 10  # reported as pieces land, not once at the end


@pytest.mark.interop
def test_irpa_sets_load_through_the_manifest_or_any_shard(
    tmp_path: Path, st_file: tuple[Path, dict[str, np.ndarray]]
) -> None:
    path, a = st_file
    index = ParameterIndex.open(path)
    paramio.write_path(tmp_path / "m.irpa", index.values(), max_shard_size=200_000)
    shards = sorted(tmp_path.glob("m-0000*-of-*.irpa"))
    assert len(shards) >= 2
    for start in (tmp_path / "m.irpa.index.json", shards[-1]):
        got = load(start, budget="64KiB")
        assert {k: v.tobytes() for k, v in got.items()} == {k: v.tobytes() for k, v in a.items()}  # type: ignore[attr-defined]
