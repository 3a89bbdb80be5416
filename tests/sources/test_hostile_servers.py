"""Remote reads against misbehaving servers (``hostile_server.py``): a replaced object is an
error whatever the server gives to pin it with, slow-but-steady transfers finish while stalled
ones time out, and each failure says what happened (a redirect loop, a wrong range, a refused
connection) instead of "timed out"."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("obstore", reason="the remote extra is not installed")

from hostile_server import HostileServer, closed_port, run_hostile_server  # noqa: E402

from paramio.sources import open_source  # noqa: E402
from paramio.sources.retry import RemoteSourceError, RetryPolicy  # noqa: E402

FAST = RetryPolicy(attempts=3, first_delay=0.001, max_delay=0.01)
DATA = bytes(range(256)) * 64


@pytest.fixture(scope="module")
def hostile() -> Iterator[HostileServer]:
    with run_hostile_server() as server:
        yield server


def _name(tmp_path: Path, data: bytes = DATA) -> str:
    return tmp_path.name + ".bin"


@pytest.mark.parametrize("mode", ["dated", "dated-deaf"])
def test_object_without_etag_replaced_mid_read_is_refused_by_its_date(
    hostile: HostileServer, tmp_path: Path, mode: str
) -> None:
    """Same size, no ETag: only Last-Modified tells the versions apart; the server honours
    If-Unmodified-Since (412) or ignores it (the response's own date is checked)."""
    name = _name(tmp_path)
    hostile.put(name, DATA)
    src = open_source(f"{hostile.url}/{mode}/{name}", retry=FAST)
    assert src.read(0, 16) == DATA[:16]
    hostile.put(name, DATA[::-1])
    with pytest.raises(RemoteSourceError, match="object changed while reading") as info:
        src.read(100, 16)
    assert (info.value.start, info.value.end) == (100, 116)


def test_object_with_neither_etag_nor_date_is_refused_unless_allowed(hostile: HostileServer, tmp_path: Path) -> None:
    name = _name(tmp_path)
    hostile.put(name, DATA)
    url = f"{hostile.url}/bare/{name}"
    with pytest.raises(RemoteSourceError, match="neither an ETag nor a Last-Modified date.*allow_unpinned=True"):
        open_source(url, retry=FAST)
    src = open_source(url, retry=FAST, allow_unpinned=True)
    assert src.read(8, 8) == DATA[8:16]
    # Even unpinned, every Content-Range's total size is checked: a longer object is refused.
    hostile.put(name, DATA + b"more")
    with pytest.raises(RemoteSourceError, match=rf"object changed while reading \(its size is now {len(DATA) + 4}"):
        src.read(8, 8)


def test_server_answering_another_range_says_so(hostile: HostileServer, tmp_path: Path) -> None:
    name = _name(tmp_path)
    hostile.put(name, DATA)
    src = open_source(f"{hostile.url}/wrong-range/{name}", retry=FAST)
    with pytest.raises(RemoteSourceError) as info:
        src.read(10, 10)
    assert str(info.value).endswith("bytes 10-19: server answered another range than asked (bytes 11-19)")
    assert len(hostile.gets(name)) == 1  # not retried: the server will answer the same again


def test_redirect_loop_says_so_and_is_not_retried(hostile: HostileServer, tmp_path: Path) -> None:
    name = _name(tmp_path)
    with pytest.raises(RemoteSourceError) as info:
        open_source(f"{hostile.url}/loop/{name}", retry=FAST)
    assert "too many redirects" in str(info.value) and "timed out" not in str(info.value)
    assert info.value.attempts == 1


def test_connection_refused_says_so_and_gives_up_quickly() -> None:
    url = f"http://127.0.0.1:{closed_port()}/m.bin"
    began = time.monotonic()
    with pytest.raises(RemoteSourceError) as info:
        open_source(url)  # the default policy
    assert "connection refused" in str(info.value) and "timed out" not in str(info.value)
    assert time.monotonic() - began < 10


def test_slow_but_steady_transfer_finishes(hostile: HostileServer, tmp_path: Path) -> None:
    """One 1 MiB request at 256 KiB/s takes ~4 s: longer than the timeout (2 s), which bounds
    silence, not the whole request."""
    data = bytes(range(256)) * 4096
    name = _name(tmp_path)
    hostile.put(name, data)
    hostile.rate = 256 * 1024
    src = open_source(f"{hostile.url}/throttle/{name}", retry=RetryPolicy(attempts=1), timeout=2.0, max_request=4 << 20)
    assert src.read(0, len(data)) == data


def test_stalled_transfer_times_out(hostile: HostileServer, tmp_path: Path) -> None:
    name = _name(tmp_path)
    hostile.put(name, DATA)
    src = open_source(f"{hostile.url}/stall/{name}", retry=RetryPolicy(attempts=1), timeout=0.5)
    began = time.monotonic()
    with pytest.raises(RemoteSourceError, match="timed out"):
        src.read(0, len(DATA))
    assert time.monotonic() - began < 4


def test_cli_reads_an_unpinnable_object_only_with_allow_unpinned(
    hostile: HostileServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import numpy as np

    from paramio.cli.main import main
    from paramio.formats.registry import write_path
    from paramio.index.index import ParameterIndex

    index = ParameterIndex()
    index.add_array("w", np.arange(4, dtype=np.float32))
    write_path(tmp_path / "m.irpa", list(index.entries), format="irpa")
    hostile.put(f"{tmp_path.name}.irpa", (tmp_path / "m.irpa").read_bytes())
    url = f"{hostile.url}/bare/{tmp_path.name}.irpa"
    assert main(["dump", url]) != 0
    assert "--allow-unpinned" in capsys.readouterr().err
    assert main(["dump", "--allow-unpinned", url]) == 0
    assert "w" in capsys.readouterr().out


def _irpa(tmp_path: Path) -> bytes:
    import numpy as np

    from paramio.formats.registry import write_path
    from paramio.index.index import ParameterIndex

    index = ParameterIndex()
    index.add_array("w", np.arange(4, dtype=np.float32))
    write_path(tmp_path / "m.irpa", list(index.entries), format="irpa")
    return (tmp_path / "m.irpa").read_bytes()


@pytest.mark.parametrize("scoped", [False, True])
def test_presigned_url_is_opened_with_its_query_and_never_shown(
    hostile: HostileServer, tmp_path: Path, capsys: pytest.CaptureFixture[str], scoped: bool
) -> None:
    """A presigned URL (query with ``=``, signed for GET only: every HEAD refused) opens, with
    or without a ``scope=`` prefix, and its signature appears in no output, error or --json."""
    from urllib.parse import quote

    from paramio.cli.main import main

    name = f"{tmp_path.name}.irpa"
    hostile.put(name, _irpa(tmp_path))
    sig = hostile.signature
    url = f"{hostile.url}/presigned/{name}?X-Amz-Expires=60&sig={quote(sig, safe='')}"
    arg = f"model={url}" if scoped else url
    assert main(["dump", f"--parameters={arg}"]) == 0, capsys.readouterr().err
    out, err = capsys.readouterr()
    assert "w" in out and sig not in out + err and quote(sig, safe="") not in out + err
    assert main(["dump", "--json", f"--parameters={arg}"]) == 0
    out, err = capsys.readouterr()
    assert '"w"' in out and sig not in out + err and quote(sig, safe="") not in out + err
    # Every request carried the query (the server refuses any without it).
    assert all("sig=" in p for m, p, _ in hostile.log if name in p)
    # A failure names the URL, its query redacted.
    bad = url.replace(name, "absent.irpa")
    assert main(["dump", f"--parameters={'model=' if scoped else ''}{bad}"]) != 0
    out, err = capsys.readouterr()
    assert "absent.irpa" in err and "REDACTED" in err and quote(sig, safe="") not in err and sig not in err


def test_scope_is_split_only_at_a_scope_name() -> None:
    from paramio.index.scopes import parse_parameters_flag

    assert parse_parameters_flag("model=https://h/m.irpa?a=b").scope == "model"
    assert parse_parameters_flag("model=https://h/m.irpa?a=b").path == "https://h/m.irpa?a=b"
    assert parse_parameters_flag("https://h/m.irpa?a=b&c=d").scope == ""
    assert parse_parameters_flag("https://h/m.irpa?a=b&c=d").path == "https://h/m.irpa?a=b&c=d"
    assert parse_parameters_flag("dir/x=y.irpa").path == "dir/x=y.irpa"
    assert parse_parameters_flag("s=dir/x=y.irpa").scope == "s"


def test_redirect_to_another_host_is_refused_naming_it(hostile: HostileServer, tmp_path: Path) -> None:
    """`localhost` is this same server under another host name: a redirect there leaves the
    URL's host, and is followed only when allowed."""
    name = _name(tmp_path)
    hostile.put(name, DATA)
    url = f"{hostile.url}/away/{name}"
    with pytest.raises(RemoteSourceError) as info:
        open_source(url, retry=FAST)
    other = f"localhost:{hostile.port}"
    assert f"redirected to another host, {other}" in str(info.value)
    assert f"allowed_hosts=[{other!r}]" in str(info.value)
    assert not [p for m, p, _ in hostile.log if p == f"/plain/{name}"]  # never requested there
    src = open_source(url, retry=FAST, allowed_hosts=["localhost"])
    assert src.read(5, 10) == DATA[5:15]
    # The reads went where the redirect led, once, not through the redirect each time.
    assert [r for m, p, r in hostile.log if m == "GET" and p == f"/plain/{name}"] == ["bytes=5-14"]


def test_redirect_within_the_host_is_followed(hostile: HostileServer, tmp_path: Path) -> None:
    name = _name(tmp_path)
    hostile.put(name, DATA)
    assert open_source(f"{hostile.url}/moved/{name}", retry=FAST).read(0, 8) == DATA[:8]


def test_cli_allow_redirect_host(hostile: HostileServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from paramio.cli.main import main

    name = f"{tmp_path.name}.irpa"
    hostile.put(name, _irpa(tmp_path))
    url = f"{hostile.url}/away/{name}"
    assert main(["dump", url]) != 0
    assert f"--allow-redirect-host=localhost:{hostile.port}" in capsys.readouterr().err
    assert main(["dump", "--allow-redirect-host=localhost", url]) == 0
    assert "w" in capsys.readouterr().out


def test_presigned_url_is_shown_redacted_by_every_command(
    hostile: HostileServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """verify (text and --json) and which printed the path as given, signature and all."""
    from urllib.parse import quote

    from paramio.cli.main import main

    name = f"{tmp_path.name}.irpa"
    hostile.put(name, _irpa(tmp_path))
    sig = hostile.signature
    url = f"{hostile.url}/presigned/{name}?X-Amz-Expires=60&sig={quote(sig, safe='')}"
    bad = url.replace(name, "absent.irpa")
    runs = [
        (["verify", url], 0),
        (["verify", "--json", url], 0),
        (["verify", bad], 1),
        (["which", f"--parameters={url}", "w"], 0),
        (["which", f"--parameters=m={url}", "m::w"], 0),
        (["dump", "--json", f"--parameters={bad}"], 1),
    ]
    for argv, rc in runs:
        assert main(argv) == rc, argv
        out, err = capsys.readouterr()
        assert "presigned/" in out + err, argv
        assert sig not in out + err and quote(sig, safe="") not in out + err, argv
