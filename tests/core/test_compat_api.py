"""IREE's parameter API in paramio without IREE installed: handles, the NumPy helpers, and the
error that names the extra where a real IREE object is asked for (tests/iree/ compares all of
it with IREE itself)."""

from __future__ import annotations

import gc
import os
import sys
from pathlib import Path

import numpy as np
import pytest

import paramio
from paramio.compat.runtime import ParameterProvider as StandIn


@pytest.fixture
def no_iree(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "iree.runtime", None)  # import iree.runtime -> ImportError


def test_iree_objects_need_the_extra(no_iree: None) -> None:
    index = paramio.ParameterIndex()
    index.add_buffer("a", b"x")
    with pytest.raises(ImportError, match=r"pip install 'paramio\[iree\]'"):
        index.create_provider(scope="a")
    with pytest.raises(ImportError, match=r"pip install 'paramio\[iree\]'"):
        paramio.create_io_parameters_module(object())
    assert paramio.ParameterProvider is StandIn
    with pytest.raises(
        paramio.MissingExtraError, match=r"iree.runtime is not installed: pip install 'paramio\[iree\]'"
    ):
        paramio.ParameterProvider()


def test_wrap_fd_duplicates_and_closes_its_descriptor(tmp_path: Path) -> None:
    p = tmp_path / "f.bin"
    p.write_bytes(b"0123456789")
    with open(p, "rb") as f:
        h = paramio.FileHandle.wrap_fd(f.fileno())
        own = h.fd
        assert own != f.fileno() and repr(h) == f"FileHandle<fd({own})>"
    index = paramio.ParameterIndex()
    index.add_from_file_handle("mid", h, length=4, offset=3)  # the caller's file is closed already
    assert index["mid"].read() == b"3456"
    assert repr(index["mid"]) == f"<ParameterIndexEntry 'mid' FileHandle<fd({own})>:3:4"
    del h, index
    gc.collect()
    with pytest.raises(OSError):
        os.fstat(own)


def test_wrap_fd_of_a_closed_descriptor_is_a_value_error() -> None:
    r, w = os.pipe()
    os.close(r)
    os.close(w)
    with pytest.raises(ValueError, match="Could not wrap host fd into a file handle: invalid file_descriptor"):
        paramio.FileHandle.wrap_fd(r)


def test_memory_handles(tmp_path: Path) -> None:
    buf = bytearray(b"abcdef")
    h = paramio.FileHandle.wrap_memory(buf, writable=True)
    assert (h.is_host_allocation, h.is_fd, h.is_async, h.fd) == (True, False, False, -1)
    assert not h.host_allocation.readonly and bytes(h.host_allocation) == b"abcdef"
    assert repr(h).startswith("FileHandle<host_allocation(<memory at 0x")
    with pytest.raises(ValueError, match="cannot wrap a read-only buffer as writable"):
        paramio.FileHandle.wrap_memory(b"ro", writable=True)
    with pytest.raises(TypeError, match="no constructor defined"):
        paramio.FileHandle()


def test_unmapped_loads_still_show_host_memory_and_file_async_shows_a_descriptor(tmp_path: Path) -> None:
    p = tmp_path / "a.irpa"
    paramio.save_archive_file({"w": np.arange(4, dtype=np.int32)}, p)
    unmapped = paramio.ParameterIndex()
    unmapped.load(str(p), mmap=False)
    handle, offset = unmapped["w"].file_storage
    assert (
        handle.is_host_allocation
        and bytes(handle.host_allocation[offset : offset + 16]) == np.arange(4, dtype=np.int32).tobytes()
    )
    fd_index = paramio.ParameterIndex()
    fd_index.load(str(p), mode="file_async")
    handle, _ = fd_index["w"].file_storage
    assert handle.is_fd and repr(fd_index["w"]).startswith("<ParameterIndexEntry 'w' FileHandle<fd(")
    assert fd_index["w"].to_numpy().view(np.int32).tolist() == [0, 1, 2, 3]  # save_archive_file: untyped, as IREE


