"""Who gets a file descriptor: sources with `SupportsFileDescriptor` (a local file), asked with
``isinstance``; every other source (a wrapper over a file, memory, a remote object) is read
through its contract, by the output's copy path and by the IREE bridge alike."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import paramio.formats.output as output
from paramio.core.entry import EntryKind, ParameterEntry
from paramio.core.source import ByteSource
from paramio.sources.file import FileSource
from paramio.sources.handles import FileHandle
from paramio.sources.memory import MemorySource
from paramio.sources.protocols import SupportsFileDescriptor

DATA = bytes(range(256)) * 64


class Wrapped(ByteSource):
    """A source over a file that passes no descriptor through (as a window, a counting or a
    decrypting wrapper would): only its contract's reads."""

    def __init__(self, inner: ByteSource) -> None:
        self.inner = inner
        self.name = f"wrapped:{inner.name}"
        self.reads = 0

    @property
    def size(self) -> int:
        return self.inner.size

    def view(self, offset: int, length: int) -> memoryview:
        self.reads += 1
        return self.inner.view(offset, length)

    def readinto(self, offset: int, out: memoryview | bytearray) -> int:
        self.reads += 1
        return self.inner.readinto(offset, out)


@pytest.fixture
def local(tmp_path: Path) -> Iterator[FileSource]:
    (tmp_path / "data.bin").write_bytes(DATA)
    src = FileSource(tmp_path / "data.bin")
    yield src
    src.close()


def _entry(src: ByteSource, offset: int = 100, length: int = 5000) -> ParameterEntry:
    return ParameterEntry(key="w", kind=EntryKind.DATA, length=length, source=src, offset=offset)


def _copied(entry: ParameterEntry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[bytes, list[str]]:
    """The bytes `copy_entry` writes, and which of its paths carried them."""
    used: list[str] = []
    for name in ("_kernel_copy", "_buffered_copy", "_pipelined_copy", "_copy_views"):
        real = getattr(output, name)

        def spy(*args: object, _real: object = real, _name: str = name) -> object:
            used.append(_name)
            return _real(*args)  # type: ignore[operator]

        monkeypatch.setattr(output, name, spy)
    dest = tmp_path / "out.bin"
    with output.AtomicOutput(dest) as out:
        output.copy_entry(entry, out, 0)
        out.commit()
    return dest.read_bytes(), used


def test_only_descriptor_sources_claim_one(local: FileSource) -> None:
    assert isinstance(local, SupportsFileDescriptor) and local.descriptor() >= 0
    for other in (Wrapped(local), MemorySource(DATA), FileHandle.for_source(local)):
        assert not isinstance(other, SupportsFileDescriptor), type(other).__name__
    assert not hasattr(ByteSource, "fileno")  # the contract itself promises no descriptor
    assert not hasattr(FileSource, "fileno")  # one spelling of the ability: `descriptor()`


def test_file_entry_is_copied_through_its_descriptor(
    local: FileSource, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    got, used = _copied(_entry(local), tmp_path, monkeypatch)
    assert got == DATA[100:5100]
    assert "_copy_views" not in used and used  # copy_file_range or pread from the descriptor


def test_wrapper_without_descriptor_takes_the_copy_path(
    local: FileSource, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wrapped = Wrapped(local)
    got, used = _copied(_entry(wrapped), tmp_path, monkeypatch)
    assert got == DATA[100:5100]
    assert used == ["_copy_views"] and wrapped.reads > 0  # its own reads, never the file's descriptor


def test_closed_file_is_copied_from_its_mapping(
    local: FileSource, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    local.view(0, 1)  # mapped before the close; the mapping outlives the descriptor
    local.close()
    got, used = _copied(_entry(local), tmp_path, monkeypatch)
    assert got == DATA[100:5100] and used == ["_copy_views"]


def test_iree_bridge_hands_descriptors_only_for_files(local: FileSource) -> None:
    pytest.importorskip("iree.runtime")
    from paramio.iree.bridge import to_iree_index

    memory = MemorySource(DATA)
    entries = [
        ParameterEntry(key="file", kind=EntryKind.DATA, length=64, source=local, offset=256),
        ParameterEntry(key="wrapped", kind=EntryKind.DATA, length=64, source=Wrapped(local), offset=256),
        ParameterEntry(key="memory", kind=EntryKind.DATA, length=64, source=memory, offset=256),
        ParameterEntry(key="handle", kind=EntryKind.DATA, length=64, source=FileHandle.for_source(memory), offset=256),
    ]
    index = to_iree_index(entries)
    kinds = {}
    for key, e in index.items():  # type: ignore[attr-defined]
        handle, offset = e.file_storage
        kinds[key] = "fd" if handle.is_fd else "memory"
        view = np.asarray(e.file_view if not handle.is_fd else np.frombuffer(local.read(offset, 64), np.uint8))
        assert bytes(view) == DATA[256:320], key
    assert kinds == {"file": "fd", "wrapped": "memory", "memory": "memory", "handle": "memory"}
