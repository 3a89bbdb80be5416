"""The loader's one seam works with remote byte sources as they exist today: entries over an
HTTP object (served by a real nginx) load byte for byte, through ranged GETs, within the budget.
(The format readers still open local paths only, so the index is built by hand here.)"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "sources"))

pytest.importorskip("obstore", reason="the remote extra is not installed (pip install 'paramio[remote]')")

from remote_servers import Nginx, nginx_binary, run_nginx  # noqa: E402

from paramio import ParameterIndex  # noqa: E402
from paramio.loading import load  # noqa: E402
from paramio.sources import open_source  # noqa: E402


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Nginx]:
    binary = nginx_binary()
    if binary is None:
        pytest.skip("nginx not installed (run scripts/install-test-servers.sh)")
    with run_nginx(binary, tmp_path_factory.mktemp("nginx-loader")) as s:
        yield s


def test_entries_over_an_http_object_load_through_ranged_reads(
    server: Nginx, st_file: tuple[Path, dict[str, np.ndarray]]
) -> None:
    path, a = st_file
    (server.root / "model.safetensors").write_bytes(path.read_bytes())
    local = ParameterIndex.open(path)
    remote = open_source(f"{server.url}/model.safetensors")
    index = ParameterIndex()
    for e in local.values():
        index.add_from_file_handle(e.key, remote, e.length, e.offset, metadata=e.metadata)
    got = load(index, budget="64KiB", concurrency=3)
    for k in local.keys():
        assert got[k].tobytes() == a[k].tobytes(), k  # type: ignore[attr-defined]
    assert got.summary.peak_in_flight <= 64 << 10
    ranged = [line for line in server.requests() if line.startswith("GET /model.safetensors bytes=")]
    assert len(ranged) >= a["embed"].nbytes // got.summary.chunk  # pieces, not the whole object


def test_a_url_gets_more_workers_by_default(server: Nginx, st_file: tuple[Path, dict[str, np.ndarray]]) -> None:
    """Reads from a URL wait on the network, not a core: the default is `REMOTE_CONCURRENCY`
    workers there, the CPU count for local files; an explicit `concurrency` always wins."""
    from paramio.loading.api import REMOTE_CONCURRENCY

    path, a = st_file
    (server.root / "workers.safetensors").write_bytes(path.read_bytes())
    remote = ParameterIndex.open(f"{server.url}/workers.safetensors")
    local = ParameterIndex.open(path)
    got = load(remote)
    assert got.summary.concurrency >= REMOTE_CONCURRENCY
    assert load(local).summary.concurrency < REMOTE_CONCURRENCY or (os.cpu_count() or 2) >= REMOTE_CONCURRENCY
    assert load(remote, concurrency=2).summary.concurrency == 2
    for k in a:
        assert got[k].tobytes() == a[k].tobytes(), k  # type: ignore[attr-defined]
