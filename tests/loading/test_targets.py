"""Each target gets the file's bytes, typed and shaped: torch (CPU), IREE devices, JAX and CuPy
through DLPack where installed, CUDA where a device exists (marked `gpu`)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest

from paramio import ParameterIndex
from paramio.loading import load

pytest.importorskip("torch")
import torch  # noqa: E402


def _typed_index() -> ParameterIndex:
    index = ParameterIndex()
    rng = np.random.default_rng(5)
    index.add_array("f32", rng.standard_normal((64, 33)).astype(np.float32))
    index.add_array("bf16", rng.standard_normal(300).astype(ml_dtypes.bfloat16))
    index.add_array("i8", rng.integers(-128, 127, size=(5, 7), dtype=np.int8))
    index.add_array("u16", rng.integers(0, 65535, size=17, dtype=np.uint16))
    index.add_splat("splat", np.float32(3.0), 4 * 1000, metadata=b'TENSORv0:{"dtype":"float32","shape":[1000]}')
    return index


def _want(index: ParameterIndex) -> dict[str, np.ndarray]:
    return {k: e.to_numpy(copy=True) for k, e in index.items()}


def test_torch_cpu(st_file: tuple[Path, dict[str, np.ndarray]]) -> None:
    path, a = st_file
    got = load(path, into="torch", budget="64KiB")
    for k, w in a.items():
        t = got[k]
        assert isinstance(t, torch.Tensor) and t.device.type == "cpu"
        assert tuple(t.shape) == w.shape and t.dtype == getattr(torch, str(w.dtype)), k
        assert t.contiguous().view(torch.uint8).numpy().tobytes() == w.tobytes(), k
    index = _typed_index()
    got = load(index, into="torch", device="cpu")
    assert got["bf16"].dtype == torch.bfloat16  # type: ignore[attr-defined]
    for k, w in _want(index).items():
        assert got[k].view(torch.uint8).numpy().tobytes() == w.tobytes(), k  # type: ignore[attr-defined]
    got["f32"].add_(1)  # type: ignore[attr-defined]  # writable: the caller owns it


@pytest.mark.interop
@pytest.mark.parametrize("device", ["local-task", "local-sync"])
def test_iree_devices(device: str) -> None:
    import iree.runtime as rt

    index = _typed_index()
    got = load(index, into="iree", device=device, budget="64KiB")
    for k, w in _want(index).items():
        arr = got[k]
        assert isinstance(arr, rt.DeviceArray), k
        assert tuple(arr.shape) == w.shape and arr.dtype == w.dtype, k
        assert arr.to_host().tobytes() == w.tobytes(), k
    assert got.summary.into == "iree" and got.summary.device == device


@pytest.mark.interop
def test_iree_arrays_outlive_everything_else() -> None:
    """IREE 3.13 frees an imported host array once its HalBuffer wrapper is collected, though a
    view still uses it (a segfault in a child before the fix): the loaded arrays keep it alive."""
    import gc
    import subprocess
    import sys

    code = (
        "import gc, numpy as np, paramio\n"
        "i = paramio.ParameterIndex(); i.add_array('w', np.full(1 << 20, 7, np.float32))\n"
        "a = paramio.load(i, into='iree')['w']; del i; gc.collect()\n"
        "junk = [np.full(1 << 20, 3, np.float32) for _ in range(8)]\n"
        "assert (a.to_host() == 7).all(), a.to_host()[:4]\n"
    )
    src = str(Path(__file__).resolve().parents[2] / "src")
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env={"PYTHONPATH": src}, timeout=120
    )
    assert proc.returncode == 0, (proc.returncode, proc.stderr[-1000:])
    gc.collect()


@pytest.mark.interop
def test_iree_device_arrays_run_in_a_program(tmp_path: Path, iree_tool: object) -> None:
    """The arrays are real device buffers: IREE's runtime computes with them."""
    import iree.compiler as compiler
    import iree.runtime as rt

    src = "func.func @add(%a: tensor<4xf32>, %b: tensor<4xf32>) -> tensor<4xf32> { %0 = arith.addf %a, %b : tensor<4xf32> return %0 : tensor<4xf32> }"
    vmfb = compiler.compile_str(src, target_backends=["llvm-cpu"])
    index = ParameterIndex()
    index.add_array("a", np.array([1, 2, 3, 4], np.float32))
    index.add_array("b", np.array([10, 20, 30, 40], np.float32))
    got = load(index, into="iree", device="local-task")
    config = rt.Config(device=rt.get_device("local-task"))
    ctx = rt.SystemContext(config=config)
    ctx.add_vm_module(rt.VmModule.copy_buffer(ctx.instance, vmfb))
    out = ctx.modules.module.add(got["a"], got["b"])
    assert out.to_host().tolist() == [11, 22, 33, 44]


