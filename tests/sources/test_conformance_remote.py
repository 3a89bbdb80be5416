"""The shipped conformance suite against remote objects: nginx over HTTP, both S3 servers (moto's
and s3rver), Azure Blob (Azurite), and a server that fails the first try of every range (so each read passes only
through the retries)."""

from __future__ import annotations

from pathlib import Path

import pytest
from remote_servers import Azurite, FaultServer, Nginx, S3Server, put_object

from paramio.sources import ByteSource, open_source
from paramio.sources.retry import RetryPolicy
from paramio.testing import SourceTests

pytestmark = pytest.mark.usefixtures("obstore_installed")

FAST_RETRY = RetryPolicy(attempts=4, first_delay=0.001, max_delay=0.01)


class TestHTTPSource(SourceTests):
    @pytest.fixture(autouse=True)
    def _server(self, nginx: Nginx, nginx_dir: Path) -> None:
        self.server, self.folder = nginx, nginx_dir

    def make_source(self, tmp_path: Path, files: dict[str, bytes], name: str) -> ByteSource:
        for n, data in files.items():
            (self.folder / n).write_bytes(data)
        return open_source(f"{self.server.url}/{self.folder.name}/{name}", max_request=100_000)


class TestS3Source(SourceTests):
    @pytest.fixture(autouse=True)
    def _server(self, s3: S3Server, tmp_path: Path) -> None:
        self.server, self.prefix = s3, tmp_path.name

    def make_source(self, tmp_path: Path, files: dict[str, bytes], name: str) -> ByteSource:
        for n, data in files.items():
            put_object(self.server, f"models/{self.prefix}/{n}", data)
        return open_source(
            f"s3://models/{self.prefix}/{name}", config=self.server.config(), client_options={"allow_http": True}
        )


class TestAzureSource(SourceTests):
    @pytest.fixture(autouse=True)
    def _server(self, azurite: Azurite, tmp_path: Path) -> None:
        self.server, self.prefix = azurite, tmp_path.name

    def make_source(self, tmp_path: Path, files: dict[str, bytes], name: str) -> ByteSource:
        for n, data in files.items():
            self.server.put(f"models/{self.prefix}/{n}", data)
        return open_source(
            f"az://models/{self.prefix}/{name}", config=self.server.config(), client_options={"allow_http": True}
        )


class TestFlakyHTTPSource(SourceTests):
    """Every range's first request gets a 503 or a dropped connection; reads still succeed."""

    @pytest.fixture(autouse=True, params=["flaky", "drop"])
    def _server(self, fault_server: FaultServer, request: pytest.FixtureRequest) -> None:
        self.server, self.mode = fault_server, request.param

    def make_source(self, tmp_path: Path, files: dict[str, bytes], name: str) -> ByteSource:
        folder = f"{tmp_path.name}-{self.mode}"
        self.server.files.update({f"{folder}/{n}": data for n, data in files.items()})
        return open_source(f"{self.server.url}/{self.mode}/{folder}/{name}", retry=FAST_RETRY, max_request=100_000)
