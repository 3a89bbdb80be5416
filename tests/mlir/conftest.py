"""Fixtures for the MLIR tests: the compiler's bindings and tools, skipped with a reason if absent."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

COMPILE_FLAGS = [
    "--iree-hal-target-device=local",
    "--iree-hal-local-target-device-backends=llvm-cpu",
    "--iree-llvmcpu-target-cpu=host",
]


def compiler_tool(name: str) -> str:
    """The native iree-opt / iree-compile of iree-base-compiler (its console scripts add ~0.2 s)."""
    try:
        import iree.compiler as compiler
    except ImportError:
        pytest.skip("iree-base-compiler not installed (pip install 'paramio[iree]')")
    native = Path(compiler.__file__).parent / "_mlir_libs" / name
    if native.exists():
        return str(native)
    script = Path(sys.executable).parent / name
    if not script.exists():
        pytest.skip(f"{name} not installed (pip install iree-base-compiler)")
    return str(script)


@pytest.fixture
def bindings() -> None:
    """Skips the test without iree-base-compiler's MLIR bindings."""
    pytest.importorskip("iree.compiler.ir", reason="needs iree-base-compiler's MLIR bindings")


@pytest.fixture(scope="session")
def iree_opt() -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run iree-opt with the arguments given; returns the finished process."""
    tool = compiler_tool("iree-opt")

    def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run([tool, *map(str, args)], capture_output=True, text=True, timeout=300)

    return run


@pytest.fixture(scope="session")
def compile_mlir() -> Callable[..., Path]:
    """Compile a .mlir/.mlirbc for the local CPU (llvm-cpu, ~1 s); extra flags may follow."""
    tool = compiler_tool("iree-compile")

    def run(source: Path, out: Path, *extra: str) -> Path:
        r = subprocess.run(
            [tool, str(source), *COMPILE_FLAGS, *extra, "-o", str(out)], capture_output=True, text=True, timeout=300
        )
        assert r.returncode == 0, r.stderr
        return out

    return run


@pytest.fixture(scope="session")
def run_module(iree_tool: Callable[[str], str]) -> Callable[..., str]:
    """iree-run-module's stdout for a module, function, inputs and --parameters values."""
    tool = iree_tool("iree-run-module")

    def run(vmfb: Path, function: str, inputs: list[str], parameters: list[str] = ()) -> str:  # type: ignore[assignment]
        args = [tool, f"--module={vmfb}", "--device=local-sync", f"--function={function}"]
        args += [f"--input={i}" for i in inputs] + [f"--parameters={p}" for p in parameters]
        r = subprocess.run(args, capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr
        return r.stdout

    return run
