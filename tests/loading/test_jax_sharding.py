"""``paramio.load(into="jax", sharding=...)`` on 8 CPU devices: each device's slice equals
NumPy's slice, sits on that device, and only the distinct slices' bytes are read.

JAX takes its device count from XLA_FLAGS when it is first imported, so the checks run in a
child process (`jax_sharding_check.py`) and this process's JAX is left as it is."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("jax", reason="jax not installed")


def test_jax_shardings_place_each_slice_on_its_device(tmp_path: Path) -> None:
    script = Path(__file__).with_name("jax_sharding_check.py")
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=8", "JAX_PLATFORMS": "cpu"}
    done = subprocess.run(
        [sys.executable, str(script), str(tmp_path)], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "jax sharding checks passed" in done.stdout
