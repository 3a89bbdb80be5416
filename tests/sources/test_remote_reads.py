"""How remote reads go out: large ranges split into parallel parts, nearby spans coalesced, at
most `max_concurrency` requests in flight, progress reported; the AWS environment variables
configure S3; the sync bridge works from inside a running event loop."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

objectstore = pytest.importorskip("paramio.sources.objectstore", reason="the remote extra is not installed")

from remote_servers import AZURITE_ACCOUNT, AZURITE_KEY, Azurite, Nginx, S3Server, put_object  # noqa: E402

from paramio.core.errors import InvalidArgumentError  # noqa: E402
from paramio.sources import open_source  # noqa: E402
from paramio.sources.aio import AsyncByteSource, BridgedSource  # noqa: E402
from paramio.testing.sources import sample_bytes  # noqa: E402

store_for = objectstore.store_for

pytestmark = pytest.mark.usefixtures("obstore_installed")

DATA = sample_bytes(1_000_000, seed=11)


def _gets(nginx: Nginx, folder: str) -> list[str]:
    return [line.split()[2] for line in nginx.requests() if line.startswith(f"GET /{folder}/")]


def test_large_read_is_split_and_nearby_spans_share_a_request(nginx: Nginx, nginx_dir: Path) -> None:
    (nginx_dir / "m.bin").write_bytes(DATA)
    src = open_source(f"{nginx.url}/{nginx_dir.name}/m.bin", max_request=300_000, max_gap=1000)
    assert isinstance(src, BridgedSource)
    seen: list[int] = []
    buf = bytearray(len(DATA))
    src.readinto(0, buf, progress=seen.append)
    assert bytes(buf) == DATA and sorted(seen) == [100_000, 300_000, 300_000, 300_000]
    assert sorted(_gets(nginx, nginx_dir.name)) == sorted(
        ["bytes=0-299999", "bytes=300000-599999", "bytes=600000-899999", "bytes=900000-999999"]
    )
    got = src.readv([(10, 5), (500, 20), (5000, 10)])  # the first two 475 bytes apart: one request
    assert [bytes(g) for g in got] == [DATA[10:15], DATA[500:520], DATA[5000:5010]]
    assert _gets(nginx, nginx_dir.name)[-2:] in (
        ["bytes=10-519", "bytes=5000-5009"],
        ["bytes=5000-5009", "bytes=10-519"],
    )


class _Counting(AsyncByteSource):
    """An async source that records how many requests are in flight at once."""

    max_gap = 0
    max_request = 10

    def __init__(self) -> None:
        self.name, self.live, self.peak = "<counting>", 0, 0

    @property
    def size(self) -> int:
        return 10_000

    async def fetch_into(self, offset: int, out: memoryview) -> None:
        self.live += 1
        self.peak = max(self.peak, self.live)
        await asyncio.sleep(0.001)
        out[:] = bytes((offset + i) % 256 for i in range(len(out)))
        self.live -= 1


@pytest.mark.parametrize("limit", [1, 3, 8])
def test_requests_in_flight_are_bounded(limit: int) -> None:
    src = _Counting()
    src.max_concurrency = limit
    got = BridgedSource(src).readv([(i * 100, 50) for i in range(40)])
    assert bytes(got[3]) == bytes((300 + i) % 256 for i in range(50))
    assert src.peak == limit  # 200 requests of 10 bytes: the limit is reached, never passed


def test_aws_environment_configures_s3(s3: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    put_object(s3, f"models/{tmp_path.name}/e.bin", b"from the environment")
    for k, v in {
        "AWS_ENDPOINT_URL": s3.endpoint,
        "AWS_ACCESS_KEY_ID": s3.key_id,
        "AWS_SECRET_ACCESS_KEY": "env-secret",
        "AWS_REGION": "us-east-1",
        "AWS_ALLOW_HTTP": "true",
    }.items():
        monkeypatch.setenv(k, v)
    assert open_source(f"s3://models/{tmp_path.name}/e.bin").read(0, 8) == b"from the"


def test_azure_environment_configures_az(azurite: Azurite, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``az://`` configured as Azure's tools are (``AZURE_STORAGE_*``): a safetensors model opens
    from Azurite with the local file's entries and bytes."""
    safetensors_numpy = pytest.importorskip("safetensors.numpy")
    from paramio.index.index import ParameterIndex

    local = tmp_path / "m.safetensors"
    arrays = {"w": np.arange(12, dtype=np.float32).reshape(3, 4), "b": np.arange(5, dtype=np.int64)}
    safetensors_numpy.save_file(arrays, str(local))
    azurite.put(f"models/{tmp_path.name}/m.safetensors", local.read_bytes())
    for k, v in {
        "AZURE_STORAGE_ACCOUNT_NAME": AZURITE_ACCOUNT,
        "AZURE_STORAGE_ACCOUNT_KEY": AZURITE_KEY,
        "AZURE_STORAGE_ENDPOINT": azurite.account_url,
        "AZURE_ALLOW_HTTP": "true",
    }.items():
        monkeypatch.setenv(k, v)
    here, there = ParameterIndex.open(local), ParameterIndex.open(f"az://models/{tmp_path.name}/m.safetensors")
    assert there.keys() == here.keys() == ["b", "w"]
    for k, v in arrays.items():
        np.testing.assert_array_equal(there[k].to_numpy(), v)
        assert there[k].read() == here[k].read()


def test_sync_source_works_inside_a_running_event_loop(nginx: Nginx, nginx_dir: Path) -> None:
    (nginx_dir / "m.bin").write_bytes(DATA[:1000])

    async def main() -> bytes:
        return open_source(f"{nginx.url}/{nginx_dir.name}/m.bin").read(0, 10)

    assert asyncio.run(main()) == DATA[:10]


def test_gcs_and_azure_urls_get_their_stores() -> None:
    """No GCS or Azure server runs here: this checks the URL mapping and config errors only."""
    gcs, path = store_for("gs://bucket/models/m.irpa")
    assert type(gcs).__name__ == "GCSStore" and path == "models/m.irpa"
    az, path = store_for("az://container/m.irpa", config={"account_name": "acct"})
    assert type(az).__name__ == "AzureStore" and path == "m.irpa"
    with pytest.raises(
        InvalidArgumentError, match=r"^s3://b/k: cannot configure s3:// access: UnknownConfigurationKeyError$"
    ):
        store_for("s3://b/k", config={"no_such_key": "hunter2"})
    with pytest.raises(InvalidArgumentError, match="URL names no object"):
        store_for("s3://b/")