@pytest.mark.parametrize("fmt", ["safetensors", "gguf", "irpa"])
def test_load_from_file_handle_reads_every_format(tmp_path: Path, fmt: str) -> None:
    src = paramio.ParameterIndex()
    src.add_array("w", np.arange(6, dtype=np.float32).reshape(2, 3))
    p = tmp_path / f"m.{fmt}"
    paramio.write_path(p, src.values(), on_loss="ignore")
    for handle in (paramio.FileHandle.wrap_memory(p.read_bytes()), None):
        index = paramio.ParameterIndex()
        if handle is None:
            with open(p, "rb") as f:
                index.load_from_file_handle(paramio.FileHandle.wrap_fd(f.fileno()), fmt.upper())
        else:
            index.load_from_file_handle(handle, "." + fmt)
        np.testing.assert_array_equal(index["w"].to_numpy(), src["w"].to_numpy())
    with pytest.raises(NotImplementedError, match="unsupported file format `zip`"):
        paramio.ParameterIndex().load_from_file_handle(paramio.FileHandle.wrap_memory(b""), "zip")


def test_numpy_helpers_go_further_than_iree() -> None:
    import ml_dtypes

    index = paramio.ParameterIndex()
    arr = np.arange(4, dtype=np.float32).astype(ml_dtypes.bfloat16)
    paramio.parameter_index_add_numpy_ndarray(index, "bf", arr)
    back = paramio.parameter_index_entry_as_numpy_ndarray(index["bf"])
    assert back.dtype == ml_dtypes.bfloat16 and back.tolist() == arr.tolist()
    index.add_splat("s", np.float32(2.5), 12, metadata='TENSORv0:{"type": "Tensor", "dtype": "float32", "shape": [3]}')
    assert paramio.parameter_index_entry_as_numpy_ndarray(index["s"]).tolist() == [2.5, 2.5, 2.5]
    flat = paramio.parameter_index_entry_as_numpy_flat_ndarray(index["s"])  # IREE's: the pattern alone
    assert flat.shape == () and flat.tobytes() == np.float32(2.5).tobytes()


def test_entry_names_are_one_class() -> None:
    assert paramio.ParameterIndexEntry is paramio.ParameterEntry
    e = paramio.ParameterEntry.splat("k", b"\x02", 600)
    assert isinstance(e, paramio.ParameterIndexEntry) and repr(e) == "<ParameterIndexEntry 'k' splat b'\\x02':600>"


def test_save_archive_file_is_atomic_and_untyped(tmp_path: Path) -> None:
    p = tmp_path / "s.irpa"
    paramio.save_archive_file({"a": np.ones(2, np.int64), "s": paramio.SplatValue(np.int8(1), [3, 2])}, p)
    index = paramio.ParameterIndex.open(p)
    assert index["a"].metadata == b"" and index["s"].is_splat and index["s"].length == 6
    assert [q.name for q in tmp_path.iterdir()] == ["s.irpa"]


def test_file_storage_handles_are_byte_sources(tmp_path: Path) -> None:
    """``source, offset = entry.file_storage`` then reading from ``source`` keeps working."""
    p = tmp_path / "a.irpa"
    paramio.save_archive_file({"w": np.arange(4, dtype=np.int32)}, p)
    e = paramio.ParameterIndex.open(p)["w"]
    handle, offset = e.file_storage
    assert isinstance(handle, paramio.ByteSource) and handle.read(offset, e.length) == e.read()
    again = paramio.ParameterEntry.data("w", handle, offset, e.length)
    assert again.file_storage[0] is handle and again.to_numpy().view(np.int32).tolist() == [0, 1, 2, 3]


def test_repr_of_an_unmapped_file_entry_reads_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from paramio.sources.file import FileSource

    p = tmp_path / "a.irpa"
    paramio.save_archive_file({"w": np.zeros(1 << 16, dtype=np.uint8)}, p)
    index = paramio.ParameterIndex()
    index.load(str(p), mmap=False)
    reads: list[int] = []
    real = FileSource.read
    monkeypatch.setattr(
        FileSource, "read", lambda self, offset, length: reads.append(length) or real(self, offset, length)
    )
    assert repr(index["w"]).startswith("<ParameterIndexEntry 'w' FileHandle<host_allocation(<memory at 0x")
    assert max(reads, default=0) == 0
