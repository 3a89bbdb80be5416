"""The opt-in disk cache (a second open reads no data; two processes share it safely; it stays
under its size bound) and multipart uploads (nothing under the name until commit)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

obstore = pytest.importorskip("obstore", reason="the remote extra is not installed")

from remote_servers import Nginx, S3Server  # noqa: E402

from paramio.core.errors import InvalidArgumentError  # noqa: E402
from paramio.sources import open_source  # noqa: E402
from paramio.sources.cache import CachedSource, DiskCache  # noqa: E402
from paramio.sources.upload import open_upload  # noqa: E402
from paramio.testing.sources import sample_bytes  # noqa: E402

DATA = sample_bytes(1_000_003, seed=3)


def _gets(nginx: Nginx, name: str) -> list[str]:
    return [line for line in nginx.requests() if line.startswith(f"GET /{name}")]


def test_second_open_reads_no_data(nginx: Nginx, nginx_dir: Path, tmp_path: Path) -> None:
    (nginx_dir / "m.bin").write_bytes(DATA)
    url, cache = f"{nginx.url}/{nginx_dir.name}/m.bin", DiskCache(tmp_path / "cache", block_size=256 << 10)
    first = open_source(url, cache=cache)
    assert first.read(300_000, 500_000) == DATA[300_000:800_000]
    before = len(_gets(nginx, nginx_dir.name))
    assert before >= 1
    second = open_source(url, cache=cache)
    assert isinstance(second.inner, CachedSource)  # type: ignore[attr-defined]
    assert second.read(300_000, 500_000) == DATA[300_000:800_000]
    assert len(_gets(nginx, nginx_dir.name)) == before  # only a HEAD: validated, no data
    assert second.inner.hits == 3 and second.inner.misses == 0  # type: ignore[attr-defined]


def test_changed_object_is_not_served_from_cache(nginx: Nginx, nginx_dir: Path, tmp_path: Path) -> None:
    path = nginx_dir / "m.bin"
    path.write_bytes(b"a" * 5000)
    url, cache = f"{nginx.url}/{nginx_dir.name}/m.bin", DiskCache(tmp_path / "cache")
    assert open_source(url, cache=cache).read(0, 4) == b"aaaa"
    path.write_bytes(b"b" * 6000)  # new size and mtime: a new ETag
    assert open_source(url, cache=cache).read(0, 4) == b"bbbb"


CHILD = """
import hashlib, sys
from paramio.sources import open_source
from paramio.sources.cache import DiskCache
src = open_source(sys.argv[1], cache=DiskCache(sys.argv[2], block_size=64 << 10, max_bytes=int(sys.argv[3])))
data = src.read(0, src.size)
sys.stdout.write(hashlib.sha256(data).hexdigest() + " " + str(src.inner.misses))
"""


def test_two_processes_share_one_cache(nginx: Nginx, nginx_dir: Path, tmp_path: Path) -> None:
    (nginx_dir / "m.bin").write_bytes(DATA)
    url, folder = f"{nginx.url}/{nginx_dir.name}/m.bin", tmp_path / "cache"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    limit = str(10 << 20)
    procs = [
        subprocess.Popen([sys.executable, "-c", CHILD, url, str(folder), limit], stdout=subprocess.PIPE, env=env)
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=120)[0].decode().split() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert outs[0][0] == outs[1][0] == hashlib.sha256(DATA).hexdigest()
    # No temp file left, every block whole, and a third process reads nothing from the server.
    files = [p for p in folder.rglob("*") if p.is_file() and p.name != ".lock"]
    assert not [p for p in files if p.name.endswith(".tmp")]
    # Each block file holds its bytes and their SHA-256 (32 bytes).
    assert sorted(p.stat().st_size for p in files)[-1] == (64 << 10) + 32 and len(files) == 16
    third = subprocess.run(
        [sys.executable, "-c", CHILD, url, str(folder), limit], capture_output=True, env=env, timeout=120
    )
    assert third.stdout.decode().split() == [hashlib.sha256(DATA).hexdigest(), "0"]


def test_cache_stays_under_its_bound(nginx: Nginx, nginx_dir: Path, tmp_path: Path) -> None:
    (nginx_dir / "m.bin").write_bytes(DATA)
    cache = DiskCache(tmp_path / "cache", block_size=64 << 10, max_bytes=300_000)
    src = open_source(f"{nginx.url}/{nginx_dir.name}/m.bin", cache=cache)
    assert src.read(0, len(DATA)) == DATA
    assert cache.used_bytes() <= 300_000


def _s3(server: S3Server) -> dict[str, object]:
    return {"config": server.config(), "client_options": {"allow_http": True}}


def test_multipart_upload_appears_only_on_commit(s3: S3Server, tmp_path: Path) -> None:
    url, key = f"s3://models/{tmp_path.name}/big.irpa", f"{tmp_path.name}/big.irpa"
    big = sample_bytes(12 << 20, seed=5)
    with open_upload(url, part_size=5 << 20, **_s3(s3)) as up:  # type: ignore[arg-type]
        for i in range(0, len(big), 3 << 20):
            up.write(big[i : i + (3 << 20)])
        assert s3.pending_uploads("models") == [key]  # parts sent...
        assert key not in s3.keys("models")  # ...but no object under the name yet
    assert s3.pending_uploads("models") == []
    assert open_source(url, **_s3(s3)).read(0, len(big)) == big  # type: ignore[arg-type]


def test_upload_from_a_reused_buffer_keeps_every_part(s3: S3Server, tmp_path: Path) -> None:
    """Writers refill one buffer per chunk (as `paramio convert --output=s3://...` does); each
    part sent must hold the bytes written then, not what the buffer holds later."""
    url = f"s3://models/{tmp_path.name}/reused.bin"
    data = sample_bytes(12 << 20, seed=9)
    buf = bytearray(3 << 20)
    with open_upload(url, part_size=5 << 20, **_s3(s3)) as up:  # type: ignore[arg-type]
        for i in range(0, len(data), len(buf)):
            buf[:] = data[i : i + len(buf)]
            up.write(buf)
    assert open_source(url, **_s3(s3)).read(0, len(data)) == data  # type: ignore[arg-type]


def test_failed_upload_leaves_nothing(moto: S3Server, tmp_path: Path) -> None:
    """moto alone: s3rver cannot abort a multipart upload (it answers 405)."""
    url, key = f"s3://models/{tmp_path.name}/bad.irpa", f"{tmp_path.name}/bad.irpa"
    with pytest.raises(RuntimeError, match="writer died"):
        with open_upload(url, part_size=5 << 20, **_s3(moto)) as up:  # type: ignore[arg-type]
            up.write(sample_bytes(11 << 20))
            assert moto.pending_uploads("models") == [key]
            raise RuntimeError("writer died")
    assert moto.pending_uploads("models") == []
    assert key not in moto.keys("models")
    up2 = open_upload(url, **_s3(moto))  # type: ignore[arg-type]
    up2.write(b"small")
    up2.abort()
    assert key not in moto.keys("models")


def test_part_size_grows_so_any_object_fits_in_10000_parts() -> None:
    from paramio.sources.upload import DEFAULT_PART_SIZE, MAX_PARTS, part_size_for

    assert part_size_for(None) == part_size_for(1 << 30) == DEFAULT_PART_SIZE  # 64 parts of 16 MiB
    assert part_size_for(MAX_PARTS * DEFAULT_PART_SIZE) == DEFAULT_PART_SIZE  # 156.25 GiB: exactly 10,000
    for size in (MAX_PARTS * DEFAULT_PART_SIZE + 1, 200 << 30, 40 << 40):
        part = part_size_for(size)
        assert part % (1 << 20) == 0 and -(-size // part) <= MAX_PARTS, size
    assert part_size_for(200 << 30) == 21 << 20
    with pytest.raises(InvalidArgumentError, match="over 5 GiB"):
        part_size_for(MAX_PARTS * (5 << 30) + 1)


def test_conversion_to_a_url_sizes_parts_from_the_file(
    s3rver: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The upload is told the local build's size (so a model over 156 GiB would get bigger parts)."""
    import obstore

    from paramio.formats.uploads import write_remote

    seen: list[int] = []
    real = obstore.open_writer

    def spy(store: object, path: str, *, buffer_size: int, **kw: object) -> object:
        seen.append(buffer_size)
        return real(store, path, buffer_size=buffer_size, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(obstore, "open_writer", spy)
    monkeypatch.setattr("paramio.sources.upload.MAX_PARTS", 2)  # a 40 MiB file then needs 20 MiB parts
    url = f"s3://models/{tmp_path.name}/m.bin"
    data = sample_bytes(40 << 20, seed=3)
    write_remote(url, lambda p: Path(p).write_bytes(data), options=_s3(s3rver))
    assert seen == [20 << 20]  # not the 16 MiB default
    assert open_source(url, **_s3(s3rver)).read(0, len(data)) == data  # type: ignore[arg-type]


def test_the_cache_size_skips_files_another_process_removes_meanwhile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another process renames its temporary block into place (or evicts) between our listing
    and our stat: that file is skipped, not a FileNotFoundError out of a read."""
    cache = DiskCache(tmp_path / "cache", block_size=64 << 10, max_bytes=1 << 20)
    block = tmp_path / "cache" / "ab" / "0123" / "0.tmp"
    block.parent.mkdir(parents=True)
    block.write_bytes(b"x" * 100)
    (block.parent / "1").write_bytes(b"y" * 10)
    seen = list(os.scandir(block.parent))
    block.unlink()  # gone after the listing, before the stat

    def listing(folder: str) -> list[os.DirEntry[str]]:
        return seen if folder == str(block.parent) else list(os.scandir(folder))

    monkeypatch.setattr("paramio.sources.cache._entries", listing)
    assert cache.used_bytes() == 10
    assert cache.evict() == 0
