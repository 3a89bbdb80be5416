"""The shipped conformance suite against the local sources and the sync/async bridge."""

from __future__ import annotations

from pathlib import Path

from paramio.sources import ByteSource, FileSource, MemorySource
from paramio.sources.aio import BridgedSource, ThreadedSource
from paramio.testing import SourceTests


def _write(tmp_path: Path, files: dict[str, bytes]) -> None:
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)


class TestFileSource(SourceTests):
    def make_source(self, tmp_path: Path, files: dict[str, bytes], name: str) -> ByteSource:
        _write(tmp_path, files)
        return FileSource(tmp_path / name)


class TestFileSourceWithoutMmap(SourceTests):
    def make_source(self, tmp_path: Path, files: dict[str, bytes], name: str) -> ByteSource:
        _write(tmp_path, files)
        return FileSource(tmp_path / name, use_mmap=False)


class TestMemorySource(SourceTests):
    has_siblings = False

    def make_source(self, tmp_path: Path, files: dict[str, bytes], name: str) -> ByteSource:
        return MemorySource(files[name], name="<memory>")


class TestBridgedThreadedSource(SourceTests):
    """A sync source made async and back again: both bridges, the planner's parallel parts."""

    def make_source(self, tmp_path: Path, files: dict[str, bytes], name: str) -> ByteSource:
        _write(tmp_path, files)
        inner = ThreadedSource(FileSource(tmp_path / name))
        inner.max_request = 50_000  # split big reads into parallel parts
        return BridgedSource(inner, page_size=4096)
