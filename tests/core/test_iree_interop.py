"""IREE as the oracle: archives each side writes, read by the other with identical entries."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from paramio import ParameterIndex
from paramio.index.dump import format_dump

rt = pytest.importorskip("iree.runtime", reason="iree-base-runtime is the oracle for IRPA")
pytestmark = pytest.mark.interop


def _iree_entries(path: Path) -> list[tuple[str, str, int, bytes, bytes]]:
    index = rt.ParameterIndex()
    index.load(str(path), mmap=False)
    out = []
    for key, e in index.items():
        if e.is_splat:
            out.append((key, "splat", e.length, bytes(e.metadata), bytes(e.splat_pattern)))
        else:
            out.append((key, "data", e.length, bytes(e.metadata), bytes(e.file_view)))
    return out


def _paramio_entries(path: Path) -> list[tuple[str, str, int, bytes, bytes]]:
    index = ParameterIndex.open(path, duplicates="keep")
    return [
        (e.key, "splat" if e.is_splat else "data", e.length, e.metadata, e.pattern if e.is_splat else e.read())
        for e in index.values()
    ]


def _sample_index() -> ParameterIndex:
    index = ParameterIndex()
    index.add_splat("splat.f32", np.float32(4.5), 64)
    index.add_splat("splat.bytes", b"\xab\xcd", 10)
    index.add_buffer("raw", b"\x01\x02\x03", metadata="some metadata")
    index.add_buffer("typed", np.arange(12, dtype=np.float16).reshape(3, 4))
    index.add_buffer("ünï©ødé key", np.array([7], dtype=np.int64))
    index.add_buffer("empty", b"")
    index.add_buffer("big", np.arange(100_000, dtype=np.int32))
    return index


def test_paramio_archive_loads_in_iree_python(tmp_path: Path) -> None:
    _sample_index().create_archive_file(tmp_path / "p.irpa")
    assert _iree_entries(tmp_path / "p.irpa") == _paramio_entries(tmp_path / "p.irpa")
    iree_index = rt.ParameterIndex()
    iree_index.load(str(tmp_path / "p.irpa"))
    typed = [e for k, e in iree_index.items() if k == "typed"][0]
    np.testing.assert_array_equal(
        rt.parameter_index_entry_as_numpy_ndarray(typed), np.arange(12, dtype=np.float16).reshape(3, 4)
    )


def test_iree_python_archive_reads_in_paramio(tmp_path: Path) -> None:
    index = rt.ParameterIndex()
    index.add_splat("weight", np.int8(2), 600)
    index.add_buffer("array", np.array([[1], [2], [3]], dtype=np.int64))
    rt.parameter_index_add_numpy_ndarray(index, "np.tensor", np.ones((2, 3), dtype=np.float16))
    index.add_buffer("with.meta", b"abc", metadata="some metadata")
    index.create_archive_file(str(tmp_path / "i.irpa"))
    assert _paramio_entries(tmp_path / "i.irpa") == _iree_entries(tmp_path / "i.irpa")
    ours = ParameterIndex.open(tmp_path / "i.irpa")
    np.testing.assert_array_equal(ours["np.tensor"].to_numpy(), np.ones((2, 3), dtype=np.float16))
    assert ours["np.tensor"].to_numpy().dtype == np.float16


def test_same_inputs_same_bytes_as_iree_builder(tmp_path: Path) -> None:
    """Given the same entries, paramio's archive is byte-identical to IREE's create_archive_file."""
    arrays = {"a": np.arange(5, dtype=np.uint8), "b": np.arange(33, dtype=np.uint8), "c": b"xyz" * 50}
    iree_index = rt.ParameterIndex()
    ours = ParameterIndex()
    iree_index.add_splat("s1", np.float32(1.0), 16)
    ours.add_splat("s1", np.float32(1.0), 16)
    for k, v in arrays.items():
        iree_index.add_buffer(k, v)
        ours.add_buffer(k, v, metadata=b"")
    iree_index.add_splat("s2", np.int16(-3), 8, metadata="m")
    ours.add_splat("s2", np.int16(-3), 8, metadata="m")
    iree_index.create_archive_file(str(tmp_path / "iree.irpa"))
    ours.create_archive_file(tmp_path / "ours.irpa")
    assert (tmp_path / "ours.irpa").read_bytes() == (tmp_path / "iree.irpa").read_bytes()


def test_iree_create_parameters_output_reads_in_paramio(tmp_path: Path, iree_tool: Callable[[str], str]) -> None:
    out = tmp_path / "c.irpa"
    subprocess.run(
        [
            iree_tool("iree-create-parameters"),
            "--data=w=16xi8=170",
            "--splat=s=4xf32=4.1",
            "--data=z=8xf32",
            "--splat=big=2x4096xi16=123",
            f"--output={out}",
            "--quiet",
        ],
        check=True,
    )
    assert _paramio_entries(out) == _iree_entries(out)
    index = ParameterIndex.open(out)
    assert index["w"].read() == b"\xaa" * 16
    assert index["s"].read() == np.full(4, 4.1, dtype=np.float32).tobytes()
    assert index["big"].length == 2 * 4096 * 2


def test_dump_text_matches_iree_dump_parameters(tmp_path: Path, iree_tool: Callable[[str], str]) -> None:
    _sample_index().create_archive_file(tmp_path / "p.irpa")
    iree = subprocess.run(
        [iree_tool("iree-dump-parameters"), f"--parameters={tmp_path / 'p.irpa'}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    ours = format_dump(ParameterIndex.open(tmp_path / "p.irpa").values(), scope="")
    assert ours == iree


def test_repr_matches_iree_repr(tmp_path: Path) -> None:
    _sample_index().create_archive_file(tmp_path / "p.irpa")
    iree_index = rt.ParameterIndex()
    iree_index.load(str(tmp_path / "p.irpa"))
    assert repr(ParameterIndex.open(tmp_path / "p.irpa")) == repr(iree_index)


def test_turbine_pytorch_metadata_is_read(tmp_path: Path) -> None:
    """The PYTORCH: prefix iree-turbine and sharktank write (IREE's test fixture, rebuilt)."""
    meta = (
        'PYTORCH:{"type": "Tensor", "dtype": "uint8", "shape": [4], "dtype_desc": {"class_name": "dtype", '
        '"is_complex": false, "is_floating_point": false, "is_signed": false, "itemsize": 1}}'
    )
    index = rt.ParameterIndex()
    index.add_buffer("the_torch_tensor", np.array([1, 2, 3, 4], dtype=np.uint8), metadata=meta)
    index.create_archive_file(str(tmp_path / "turbine.irpa"))
    ours = ParameterIndex.open(tmp_path / "turbine.irpa")["the_torch_tensor"]
    assert ours.tensor is not None and ours.tensor.dtype == "uint8" and ours.tensor.shape == (4,)
    assert ours.to_numpy().tolist() == [1, 2, 3, 4]
