"""The format conformance suite: what every registered `Format` must do, as pytest tests.

Subclass `FormatTests` (the class name must start with ``Test``) and set `format_name` to a
registered format (`paramio.formats.contract.register_format`); register it in a fixture of
your own if it is not registered on import. Every behaviour conversion, the index and the CLI
rely on is then checked through the contract alone: detection by extension and by magic, a
round trip of typed entries, ``read_source`` agreeing with ``read_path``, splats stored or
reported as a loss, atomic writes, progress, the stem of a path, where file-level metadata
lives, and that a truncated or corrupted file raises paramio's errors and never reads out of
bounds. Override `sample_entries` for a format that cannot hold the default ones.
"""

from __future__ import annotations

import os
import random
import shutil
from collections.abc import Sequence
from pathlib import Path

import pytest

from paramio.core.entry import ParameterEntry
from paramio.core.errors import FormatWarning, LossError, ParamioError, SourceError
from paramio.core.source import ByteSource
from paramio.core.tensor import TensorInfo
from paramio.formats.contract import Format, FormatContents, format_for_head, get_format
from paramio.formats.registry import check_options, detect_format, plan_losses, read_path, write_path, writer_options
from paramio.sources.file import FileSource
from paramio.sources.memory import MemorySource
from paramio.testing.bulk import check_bulk_agrees, damaged
from paramio.testing.sources import sample_bytes

__all__ = ["FormatTests"]

#: What every writer takes besides ``attributes`` (`paramio.formats.contract.Format.write_path`).
COMMON_OPTIONS = frozenset({"alignment", "durable", "progress", "max_shard_size"})


class _FailingSource(ByteSource):
    """A source whose bytes cannot be read: a write that needs them must fail and leave nothing."""

    name = "<failing>"

    def __init__(self, size: int) -> None:
        self._size = size

    @property
    def size(self) -> int:
        return self._size

    def view(self, offset: int, length: int) -> memoryview:
        raise SourceError("this source fails on purpose", path=self.name, offset=offset)

    def readinto(self, offset: int, out: memoryview | bytearray) -> int:
        raise SourceError("this source fails on purpose", path=self.name, offset=offset)


def _entries_in_bounds(contents: FormatContents, size: int) -> None:
    """Every data entry of `contents` lies inside a file of `size` bytes and reads back."""
    for e in contents.entries:
        if e.is_splat:
            continue
        source, offset = e.file_storage
        assert 0 <= offset and offset + e.length <= source.size, (e.key, offset, e.length, source.size)
        assert len(e.read()) == e.length


