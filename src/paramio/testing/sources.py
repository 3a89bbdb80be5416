"""The byte-source conformance suite: what every `ByteSource` must do, as pytest tests.

Subclass `SourceTests` (the class name must start with ``Test``) and implement `make_source`:
given named files, put them wherever your source reads from (a folder, a bucket, a server's
root) and open the one named. Set ``has_siblings = False`` for a source with no folder.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from paramio.core.errors import InvalidArgumentError, SourceError, TruncatedError
from paramio.core.planner import Span
from paramio.core.source import ByteSource

__all__ = ["SourceTests", "sample_bytes"]

#: Names a sibling lookup must refuse, whatever the source: each could leave the folder.
ESCAPING_NAMES = (
    "../secret.bin",
    "a/../../secret.bin",
    "/etc/passwd",
    "%2e%2e/secret.bin",
    "http://evil.example/x",
    "",
    "a\\..\\b",
    "c:/x.bin",
)


def sample_bytes(n: int, seed: int = 0) -> bytes:
    """`n` deterministic bytes that differ at every offset (so a misplaced byte shows)."""
    return random.Random(seed).randbytes(n)


class SourceTests:
    """Behaviours every byte source shares. Override `make_source`; the rest is inherited."""

    #: Whether `sibling` finds files beside the source (False for memory).
    has_siblings: bool = True
    #: Size of the main object: several 64 KiB pages, not a round number.
    data_size: int = 300_007

    def make_source(self, tmp_path: Path, files: dict[str, bytes], name: str) -> ByteSource:
        raise NotImplementedError

    @pytest.fixture
    def data(self) -> bytes:
        return sample_bytes(self.data_size)

    @pytest.fixture
    def source(self, tmp_path: Path, data: bytes) -> ByteSource:
        return self.make_source(tmp_path, {"model.bin": data, "shard-2.bin": b"second shard"}, "model.bin")

    def test_size_and_name(self, source: ByteSource, data: bytes) -> None:
        assert source.size == len(data)
        assert isinstance(source.name, str) and source.name

    def test_view_read_readinto(self, source: ByteSource, data: bytes) -> None:
        for offset, length in [(0, 8), (0, 0), (65_530, 20), (1, 200_000), (len(data) - 3, 3), (0, len(data))]:
            assert bytes(source.view(offset, length)) == data[offset : offset + length]
            assert source.read(offset, length) == data[offset : offset + length]
            buf = bytearray(length)
            assert source.readinto(offset, buf) == length
            assert bytes(buf) == data[offset : offset + length]

    def test_readv_matches_slices_in_order(self, source: ByteSource, data: bytes) -> None:
        rng = random.Random(7)
        spans = [(rng.randrange(len(data)), 0) for _ in range(3)]
        for _ in range(40):
            start = rng.randrange(len(data))
            spans.append((start, rng.randrange(min(len(data) - start, 70_000) + 1)))
        spans += [(10, 100), (50, 100), (0, len(data))]  # overlaps, and the whole object
        got = source.readv(spans)
        assert [bytes(g) for g in got] == [data[o : o + n] for o, n in spans]
        assert source.readv([]) == []
        assert bytes(source.readv([Span(5, 3)])[0]) == data[5:8]

    @pytest.mark.parametrize("span", [(-1, 4), (0, -1)])
    def test_negative_span_is_refused(self, source: ByteSource, span: tuple[int, int]) -> None:
        with pytest.raises(InvalidArgumentError):
            source.view(*span)
        with pytest.raises(InvalidArgumentError):
            source.readv([(0, 1), span])

    def test_span_past_the_end_is_refused(self, source: ByteSource, data: bytes) -> None:
        with pytest.raises(TruncatedError) as info:
            source.view(len(data) - 2, 3)
        assert info.value.path == source.name
        with pytest.raises(TruncatedError):
            source.readinto(len(data), bytearray(1))
        with pytest.raises(TruncatedError):
            source.readv([(0, 4), (len(data), 1)])

    def test_sibling_opens_beside_it(self, source: ByteSource) -> None:
        if not self.has_siblings:
            with pytest.raises(SourceError):
                source.sibling("shard-2.bin")
            return
        with source.sibling("shard-2.bin") as other:
            assert other.size == 12
            assert other.read(0, 12) == b"second shard"
        with pytest.raises(SourceError):
            source.sibling("no-such-shard.bin")

    @pytest.mark.parametrize("name", ESCAPING_NAMES)
    def test_sibling_refuses_names_leaving_the_folder(self, source: ByteSource, name: str) -> None:
        with pytest.raises(SourceError):
            source.sibling(name)

    def test_not_writable_unless_asked(self, source: ByteSource) -> None:
        assert source.writable is False
        with pytest.raises(SourceError):
            source.write(0, b"x")

    def test_close_twice(self, source: ByteSource) -> None:
        source.close()
        source.close()