def test_iree_unknown_device_is_our_error() -> None:
    pytest.importorskip("iree.runtime")
    from paramio.core.errors import InvalidArgumentError

    with pytest.raises(InvalidArgumentError, match="IREE has no device 'no-such-device'"):
        load(ParameterIndex(), into="iree", device="no-such-device")


@pytest.mark.skipif(importlib.util.find_spec("jax") is not None, reason="jax is installed")
def test_jax_missing_names_the_extra() -> None:
    with pytest.raises(ImportError, match=r"pip install 'paramio\[jax\]'"):
        load(ParameterIndex(), into="jax")


def test_jax_through_dlpack_without_a_copy() -> None:
    jax = pytest.importorskip("jax")
    from paramio.loading.targets import JaxTarget, Slot

    hosts: dict[str, int] = {}

    class Recording(JaxTarget):
        def finish(self, slot: Slot) -> object:
            hosts[slot.key] = slot.handle.ctypes.data  # type: ignore[attr-defined]
            return super().finish(slot)

    index = _typed_index()
    got = load(index, into=Recording())
    for k, w in _want(index).items():
        arr = got[k]
        assert isinstance(arr, jax.Array)
        assert np.asarray(arr).tobytes() == w.tobytes(), k
        assert arr.unsafe_buffer_pointer() == hosts[k], k  # XLA took the host array itself


def test_cupy_staged() -> None:
    cupy = pytest.importorskip("cupy")
    try:
        cupy.cuda.runtime.getDeviceCount()
    except Exception:  # noqa: BLE001 -- cupy without a driver
        pytest.skip("no CUDA device for CuPy")
    index = _typed_index()
    got = load(index, into="cupy", budget="64KiB")
    for k, w in _want(index).items():
        assert cupy.asnumpy(got[k]).tobytes() == w.tobytes(), k


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_torch_cuda_every_byte(st_file: tuple[Path, dict[str, np.ndarray]]) -> None:
    path, a = st_file
    for budget in ("64KiB", "256MiB"):
        got = load(path, into="torch", device="cuda", budget=budget, concurrency=4)
        for k, w in a.items():
            t = got[k]
            assert isinstance(t, torch.Tensor) and t.device.type == "cuda"
            assert t.cpu().contiguous().view(torch.uint8).numpy().tobytes() == w.tobytes(), k
        assert 0 < got.summary.peak_staging <= got.summary.budget


def test_torch_cuda_without_cuda_is_refused() -> None:
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    from paramio.core.errors import InvalidArgumentError

    with pytest.raises(InvalidArgumentError, match="no CUDA device"):
        load(ParameterIndex(), into="torch", device="cuda")


def test_torch_device_path_on_the_cpu(st_file: tuple[Path, dict[str, np.ndarray]]) -> None:
    """The CUDA code path minus CUDA itself: device tensors filled piece by piece from staging
    tensors with ``copy_``, then viewed as the entry's dtype and shape. What only a GPU can
    check (pinned buffers, the per-worker streams) is `test_torch_cuda_every_byte`'s."""
    from paramio.loading.targets import TorchTarget

    path, a = st_file
    got = load(path, into=TorchTarget("cpu", staged=True), budget="64KiB", concurrency=3)
    assert 0 < got.summary.peak_staging <= got.summary.budget  # every piece went through staging
    assert got.summary.chunk < a["embed"].nbytes  # the big tensor arrived in several pieces
    for k, w in a.items():
        t = got[k]
        assert isinstance(t, torch.Tensor) and tuple(t.shape) == w.shape, k
        assert t.dtype == getattr(torch, str(w.dtype)), k
        assert t.contiguous().view(torch.uint8).numpy().tobytes() == w.tobytes(), k
    index = _typed_index()
    got = load(index, into=TorchTarget("cpu", staged=True), budget="4KiB")
    assert got["bf16"].dtype == torch.bfloat16  # type: ignore[attr-defined]
    for k, w in _want(index).items():
        assert got[k].view(torch.uint8).numpy().tobytes() == w.tobytes(), k  # type: ignore[attr-defined]


def test_torch_unknown_device_is_our_error() -> None:
    from paramio.core.errors import InvalidArgumentError

    with pytest.raises(InvalidArgumentError, match="torch has no device 'warp-drive'"):
        load(ParameterIndex(), into="torch", device="warp-drive")
    if not getattr(torch.backends, "mps", None) or not torch.backends.mps.is_available():
        with pytest.raises(InvalidArgumentError, match="device 'mps': torch cannot allocate there"):
            load(ParameterIndex(), into="torch", device="mps")
