"""`paramio.verify`: the library function under ``paramio verify``, and its typed report.

Files are made by paramio and by IREE's tool, then corrupted by hand at known offsets; each
problem must name its check, file, entry and offset.
"""

from __future__ import annotations

import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest

import paramio
import paramio.formats.safetensors as st_format
from paramio import EntryKind, InvalidArgumentError, ParameterSpec, VerifyReport, create_parameters, verify
from paramio.formats.contract import register_format
from paramio.formats.irpa.layout import ENTRY_HEADER
from paramio.formats.registry import FormatContents
from paramio.formats.verify import Check, EntryCheck, Problem

ALL_BUT_STRUCTURE = (Check.PARSE, Check.TENSOR_METADATA, Check.SPLATS, Check.BOUNDS, Check.OVERLAPS)


def _tails(path: Path) -> list[int]:
    """File offset of each entry's type-specific fields (after its common header), walking the
    entry table as IREE lays it out (entries 16-aligned)."""
    data = path.read_bytes()
    count, table, _ = struct.unpack_from("<QQQ", data, 32)
    tails, pos = [], table
    for _ in range(count):
        tails.append(pos + ENTRY_HEADER.size)
        pos += (struct.unpack_from("<Q", data, pos)[0] + 15) // 16 * 16
    return tails


def _patch(path: Path, offset: int, fmt: str, *values: int) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(struct.pack(fmt, *values))


def _archive(tmp_path: Path) -> Path:
    """``w`` (16 bytes of data), ``s`` (a 4-byte splat of 16 bytes), ``z`` (32 bytes of data),
    laid out as IREE lays them out (no metadata)."""
    path = tmp_path / "a.irpa"
    create_parameters(
        path,
        [
            ParameterSpec.data("w", 16, b"\x01"),
            ParameterSpec.splat("s", np.float32(1).tobytes(), 16),
            ParameterSpec.data("z", 32),
        ],
    )
    return path


def _external_archive(path: Path, name: bytes) -> Path:
    """An IRPA archive with one EXTERNAL entry ``e`` naming `name`, 4 bytes from its start."""
    key = b"e"
    table = ENTRY_HEADER.size + 32
    meta = 96 + table
    out = bytearray(4096)
    struct.pack_into("<4sHHQQQ", out, 0, b"IRPA", 0, 0, 88, 0, 0)
    struct.pack_into("<Q6Q", out, 32, 1, 96, table, meta, len(key) + len(name), 4096, 0)
    struct.pack_into("<QIQQQQQQ", out, 96, table, 3, 0, 0, len(key), 0, 0, 0)
    struct.pack_into("<QQQQ", out, 96 + ENTRY_HEADER.size, len(key), len(name), 0, 4)
    out[meta : meta + len(key) + len(name)] = key + name
    path.write_bytes(bytes(out))
    return path


def test_a_good_archive(tmp_path: Path) -> None:
    path = _archive(tmp_path)
    report = verify(path)
    assert isinstance(report, VerifyReport)
    assert (report.path, report.format, report.ok, report.problems) == (str(path), "irpa", True, ())
    assert report.checks == (*ALL_BUT_STRUCTURE, Check.STRUCTURE)
    index = paramio.ParameterIndex.open(path)
    w, z = index["w"].offset, index["z"].offset
    assert report.entries == (
        EntryCheck("w", EntryKind.DATA, 16, w, min(w & -w, 4096), True),
        EntryCheck("s", EntryKind.SPLAT, 16, None, None, None),
        EntryCheck("z", EntryKind.DATA, 32, z, min(z & -z, 4096), True),
    )


@pytest.mark.interop
def test_archives_made_by_iree_pass(tmp_path: Path, iree_tool) -> None:
    path = tmp_path / "iree.irpa"
    subprocess.run(
        [iree_tool("iree-create-parameters"), "--data=a=4096xf32", "--splat=b=16xi16=7", f"--output={path}"],
        check=True,
        capture_output=True,
    )
    report = verify(path, alignment=64, strict_alignment=True)
    assert report.ok and Check.ALIGNMENT in report.checks and [e.key for e in report.entries] == ["b", "a"]


def test_data_past_the_end(tmp_path: Path) -> None:
    path = _archive(tmp_path)
    _patch(path, _tails(path)[2] + 8, "<Q", 1 << 20)  # z claims a MiB the file does not have
    report = verify(path)
    # the reader refuses it already: one parse problem naming the entry
    assert not report.ok and report.format is None and report.entries == ()
    (p,) = report.problems
    assert (p.check, p.file, p.key) == (Check.PARSE, str(path), "z")


def test_overlapping_entries_name_both_and_the_offset(tmp_path: Path) -> None:
    path = _archive(tmp_path)
    w = paramio.ParameterIndex.open(path)["w"].offset
    _patch(path, _tails(path)[2], "<Q", 8)  # z's storage starts 8 bytes into w's
    report = verify(path)
    assert report.problems == (
        Problem(Check.OVERLAPS, f"data overlaps entry 'w' ({w:#x}..{w + 16:#x}) in {path}", str(path), "z", w + 8),
    )
    assert report.format == "irpa" and len(report.entries) == 3


def test_a_splat_that_breaks_the_rule(tmp_path: Path) -> None:
    path = _archive(tmp_path)
    _patch(path, _tails(path)[1], "<Q", 10)  # s: 10 bytes of a 4-byte pattern
    (p,) = verify(path).problems
    assert p == Problem(Check.SPLATS, "splat length 10 is not a multiple of its 4-byte pattern", str(path), "s")


