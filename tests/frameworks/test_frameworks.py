"""Framework adapters and paramio.torch: views, dtypes, load_module/save_module."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest

from paramio.arrays.frameworks import host_bytes, require, to_framework
from paramio.core.errors import InvalidArgumentError
from paramio.index.index import ParameterIndex
from paramio.index.provider import Provider


@pytest.fixture
def archive(tmp_path: Path) -> ParameterIndex:
    index = ParameterIndex()
    index.add_array("f32", np.arange(6, dtype=np.float32).reshape(2, 3))
    index.add_array("bf16", np.array([1.5, -2, 3.25], dtype=ml_dtypes.bfloat16))
    index.add_array("i64", np.array([1, -2], np.int64))
    index.add_buffer("raw", b"\x01\x02\x03")
    return index.create_archive_file(tmp_path / "t.irpa")


def test_host_bytes_from_numpy_and_buffers() -> None:
    view, name = host_bytes(np.array([[1, 2]], np.int16))
    assert (bytes(view), name) == (b"\x01\x00\x02\x00", "int16")
    assert host_bytes(np.array([1.0], ">f4"))[0].tobytes() == np.array([1.0], "<f4").tobytes()
    assert host_bytes(b"ab") == (memoryview(b"ab"), None)
    with pytest.raises(InvalidArgumentError, match="unknown framework 'mxnet'"):
        require("mxnet")


def test_numpy_adapter(archive: ParameterIndex) -> None:
    arr = to_framework(archive["f32"], "numpy")
    assert isinstance(arr, np.ndarray) and arr.shape == (2, 3) and not arr.flags.writeable
    with pytest.raises(InvalidArgumentError, match="NumPy arrays live on the host"):
        to_framework(archive["f32"], "numpy", device="cuda")


@pytest.mark.parametrize("framework", ["jax", "cupy"])
def test_missing_framework_says_which_extra(framework: str, archive: ParameterIndex) -> None:
    if importlib.util.find_spec(framework) is not None:
        pytest.skip(f"{framework} is installed")
    with pytest.raises(ImportError, match=rf"{framework} is not installed: pip install 'paramio\[{framework}\]'"):
        to_framework(archive["f32"], framework)


def test_jax_adapter(archive: ParameterIndex) -> None:
    pytest.importorskip("jax", reason="jax not installed")
    arr = to_framework(archive["bf16"], "jax")
    assert str(arr.dtype) == "bfloat16" and np.asarray(arr).astype(np.float32).tolist() == [1.5, -2, 3.25]  # type: ignore[attr-defined]


@pytest.mark.gpu
def test_cupy_adapter(archive: ParameterIndex) -> None:
    cupy = pytest.importorskip("cupy", reason="cupy not installed")
    arr = to_framework(archive["f32"], "cupy")
    assert cupy.asnumpy(arr).tolist() == [[0, 1, 2], [3, 4, 5]]


torch = pytest.importorskip("torch", reason="torch not installed (pip install torch)")


def test_torch_zero_copy_and_dtypes(archive: ParameterIndex) -> None:
    from paramio.arrays.frameworks import to_torch

    e = archive["f32"]
    t = to_torch(e)
    assert t.dtype == torch.float32 and tuple(t.shape) == (2, 3)
    assert t.data_ptr() == e.to_numpy().__array_interface__["data"][0]  # a view of the mapped file
    assert to_torch(archive["bf16"]).dtype == torch.bfloat16
    assert to_torch(archive["bf16"]).float().tolist() == [1.5, -2, 3.25]
    assert to_torch(archive["i64"]).tolist() == [1, -2]
    assert to_torch(archive["raw"]).tolist() == [1, 2, 3]
    c = to_torch(e, copy=True)
    c += 1  # a copy may be written
    assert e.to_numpy().tolist() == [[0, 1, 2], [3, 4, 5]]
    view, name = host_bytes(torch.tensor([1.5], dtype=torch.bfloat16))
    assert name == "bfloat16" and bytes(view) == np.array([1.5], ml_dtypes.bfloat16).tobytes()


def _model() -> object:
    torch.manual_seed(0)
    m = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4), torch.nn.Linear(4, 2, bias=False))
    m[2].to(torch.bfloat16)
    return m


def test_save_module_then_load_module_round_trip(tmp_path: Path) -> None:
    from paramio.torch import load_module, save_module

    src = _model()
    index = save_module(src, tmp_path / "m.irpa", prefix="model.")
    assert index["model.2.weight"].dtype == "bfloat16" and index["model.0.weight"].shape == (4, 3)
    assert index["model.1.num_batches_tracked"].dtype == "int64"
    dst = _model()
    with torch.no_grad():
        for p in dst.parameters():
            p.zero_()
    res = load_module(dst, tmp_path / "m.irpa", prefix="model.")
    assert res.missing_keys == [] and res.unexpected_keys == []
    for (k, a), (_, b) in zip(src.state_dict().items(), dst.state_dict().items(), strict=True):
        assert torch.equal(a, b), k


@pytest.mark.interop
def test_save_module_metadata_reads_in_iree(tmp_path: Path) -> None:
    rt = pytest.importorskip("iree.runtime")
    from paramio.torch import save_module

    m = torch.nn.Linear(2, 3)
    save_module(m, tmp_path / "m.irpa")
    idx = rt.ParameterIndex()
    idx.load(str(tmp_path / "m.irpa"))
    got = {k: rt.parameter_index_entry_as_numpy_ndarray(e) for k, e in idx.items()}
    assert got["weight"].shape == (3, 2) and np.array_equal(got["weight"], m.weight.detach().numpy())


def test_load_module_strict_and_non_strict(tmp_path: Path) -> None:
    from paramio.torch import load_module, save_module

    save_module(torch.nn.Linear(2, 3), tmp_path / "lin.irpa")
    target = torch.nn.Sequential(torch.nn.Linear(2, 3))
    with pytest.raises(InvalidArgumentError) as info:
        load_module(target, tmp_path / "lin.irpa")
    assert str(info.value) == (
        f"{tmp_path / 'lin.irpa'}: Error(s) in loading state_dict: missing keys: ['0.weight', '0.bias']; unexpected keys: ['weight', 'bias']"
    )
    res = load_module(target, tmp_path / "lin.irpa", strict=False)
    assert res.missing_keys == ["0.weight", "0.bias"] and res.unexpected_keys == ["weight", "bias"]
    res = load_module(target, tmp_path / "lin.irpa", name_map=lambda n: n.removeprefix("0."))
    assert res.missing_keys == [] and torch.equal(target[0].weight, load_target_weight(tmp_path / "lin.irpa"))
    with pytest.raises(
        InvalidArgumentError, match=r"size mismatch for weight: the parameter has shape \[3, 2\], the module \[2, 2\]"
    ):
        load_module(torch.nn.Linear(2, 2), tmp_path / "lin.irpa", strict=False)


def load_target_weight(path: Path) -> object:
    return torch.from_numpy(ParameterIndex.open(path)["weight"].to_numpy(copy=True))


def test_load_module_from_provider_scope_with_overlay(tmp_path: Path) -> None:
    from paramio.torch import load_module, save_module

    save_module(torch.nn.Linear(2, 3), tmp_path / "lin.irpa")
    p = Provider.from_flags([f"model={tmp_path / 'lin.irpa'}"], overlays=[f"model={tmp_path / 'ov.irpa'}"])
    p.write("model::bias", torch.tensor([7.0, 8.0, 9.0]))
    target = torch.nn.Linear(2, 3)
    load_module(target, p, scope="model")
    assert target.bias.tolist() == [7, 8, 9]


@pytest.mark.interop
def test_load_module_from_safetensors_written_by_torch(tmp_path: Path) -> None:
    st = pytest.importorskip("safetensors.torch")
    from paramio.torch import load_module

    src = _model()
    st.save_file(src.state_dict(), str(tmp_path / "m.safetensors"))
    dst = _model()
    with torch.no_grad():
        for p in dst.parameters():
            p.fill_(0)
    load_module(dst, tmp_path / "m.safetensors")
    for (k, a), (_, b) in zip(src.state_dict().items(), dst.state_dict().items(), strict=True):
        assert torch.equal(a, b), k


@pytest.mark.gpu
def test_load_module_to_cuda(tmp_path: Path) -> None:
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    from paramio.torch import load_module, save_module

    src = torch.nn.Linear(2, 3)
    save_module(src, tmp_path / "lin.irpa")
    dst = torch.nn.Linear(2, 3)
    load_module(dst, tmp_path / "lin.irpa", device="cuda")
    assert dst.weight.device.type == "cuda" and torch.equal(dst.weight.cpu(), src.weight)
