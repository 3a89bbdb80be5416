"""The scheme registry: paths, file:// and URLs to sources; a missing extra names itself; remote
libraries are not imported by ``import paramio``; sibling names are confined."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from paramio.core.errors import InvalidArgumentError, SourceError
from paramio.sources import ByteSource, FileSource, MemorySource, MissingExtraError, open_source, register_scheme
from paramio.sources.names import join_url
from paramio.sources.protocols import SupportsFileDescriptor, SupportsWrite, SupportsZeroCopy
from paramio.sources.registry import scheme_of


def test_paths_and_file_urls_open_files(tmp_path: Path) -> None:
    p = tmp_path / "a b.bin"
    p.write_bytes(b"hello")
    for target in (p, str(p), f"file://{str(p).replace(' ', '%20')}"):
        src = open_source(target)
        assert isinstance(src, FileSource) and src.read(0, 5) == b"hello"
    with pytest.raises(InvalidArgumentError, match="another host"):
        open_source("file://elsewhere/x.bin")
    assert scheme_of("C:\\models\\x.bin") is None and scheme_of("S3://b/k") == "s3"


def test_unknown_scheme_is_refused() -> None:
    with pytest.raises(InvalidArgumentError, match=r"no byte source for ftp:// URLs \(known: file, abfs"):
        open_source("ftp://host/x.bin")


def test_every_scheme_the_object_store_serves_opens(monkeypatch: pytest.MonkeyPatch) -> None:
    """One scheme list: ``azure://`` (served by the object store) was unknown to the registry."""
    from paramio.sources.registry import known_schemes

    pytest.importorskip("obstore")
    from paramio.sources import objectstore

    assert set(objectstore.SCHEMES) <= set(known_schemes())
    seen = []

    def opener(url: str, **options: object) -> ByteSource:
        seen.append(url)
        return MemorySource(b"x")

    monkeypatch.setattr(objectstore, "open_object", opener)
    for scheme in objectstore.SCHEMES:
        open_source(f"{scheme}://host/bucket/x.bin")
    assert seen == [f"{s}://host/bucket/x.bin" for s in objectstore.SCHEMES]


def test_missing_extra_names_paramio_remote(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "obstore", None)  # as if not installed
    monkeypatch.delitem(sys.modules, "paramio.sources.objectstore", raising=False)
    with pytest.raises(MissingExtraError) as info:
        open_source("s3://bucket/model.irpa")
    assert str(info.value) == "s3:// URLs need the obstore package: pip install 'paramio[remote]'"
    assert isinstance(info.value, ImportError)


def test_registered_scheme_is_used(tmp_path: Path) -> None:
    seen: list[str] = []

    def opener(url: str, **options: object) -> ByteSource:
        seen.append(url)
        return MemorySource(b"from mem", name=url)

    register_scheme("memtest", opener)
    assert open_source("memtest://x/y").read(0, 8) == b"from mem" and seen == ["memtest://x/y"]
    register_scheme("lazytest", "paramio.no_such_module:open", extra="lazy", needs="paramio")
    with pytest.raises(ImportError):
        open_source("lazytest://x")
    with pytest.raises(InvalidArgumentError):
        register_scheme("c", opener)


def test_import_paramio_imports_no_remote_machinery() -> None:
    code = "import sys, paramio; print(sorted(m for m in ('obstore', 'asyncio', 'hashlib', 'paramio.sources.aio') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_protocols_tell_abilities(tmp_path: Path) -> None:
    (tmp_path / "f.bin").write_bytes(b"abc")
    f, m = FileSource(tmp_path / "f.bin"), MemorySource(bytearray(b"abc"), writable=True)
    assert isinstance(f, SupportsZeroCopy) and isinstance(f, SupportsFileDescriptor) and isinstance(f, SupportsWrite)
    assert isinstance(m, SupportsZeroCopy) and not isinstance(m, SupportsFileDescriptor)
    m.writable_view(0, 1)[0] = ord("x")
    assert m.read(0, 3) == b"xbc"
    with pytest.raises(SourceError, match="read-only"):
        f.writable_view(0, 1)
    assert os.fstat(f.descriptor()).st_size == f.size
    assert f.zero_copy_view(0, 3).obj is f.view(0, 3).obj  # the same mapping, no copy


def test_file_sibling_refuses_a_symlink_out_of_the_folder(tmp_path: Path) -> None:
    inside, outside = tmp_path / "in", tmp_path / "out"
    inside.mkdir()
    outside.mkdir()
    (outside / "secret.bin").write_bytes(b"s")
    (inside / "m.bin").write_bytes(b"m")
    (inside / "link.bin").symlink_to(outside / "secret.bin")
    (inside / "sub").mkdir()
    (inside / "sub" / "shard.bin").write_bytes(b"sh")
    src = FileSource(inside / "m.bin")
    assert src.sibling("sub/shard.bin").read(0, 2) == b"sh"
    with pytest.raises(SourceError, match="outside"):
        src.sibling("link.bin")


def test_join_url() -> None:
    assert join_url("https://h/models/m.safetensors?token=1", "shard-2.bin") == "https://h/models/shard-2.bin"
    assert join_url("s3://b/a/b/index.json", "sub/x y#1?.bin") == "s3://b/a/b/sub/x%20y%231%3F.bin"
    for bad in ("../x", "a/%2E%2E/x", "sub%2f..%2f..%2fx", "//host/x", "s3://other/x", "s3:x"):
        with pytest.raises(SourceError, match="refused"):
            join_url("s3://b/a/index.json", bad)


def test_join_url_keeps_an_empty_host() -> None:
    """``scheme:///path`` (a custom source's URL with no host) stays a URL of that scheme, not a
    ``scheme:/path`` that reads as a local path."""
    from paramio.sources.names import join_url

    assert join_url("counted:///tmp/a/x.json", "m.irpa") == "counted:///tmp/a/m.irpa"
    assert join_url("s3://bucket/a/x.json", "m.irpa") == "s3://bucket/a/m.irpa"