class FormatTests:
    """Behaviours every format shares. Set `format_name`; the rest is inherited."""

    #: The registered format's name.
    format_name: str = ""
    #: Positions flipped in the corruption test (each file read once per flip).
    flips: int = 48
    #: Damaged copies of the written file each read both ways when the format has a bulk path.
    bulk_examples: int = 100

    # -- what a subclass may override --------------------------------------------------------

    def sample_entries(self) -> list[ParameterEntry]:
        """Typed entries of a few common element types, bytes differing at every offset."""
        specs = [("w.f32", "float32", (2, 3), 4), ("b.f16", "float16", (5,), 2), ("i.i32", "int32", (3, 2), 4)]
        specs.append(("n.i8", "int8", (7,), 1))
        out = []
        for i, (key, dtype, shape, size) in enumerate(specs):
            n = size
            for d in shape:
                n *= d
            src = MemorySource(sample_bytes(n, seed=i), name=f"<{key}>")
            out.append(ParameterEntry.data(key, src, 0, n, tensor=TensorInfo(dtype, shape)))
        return out

    # -- fixtures ------------------------------------------------------------------------------

    @pytest.fixture
    def fmt(self) -> Format:
        if not self.format_name:
            raise NotImplementedError("set format_name to a registered format")
        return get_format(self.format_name)

    @pytest.fixture
    def entries(self) -> list[ParameterEntry]:
        return self.sample_entries()

    @pytest.fixture
    def written(self, fmt: Format, entries: list[ParameterEntry], tmp_path: Path) -> Path:
        path = tmp_path / f"model{fmt.extension}"
        write_path(path, entries, format=fmt.name, on_loss="ignore")
        return path

    # -- the contract itself -------------------------------------------------------------------

    def test_registered_and_well_formed(self, fmt: Format) -> None:
        assert fmt.name == self.format_name.lower() and get_format(fmt.name.upper()) is fmt
        assert fmt.extension == fmt.extensions[0]
        assert COMMON_OPTIONS <= writer_options(fmt.name)
        with pytest.raises(TypeError, match="alignmnet"):
            check_options(fmt.name, {"alignmnet": 64})

    def test_detected_by_each_extension(self, fmt: Format) -> None:
        for ext in fmt.extensions:
            assert detect_format(f"dir/model{ext}", for_writing=True) == fmt.name
            assert detect_format(f"dir/MODEL{ext.upper()}", for_writing=True) == fmt.name

    def test_stem_of_a_path(self, fmt: Format) -> None:
        for ext in fmt.extensions:
            assert fmt.stem(os.path.join("some", "dir", f"llama{ext}")) == "llama"
        assert fmt.stem(f"LLAMA{fmt.extension.upper()}") == "LLAMA"
        assert fmt.stem(fmt.extension) == "model"  # nothing left: the default name

    def test_file_metadata_lives_in_its_namespace(self, fmt: Format, written: Path) -> None:
        contents = read_path(written, format=fmt.name)
        meta = fmt.file_metadata
        if meta is None:
            return
        assert meta.attribute.startswith(fmt.name + ".") and meta.title and meta.unit
        found = contents.attributes.get(meta.attribute)
        assert found is None or isinstance(found, dict)

    # -- reading and writing -------------------------------------------------------------------

    def test_round_trip(self, fmt: Format, entries: list[ParameterEntry], written: Path) -> None:
        contents = read_path(written, format=fmt.name)
        assert [e.key for e in contents.entries] == [e.key for e in entries]
        for got, want in zip(contents.entries, entries, strict=True):
            assert got.read() == want.read(), got.key
            assert got.tensor is not None and want.tensor is not None
            assert (got.tensor.dtype, tuple(got.tensor.shape)) == (want.tensor.dtype, tuple(want.tensor.shape))
        assert os.path.abspath(contents.paths[0]) == os.path.abspath(written)
        _entries_in_bounds(contents, written.stat().st_size)

    def test_detected_by_magic(self, fmt: Format, written: Path, tmp_path: Path) -> None:
        head = written.read_bytes()[:64]
        if not fmt.sniff(head):
            pytest.skip(f"{fmt.name} has no magic to sniff")
        assert format_for_head(head) is fmt
        renamed = tmp_path / "renamed.bin"
        shutil.copyfile(written, renamed)
        assert detect_format(renamed) == fmt.name

    def test_read_source_agrees_with_read_path(self, fmt: Format, written: Path) -> None:
        if fmt.read_source is None:
            pytest.skip(f"{fmt.name} cannot be read from one byte source")
        by_path = read_path(written, format=fmt.name)
        source = FileSource(str(written))
        try:
            by_source = fmt.read_source(source)
            assert [e.key for e in by_source.entries] == [e.key for e in by_path.entries]
            assert [e.read() for e in by_source.entries] == [e.read() for e in by_path.entries]
        finally:
            source.close()

    def test_progress_counts_every_byte(self, fmt: Format, entries: list[ParameterEntry], tmp_path: Path) -> None:
        ticks: list[int] = []
        write_path(tmp_path / f"p{fmt.extension}", entries, format=fmt.name, progress=ticks.append, on_loss="ignore")
        assert sum(ticks) == sum(e.length for e in entries)

    def test_splat_is_stored_or_reported(self, fmt: Format, tmp_path: Path) -> None:
        splat = ParameterEntry.splat("s", b"\x01\x02\x03\x04", 32, tensor=TensorInfo("float32", (8,)))
        path = tmp_path / f"s{fmt.extension}"
        losses = plan_losses(path, [splat], format=fmt.name)
        if fmt.splats:
            assert losses == []
            write_path(path, [splat], format=fmt.name)
            (back,) = read_path(path, format=fmt.name).entries
            assert back.is_splat and back.splat_pattern == splat.splat_pattern and back.length == 32
            return
        assert [loss.key for loss in losses] == ["s"]
        with pytest.raises(LossError):
            write_path(path, [splat], format=fmt.name, on_loss="error")
        assert not path.exists()
        write_path(path, [splat], format=fmt.name, on_loss="ignore")
        (back,) = read_path(path, format=fmt.name).entries
        assert back.read() == b"\x01\x02\x03\x04" * 8

    def test_a_failed_write_leaves_the_old_file(
        self, fmt: Format, entries: list[ParameterEntry], written: Path, tmp_path: Path
    ) -> None:
        before = written.read_bytes()
        names = sorted(os.listdir(tmp_path))
        bad = ParameterEntry.data("bad", _FailingSource(64), 0, 64, tensor=TensorInfo("float32", (16,)))
        with pytest.raises(ParamioError):
            write_path(written, [*entries, bad], format=fmt.name, on_loss="ignore")
        assert written.read_bytes() == before
        assert sorted(os.listdir(tmp_path)) == names  # no temporary file left behind

    # -- hostile input -------------------------------------------------------------------------

    def _read_cut(self, fmt: Format, path: Path) -> None:
        """Read `path`: paramio's error, or entries that all lie inside the file."""
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FormatWarning)
            try:
                contents = read_path(path, format=fmt.name)
            except ParamioError:
                return
            _entries_in_bounds(contents, path.stat().st_size)

    def _cuts(self, size: int) -> Sequence[int]:
        return sorted({0, 1, 4, 7, 8, 15, 16, 24, 63, 64, size // 2, size - 1, *range(0, min(size, 512), 37)})

    def test_truncated_files_raise_paramio_errors(self, fmt: Format, written: Path, tmp_path: Path) -> None:
        data = written.read_bytes()
        for cut in self._cuts(len(data)):
            if cut >= len(data):
                continue
            path = tmp_path / f"cut{cut}{fmt.extension}"
            path.write_bytes(data[:cut])
            self._read_cut(fmt, path)

    def test_corrupted_headers_raise_paramio_errors(self, fmt: Format, written: Path, tmp_path: Path) -> None:
        data = written.read_bytes()
        rng = random.Random(f"{fmt.name}-flips")
        region = min(len(data), 512)
        for i in range(self.flips):
            mutated = bytearray(data)
            at = rng.randrange(region)
            mutated[at] ^= 1 << rng.randrange(8) if i % 2 else 0xFF
            path = tmp_path / f"flip{i}{fmt.extension}"
            path.write_bytes(bytes(mutated))
            self._read_cut(fmt, path)

    def test_bulk_path_agrees_with_the_reference(self, fmt: Format, written: Path) -> None:
        """A format whose reader checks large tables at once (`Format.read_reference` set) reads
        the written file that way, with what the reference reader finds, and damaged copies of
        it with the same entries or the same error class and message (`paramio.testing.bulk`)."""
        if fmt.read_reference is None:
            pytest.skip(f"{fmt.name}: the reader has one path (no read_reference)")
        pytest.importorskip("hypothesis")
        from hypothesis import HealthCheck, given, settings

        data = written.read_bytes()
        assert check_bulk_agrees(fmt, data, name=written.name), "the written file must take the bulk path"

        @settings(
            max_examples=self.bulk_examples,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
        )
        @given(damaged(data))
        def agrees(copy: bytes) -> None:
            check_bulk_agrees(fmt, copy, name=written.name)

        agrees()
