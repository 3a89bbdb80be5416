"""The loopback servers of ``tests/sources`` (nginx; moto's and s3rver's S3), for the openers over URLs."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "sources"))

from remote_servers import (  # noqa: E402
    Nginx,
    S3Server,
    aws_env,
    nginx_binary,
    run_moto,
    run_nginx,
    run_s3rver,
    s3rver_binary,
)


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
def moto(obstore_installed: None) -> Iterator[S3Server]:
    pytest.importorskip("moto", reason="moto[server] is not installed (it is in the test extra)")
    with run_moto() as server:
        server.create_bucket("models")
        yield server


@pytest.fixture(scope="session")
def s3rver(obstore_installed: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    binary = s3rver_binary()
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("s3rver is missing in CI: scripts/install-test-servers.sh must install it")
        pytest.skip("s3rver (and Node.js) not installed (run scripts/install-test-servers.sh)")
    assert binary is not None
    with run_s3rver(binary, tmp_path_factory.mktemp("s3rver")) as server:
        server.create_bucket("models")
        yield server


@pytest.fixture(params=["moto", "s3rver"])
def s3(request: pytest.FixtureRequest) -> S3Server:
    """Each S3 server in turn (both have a ``models`` bucket; tests keep to their own prefix)."""
    server: S3Server = request.getfixturevalue(request.param)
    return server


@pytest.fixture
def nginx_dir(nginx: Nginx, tmp_path: Path) -> Path:
    folder = nginx.root / tmp_path.name
    folder.mkdir()
    return folder


@pytest.fixture
def s3_env(s3: S3Server, monkeypatch: pytest.MonkeyPatch) -> S3Server:
    """Each S3 server in turn, configured by the AWS environment variables."""
    return aws_env(s3, monkeypatch)


@pytest.fixture
def moto_env(moto: S3Server, monkeypatch: pytest.MonkeyPatch) -> S3Server:
    """moto's S3 alone (it aborts multipart uploads; s3rver cannot), by the environment."""
    return aws_env(moto, monkeypatch)
