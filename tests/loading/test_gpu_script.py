"""`benchmarks/gpu_load.py` (P6) is ready to run on a GPU machine: without CUDA it skips with exit
0, and its every step (model, byte-for-byte check at two budgets, ceiling, contenders, JSON)
runs on the CPU with ``--device cpu``, through the loader's device path (staging + copies)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("safetensors")
import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "gpu_load.py"


def _run(*args: str, tmp: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--dir", str(tmp), *args], capture_output=True, text=True, env=env, timeout=300
    )


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is here: the script would run for real")
def test_skips_cleanly_without_cuda(tmp_path: Path) -> None:
    proc = _run(tmp=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "P6 skipped: no CUDA device"
    assert not list(tmp_path.iterdir())  # nothing written before the check


@pytest.mark.slow
def test_dry_run_on_the_cpu(tmp_path: Path) -> None:
    out = tmp_path / "p6.json"
    proc = _run("--device", "cpu", "--size-mib", "8", "--repeat", "1", "--json", str(out), tmp=tmp_path)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    lines = proc.stdout.splitlines()
    assert sum(line.startswith("correct (torch)") for line in lines) == 2, proc.stdout  # both budgets
    got = json.loads(out.read_text())
    assert got["correct"] is True and got["size_mib"] == 8
    assert got["paramio_gbps"] > 0 and got["ceiling_gbps"] > 0 and got["safe_open_s"] > 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p6.json"]  # the model is removed


def test_a_wrong_byte_fails_the_run(tmp_path: Path) -> None:
    """The check can fail: a target that corrupts one byte makes `check_every_byte` say which."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import gpu_load
        from cases.common import model_tensors, write_safetensors_raw
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    import paramio
    from paramio.loading.targets import Slot, TorchTarget

    class Corrupting(TorchTarget):
        def finish(self, slot: Slot) -> object:
            if slot.key == "layers.1.weight":
                slot.handle[12345] ^= 1  # type: ignore[index]
            return super().finish(slot)

    path = tmp_path / "m.safetensors"
    write_safetensors_raw(path, model_tensors(4, 1))
    failure = gpu_load.check_every_byte(
        path,
        lambda b: paramio.load(path, into=Corrupting("cpu", staged=True), budget=b),
        lambda t: t.contiguous().view(torch.uint8).numpy(),
        "torch",
    )
    assert failure == "torch: layers.1.weight differs from the file (budget 64MiB)"
    ok = gpu_load.check_every_byte(
        path,
        lambda b: paramio.load(path, into=TorchTarget("cpu", staged=True), budget=b),
        lambda t: t.contiguous().view(torch.uint8).numpy(),
        "torch",
    )
    assert ok is None