def test_metadata_that_disagrees_with_the_length(tmp_path: Path) -> None:
    path = tmp_path / "m.irpa"
    index = paramio.ParameterIndex()
    index.add_buffer("w", b"\0" * 12, metadata='TENSORv0:{"type": "Tensor", "dtype": "float32", "shape": [4]}')
    index.create_archive_file(path)
    (p,) = verify(path).problems
    assert (p.check, p.key, p.offset) == (Check.TENSOR_METADATA, "w", None)
    assert p.message == "dtype float32 shape [4] is 16 bytes but the entry has 12"


def test_data_over_the_archive_header(tmp_path: Path) -> None:
    path = tmp_path / "h.irpa"
    create_parameters(path, [ParameterSpec.data("w", 16, b"\x07")])
    _patch(path, 72, "<QQ", 0, path.stat().st_size)  # the storage segment from byte 0
    _patch(path, _tails(path)[0], "<QQ", 0, 64)  # w: the first 64 bytes, inside the header
    report = verify(path)
    (p,) = report.problems
    assert (p.check, p.file, p.key, p.offset) == (Check.STRUCTURE, str(path), "w", 0)
    assert "the archive header" in p.message and p.message.endswith("would corrupt the archive")


def test_strict_alignment(tmp_path: Path) -> None:
    from safetensors.numpy import save_file

    path = tmp_path / "s.safetensors"
    save_file({"a": np.arange(3, dtype=np.float32), "b": np.arange(4, dtype=np.float32)}, str(path))
    loose = verify(path)
    assert loose.ok and Check.ALIGNMENT not in loose.checks and Check.STRUCTURE not in loose.checks
    b = next(e for e in loose.entries if e.key == "b")
    assert b.zero_copy is False and b.alignment is not None and b.alignment < 64
    strict = verify(path, strict_alignment=True)
    below = [e for e in loose.entries if e.offset is not None and e.offset % 64]
    assert [(p.check, p.key, p.offset) for p in strict.problems] == [(Check.ALIGNMENT, e.key, e.offset) for e in below]
    assert strict.problems[-1].message == f"data is aligned to {b.alignment} bytes, less than --alignment=64"


def test_a_file_that_does_not_parse(tmp_path: Path) -> None:
    path = _archive(tmp_path)
    path.write_bytes(path.read_bytes()[:200])
    report = verify(path)
    assert report.format is None and report.checks == (Check.PARSE,)
    assert [p.check for p in report.problems] == [Check.PARSE] and report.problems[0].file == str(path)


def test_an_external_file_outside_the_folder(tmp_path: Path) -> None:
    (tmp_path / "inner").mkdir()
    (tmp_path / "outside.bin").write_bytes(b"x" * 64)
    archive = _external_archive(tmp_path / "inner" / "ext.irpa", b"../outside.bin")
    refused = verify(archive)
    assert [(p.check, p.key) for p in refused.problems] == [(Check.PARSE, "e")]
    allowed = verify(archive, allow_external=[tmp_path])
    assert allowed.ok and allowed.entries[0].kind is EntryKind.EXTERNAL


def test_sharded_sets_from_the_manifest_and_a_shard(tmp_path: Path, paramio_cli) -> None:
    """main: verifying a set's manifest read it as an archive ("IRPA file magic missing")."""
    entries = [ParameterSpec.data(f"w{i}", 256, bytes([i])) for i in range(4)]
    create_parameters(tmp_path / "one.irpa", entries)
    paramio.write_path(tmp_path / "m.irpa", paramio.read_path(tmp_path / "one.irpa").entries, max_shard_size=600)
    for name in ("m.irpa.index.json", "m-00001-of-00002.irpa"):
        report = verify(tmp_path / name)
        assert report.ok and report.format == "irpa" and len(report.entries) == 4, report.problems
    code, out, _ = paramio_cli("verify", str(tmp_path / "m.irpa.index.json"))
    assert code == 0 and out.startswith(f"{tmp_path / 'm.irpa.index.json'}: irpa, 4 entries: OK\n")


def test_the_structure_check_is_the_format_package_s(tmp_path: Path) -> None:
    """`verify` finds a format's structure check in the format's `Format` contract, with no
    branch on the format's name: one added to safetensors' contract runs, on the contents read."""
    from safetensors.numpy import save_file

    path = tmp_path / "s.safetensors"
    save_file({"a": np.arange(4, dtype=np.float32)}, str(path))
    seen: list[FormatContents] = []

    def check_structure(contents: FormatContents) -> list[Problem]:
        seen.append(contents)
        return [Problem(Check.STRUCTURE, "made up", contents.paths[0], "a", 8)]

    register_format(st_format.FORMAT.replace(check_structure=check_structure))
    try:
        report = verify(path)
    finally:
        register_format(st_format.FORMAT)
    assert Check.STRUCTURE in report.checks and [e.key for e in seen[0].entries] == ["a"]
    assert report.problems == (Problem(Check.STRUCTURE, "made up", str(path), "a", 8),)


def test_alignment_must_be_a_power_of_two(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgumentError, match="alignment 48 is not a power of two"):
        verify(_archive(tmp_path), alignment=48)


def test_the_cli_prints_the_report(tmp_path: Path, paramio_cli) -> None:
    path = _archive(tmp_path)
    _patch(path, _tails(path)[1], "<Q", 10)
    code, out, _ = paramio_cli("verify", str(path))
    assert code == 1
    assert out == (
        f"{path}: irpa, 3 entries: 1 problem(s)\n"
        "  problem: entry 's': splat length 10 is not a multiple of its 4-byte pattern\n"
        "  zero-copy at 64: 2 of 2 data entries\n"
    )
