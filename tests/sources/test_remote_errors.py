"""Remote failures: each is a `RemoteSourceError` naming the URL, the byte range and the status,
and never a credential; transient ones are retried with backoff, the rest are not."""

from __future__ import annotations

from pathlib import Path

import pytest

obstore = pytest.importorskip("obstore", reason="the remote extra is not installed")

from remote_servers import FaultServer, Nginx, S3Server, put_object, run_moto  # noqa: E402

from paramio.core.errors import SourceError  # noqa: E402
from paramio.sources import open_source  # noqa: E402
from paramio.sources.objectstore import store_for  # noqa: E402
from paramio.sources.retry import RemoteSourceError, RetryPolicy, redact_url  # noqa: E402

pytestmark = pytest.mark.usefixtures("obstore_installed")

FAST = RetryPolicy(attempts=3, first_delay=0.001, max_delay=0.01)
DATA = bytes(range(256)) * 40


def _serve(server: FaultServer, tmp_path: Path) -> str:
    server.files[f"{tmp_path.name}/m.bin"] = DATA
    return f"{tmp_path.name}/m.bin"


def test_missing_object_is_404_with_the_url(nginx: Nginx, nginx_dir: Path) -> None:
    url = f"{nginx.url}/{nginx_dir.name}/absent.safetensors"
    with pytest.raises(RemoteSourceError) as info:
        open_source(url)
    assert info.value.status == 404 and info.value.url == url
    assert str(info.value) == f"{url}: HTTP 404 not found"
    assert isinstance(info.value, SourceError) and isinstance(info.value, OSError)


def test_forbidden_range_names_range_and_status_and_is_not_retried(fault_server: FaultServer, tmp_path: Path) -> None:
    name = _serve(fault_server, tmp_path)
    src = open_source(f"{fault_server.url}/forbidden/{name}", retry=FAST)
    with pytest.raises(RemoteSourceError) as info:
        src.read(16, 32)
    e = info.value
    assert (e.status, e.start, e.end, e.attempts) == (403, 16, 48, 1)
    assert str(e) == f"{fault_server.url}/forbidden/{name}: bytes 16-47: HTTP 403 permission denied"
    assert sum(1 for m, p, _ in fault_server.log if m == "GET" and p.endswith(name)) == 1


def test_range_ignored_by_the_server_is_an_error_not_wrong_bytes(fault_server: FaultServer, tmp_path: Path) -> None:
    name = _serve(fault_server, tmp_path)
    src = open_source(f"{fault_server.url}/whole/{name}", retry=FAST)
    with pytest.raises(RemoteSourceError, match=r"bytes 100-109: server ignored the Range header"):
        src.read(100, 10)


def test_short_body_is_retried_then_reported_as_truncated(fault_server: FaultServer, tmp_path: Path) -> None:
    name = _serve(fault_server, tmp_path)
    src = open_source(f"{fault_server.url}/short/{name}", retry=FAST)
    with pytest.raises(RemoteSourceError) as info:
        src.read(0, 4000)
    assert info.value.attempts == 3 and info.value.start == 0 and info.value.end == 4000
    assert "after 3 attempts" in str(info.value)
    gets = [r for m, p, r in fault_server.log if m == "GET" and p.endswith(name)]
    assert gets == ["bytes=0-3999"] * 3


def test_slow_server_times_out(fault_server: FaultServer, tmp_path: Path) -> None:
    name = _serve(fault_server, tmp_path)
    fault_server.slow_seconds = 2.0
    with pytest.raises(RemoteSourceError, match="timed out") as info:
        open_source(f"{fault_server.url}/slow/{name}", retry=RetryPolicy(attempts=1), timeout=0.3)
    assert info.value.status is None and info.value.transient


def test_transient_failures_are_retried_until_they_pass(fault_server: FaultServer, tmp_path: Path) -> None:
    name = _serve(fault_server, tmp_path)
    src = open_source(f"{fault_server.url}/flaky/{name}", retry=FAST)
    assert src.read(10, 20) == DATA[10:30]
    assert [r for m, p, r in fault_server.log if m == "GET" and p.endswith(name)] == ["bytes=10-29"] * 2


@pytest.mark.slow  # starts a second moto server, with authentication on
def test_wrong_credentials_are_403_and_never_shown(tmp_path: Path) -> None:
    pytest.importorskip("moto")
    with run_moto(auth=True) as strict:
        secret = "wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY"
        with pytest.raises(RemoteSourceError) as info:
            open_source(
                "s3://models/m.safetensors",
                config=strict.config(access_key_id="AKIAEXAMPLEKEYID", secret_access_key=secret),
                client_options={"allow_http": True},
            )
    assert info.value.status == 403
    assert secret not in str(info.value) and "AKIAEXAMPLEKEYID" not in str(info.value)
    assert str(info.value) == "s3://models/m.safetensors: HTTP 403 permission denied"


def test_unknown_key_id_is_403_and_never_shown(s3rver: S3Server) -> None:
    """s3rver checks the key id on every signed request (moto does only in its auth mode, above)."""
    secret = "wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY"
    with pytest.raises(RemoteSourceError) as info:
        open_source(
            "s3://models/m.safetensors",
            config=s3rver.config(access_key_id="AKIAEXAMPLEKEYID", secret_access_key=secret),
            client_options={"allow_http": True},
        )
    assert info.value.status == 403
    assert str(info.value) == "s3://models/m.safetensors: HTTP 403 permission denied"


def test_missing_s3_object_and_bucket(s3: S3Server, tmp_path: Path) -> None:
    put_object(s3, f"models/{tmp_path.name}/here.bin", b"x")
    cfg = {"config": s3.config(), "client_options": {"allow_http": True}}
    with pytest.raises(RemoteSourceError, match="HTTP 404 not found"):
        open_source(f"s3://models/{tmp_path.name}/gone.bin", **cfg)
    with pytest.raises(RemoteSourceError) as info:
        open_source("s3://no-such-bucket/x.bin", **cfg)
    assert str(info.value) == "s3://no-such-bucket/x.bin: HTTP 404 bucket 'no-such-bucket' does not exist"


def test_object_replaced_mid_read_is_refused(s3: S3Server, tmp_path: Path) -> None:
    """moto refuses the pinned read (412 for If-Match); s3rver ignores If-Match and answers with
    the new object, which the ETag check on every response refuses."""
    key = f"models/{tmp_path.name}/w.bin"
    put_object(s3, key, b"a" * 1000)
    src = open_source(f"s3://{key}", config=s3.config(), client_options={"allow_http": True})
    assert src.read(0, 4) == b"aaaa"
    # Replace it through obstore (moto refuses an unsigned PUT over an existing key).
    store, path = store_for(f"s3://{key}", config=s3.config(), client_options={"allow_http": True})
    obstore.put(store, path, b"b" * 1000)
    with pytest.raises(RemoteSourceError, match="object changed while reading") as info:
        src.read(500, 4)
    assert (info.value.start, info.value.end) == (500, 504)


def test_redaction() -> None:
    assert redact_url("https://user:pw@host/a.bin?X-Amz-Signature=abc&part=2&sig=zz") == (
        "https://host/a.bin?X-Amz-Signature=REDACTED&part=REDACTED&sig=REDACTED"
    )
    e = RemoteSourceError("not found", url="https://u:secretpw@h/x", status=404)
    assert "secretpw" not in str(e) and e.url == "https://h/x"
