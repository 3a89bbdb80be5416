"""`paramio run --parameters=URL`: IREE gets buffers read through the remote source (there is
no file descriptor to hand it), and prints what it prints for the same files on disk."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "sources"))

from remote_servers import Nginx, nginx_binary, run_nginx  # noqa: E402

from paramio import ParameterIndex  # noqa: E402


@pytest.fixture(scope="module")
def nginx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Nginx]:
    pytest.importorskip("obstore", reason="the remote extra is not installed")
    binary = nginx_binary()
    if binary is None:
        pytest.skip("nginx not installed (run scripts/install-test-servers.sh)")
    with run_nginx(binary, tmp_path_factory.mktemp("nginx")) as server:
        yield server


@pytest.mark.interop
def test_run_with_parameters_by_url_prints_what_local_files_print(
    vmfb, paramio_cli, nginx: Nginx, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    folder = nginx.root / tmp_path.name
    folder.mkdir()
    a = ParameterIndex()
    a.add_array("w", np.array([10, 20, 30, 40], np.float32))
    a.create_archive_file(folder / "a.irpa")
    b = ParameterIndex()
    b.add_array("v", np.array([1.5, 2, 1e-10, -3], np.float32))
    b.create_archive_file(folder / "b.irpa")
    args = ("run", f"--module={vmfb}", "--function=f", "--input=4xf32=1,2,3,4")
    local = paramio_cli(*args, f"--parameters=a={folder / 'a.irpa'}", f"--parameters=b={folder / 'b.irpa'}")
    url = f"{nginx.url}/{folder.name}"
    remote = paramio_cli(*args, f"--parameters=a={url}/a.irpa", f"--parameters=b={url}/b.irpa")
    assert remote == local and local[0] == 0 and "4xf32=11 22 33 44" in local[1]
