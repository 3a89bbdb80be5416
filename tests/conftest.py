"""Shared fixtures: where the oracles' tools live, and a tmp folder per test."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "sources"))

from server_fixtures import (  # noqa: E402, F401 -- the loopback servers, one per session for every test folder
    azurite,
    fault_server,
    moto,
    nginx,
    nginx_dir,
    obstore_installed,
    s3,
    s3rver,
)

BIN = Path(sys.executable).parent
#: IREE's own test files (iree/data/iree_io/) are data that tests/iree/test_iree_own_tests.py runs.
collect_ignore_glob = ["iree/data/*"]


def _native_iree_tool(name: str) -> str | None:
    """The native IREE binary (the console script wrapper adds ~25 ms per call)."""
    try:
        import iree._runtime_libs as libs  # type: ignore[import-not-found]
    except ImportError:
        libs = None
    if libs is not None:
        cand = Path(libs.__file__).parent / name
        if cand.exists():
            return str(cand)
    for cand in (BIN / name, shutil.which(name)):
        if cand and Path(cand).exists():
            return str(cand)
    return None


@pytest.fixture(scope="session")
def iree_tool() -> Callable[[str], str]:
    """A function giving the path of an IREE tool; skips the test if IREE is not installed."""

    def find(name: str) -> str:
        path = _native_iree_tool(name)
        if path is None:
            if os.environ.get("CI"):
                pytest.fail(f"{name} is missing in CI: the test extras must install iree-base-runtime")
            pytest.skip(f"{name} not installed (pip install iree-base-runtime iree-base-compiler)")
        return path

    return find


@pytest.fixture(scope="session")
def run_tool() -> Callable[..., subprocess.CompletedProcess[str]]:
    def run(args: list[str], *, cwd: str | Path | None = None, check: bool = False) -> subprocess.CompletedProcess[str]:
        return subprocess.run(args, cwd=cwd, capture_output=True, text=True, check=check, timeout=300)

    return run


@pytest.fixture
def paramio_cli() -> Callable[..., tuple[int, str, str]]:
    """Run ``paramio`` in-process: returns (exit code, stdout, stderr)."""
    import contextlib
    import io

    from paramio.cli.main import main

    def run(*args: str) -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(list(args))
        return code, out.getvalue(), err.getvalue()

    return run


@pytest.fixture(scope="session")
def make_archive() -> Callable[..., Path]:
    """The one builder of small IRPA test archives: ``make_archive(path, w=array, b=b"raw",
    splats={"s": (np.float32(1), 16)})`` writes each array typed (``add_array``), each ``bytes``
    untyped (``add_buffer``) and each splat, in that order, with `ParameterIndex.create_archive_file`
    (IREE's bytes), and returns the path."""
    from paramio.index.index import ParameterIndex

    def make(
        path: str | os.PathLike[str], /, *, splats: dict[str, tuple[object, int]] | None = None, **values: object
    ) -> Path:
        index = ParameterIndex()
        for key, value in values.items():
            if isinstance(value, (bytes, bytearray)):
                index.add_buffer(key, bytes(value))
            else:
                index.add_array(key, value)  # type: ignore[arg-type]
        for key, (pattern, length) in (splats or {}).items():
            index.add_splat(key, pattern, length)  # type: ignore[arg-type]
        index.create_archive_file(path)
        return Path(path)

    return make
