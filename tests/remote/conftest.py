"""The loopback servers of ``tests/sources`` (nginx, moto's S3), for the openers over URLs."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "sources"))

from remote_servers import Moto, Nginx, nginx_binary, run_moto, run_nginx  # noqa: E402


@pytest.fixture(scope="session")
def obstore_installed() -> None:
    pytest.importorskip("obstore", reason="the remote extra is not installed (pip install 'paramio[remote]')")


@pytest.fixture(scope="session")
def nginx(tmp_path_factory: pytest.TempPathFactory, obstore_installed: None) -> Iterator[Nginx]:
    binary = nginx_binary()
    if binary is None:
        pytest.skip("nginx not installed (run scripts/install-test-servers.sh)")
    with run_nginx(binary, tmp_path_factory.mktemp("nginx")) as server:
        yield server


@pytest.fixture(scope="session")
def moto(obstore_installed: None) -> Iterator[Moto]:
    pytest.importorskip("moto", reason="moto[server] is not installed (it is in the test extra)")
    with run_moto() as server:
        server.create_bucket("models")
        yield server


@pytest.fixture
def nginx_dir(nginx: Nginx, tmp_path: Path) -> Path:
    folder = nginx.root / tmp_path.name
    folder.mkdir()
    return folder


@pytest.fixture
def s3_env(moto: Moto, monkeypatch: pytest.MonkeyPatch) -> Moto:
    """moto's S3 configured the ecosystem's way: the AWS environment variables."""
    for k, v in {
        "AWS_ENDPOINT_URL": moto.endpoint,
        "AWS_ACCESS_KEY_ID": "env-key-id",
        "AWS_SECRET_ACCESS_KEY": "env-secret-do-not-show",
        "AWS_REGION": "us-east-1",
        "AWS_ALLOW_HTTP": "true",
    }.items():
        monkeypatch.setenv(k, v)
    return moto
