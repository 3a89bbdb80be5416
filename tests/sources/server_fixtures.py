"""Fixtures starting real servers on loopback (see ``remote_servers.py``), one of each per session for
the whole suite (``tests/conftest.py`` imports them); they skip, with the reason, only where the
server cannot be had, and fail in CI, where ``.ci/run`` installs them."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from remote_servers import (
    Azurite,
    FaultServer,
    Nginx,
    S3Server,
    azurite_binary,
    nginx_binary,
    run_azurite,
    run_fault_server,
    run_moto,
    run_nginx,
    run_s3rver,
    s3rver_binary,
)

__all__ = ["azurite", "fault_server", "moto", "nginx", "nginx_dir", "obstore_installed", "s3", "s3rver"]


def _missing(what: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{what} is missing in CI: scripts/install-test-servers.sh must install it")
    pytest.skip(f"{what} not installed (run scripts/install-test-servers.sh)")


@pytest.fixture(scope="session")
def nginx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Nginx]:
    binary = nginx_binary()
    if binary is None:
        _missing("nginx")
    assert binary is not None
    with run_nginx(binary, tmp_path_factory.mktemp("nginx")) as server:
        yield server


@pytest.fixture(scope="session")
def obstore_installed() -> None:
    pytest.importorskip("obstore", reason="the remote extra is not installed (pip install 'paramio[remote]')")


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
        _missing("s3rver (and Node.js)")
    assert binary is not None
    with run_s3rver(binary, tmp_path_factory.mktemp("s3rver")) as server:
        server.create_bucket("models")
        yield server


@pytest.fixture(scope="session")
def azurite(obstore_installed: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    """Azurite's Blob service with a ``models`` container."""
    binary = azurite_binary()
    if binary is None:
        _missing("azurite (and Node.js)")
    assert binary is not None
    with run_azurite(binary, tmp_path_factory.mktemp("azurite")) as server:
        server.create_container("models")
        yield server


@pytest.fixture(params=["moto", "s3rver"])
def s3(request: pytest.FixtureRequest) -> S3Server:
    """Each S3 server in turn (both have a ``models`` bucket; tests keep to their own prefix)."""
    server: S3Server = request.getfixturevalue(request.param)
    return server


@pytest.fixture(scope="session")
def fault_server() -> Iterator[FaultServer]:
    """One per session: tests keep apart by putting their files under their own folder name."""
    with run_fault_server() as server:
        yield server


@pytest.fixture
def nginx_dir(nginx: Nginx, tmp_path: Path) -> Path:
    """A fresh folder under nginx's root for one test (the root is shared by the session)."""
    folder = nginx.root / tmp_path.name
    folder.mkdir()
    return folder
