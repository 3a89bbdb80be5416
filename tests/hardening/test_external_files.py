"""Files named inside files: confined to the naming file's folder; only regular files opened.

Every place a file name comes from inside a file (IRPA external entries, a safetensors
``index.json`` weight map, the numbering of a split set) is tried with each kind of bad name:
absolute, ``../``, a NUL byte, a symlink out of the folder, a FIFO, a directory, a device. A
FIFO must never block: an alarm turns a hang into a failure.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import struct
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

import paramio.formats.gguf as pg
from paramio import ParameterIndex
from paramio.cli.main import main
from paramio.core.entry import ParameterEntry
from paramio.core.errors import FormatError, ParamioError, SourceError
from paramio.formats.irpa.layout import ENTRY_HEADER
from paramio.formats.registry import read_path
from paramio.index.provider import Provider
from paramio.sources.file import FileSource
from paramio.sources.memory import MemorySource

SECRET = b"top secret bytes, never to be copied"


class Hung(BaseException):
    """Raised by the alarm: not an OSError, so no code under test can take it for its own."""


@pytest.fixture(autouse=True)
def _never_block() -> Iterator[None]:
    """A FIFO opened blocking would hang the suite: fail after 10 s instead."""

    def boom(signum: int, frame: object) -> None:
        raise Hung("blocked for 10 s")

    old = signal.signal(signal.SIGALRM, boom)
    signal.alarm(10)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def external_archive(path: Path, name: bytes, r_off: int = 0, r_len: int = 4, key: bytes = b"ext") -> Path:
    """An IRPA archive with one EXTERNAL entry naming `name` (IREE never writes these)."""
    table = ENTRY_HEADER.size + 32
    meta_off = 96 + table
    out = bytearray(4096)
    struct.pack_into("<4sHHQQQ", out, 0, b"IRPA", 0, 0, 88, 0, 0)
    struct.pack_into("<Q6Q", out, 32, 1, 96, table, meta_off, len(key) + len(name), 4096, 0)
    struct.pack_into("<QIQQQQQQ", out, 96, table, 3, 0, 0, len(key), 0, 0, 0)
    struct.pack_into("<QQQQ", out, 96 + ENTRY_HEADER.size, len(key), len(name), r_off, r_len)
    out[meta_off : meta_off + len(key) + len(name)] = key + name
    path.write_bytes(bytes(out))
    return path


@pytest.fixture
def layout(tmp_path: Path) -> tuple[Path, Path]:
    """(the archive's folder, a folder beside it holding a secret file)."""
    inside = tmp_path / "model"
    outside = tmp_path / "elsewhere"
    inside.mkdir()
    outside.mkdir()
    (outside / "secret.bin").write_bytes(SECRET)
    (inside / "blob.bin").write_bytes(bytes(range(64)))
    return inside, outside


def _bad_names(inside: Path, outside: Path) -> dict[str, bytes]:
    os.symlink(outside / "secret.bin", inside / "link.bin")
    os.mkfifo(inside / "pipe.bin")
    (inside / "dir.bin").mkdir()
    os.mknod(inside / "zero.bin", 0o600 | stat.S_IFCHR, os.makedev(1, 5))  # /dev/zero's numbers (we run as root)
    return {
        "absolute": os.fsencode(outside / "secret.bin"),
        "dotdot": b"../elsewhere/secret.bin",
        "symlink out": b"link.bin",
        "nul": b"blob.bin\x00../elsewhere/secret.bin",
        "fifo": b"pipe.bin",
        "directory": b"dir.bin",
        "device": b"/dev/zero",
        "device inside": b"zero.bin",
        "device via dotdot": os.fsencode(os.path.relpath("/dev/zero", inside)),
    }


# -- IRPA external entries ---------------------------------------------------------------


def test_external_entries_inside_the_folder_still_read(layout: tuple[Path, Path]) -> None:
    inside, _ = layout
    (inside / "sub").mkdir()
    (inside / "sub" / "w.bin").write_bytes(b"\x01\x02\x03\x04")
    a = external_archive(inside / "a.irpa", b"sub/../blob.bin", 8, 4)
    assert ParameterIndex.open(a)["ext"].read() == bytes([8, 9, 10, 11])
    b = external_archive(inside / "b.irpa", b"sub/w.bin", 0, 4)
    assert ParameterIndex.open(b)["ext"].read() == b"\x01\x02\x03\x04"


@pytest.mark.parametrize(
    "case",
    ["absolute", "dotdot", "symlink out", "nul", "fifo", "directory", "device", "device inside", "device via dotdot"],
)
def test_irpa_external_names_are_refused(layout: tuple[Path, Path], case: str) -> None:
    inside, outside = layout
    name = _bad_names(inside, outside)[case]
    archive = external_archive(inside / "a.irpa", name, 0, 4)
    with pytest.raises(ParamioError) as info:
        ParameterIndex.open(archive)
    err = info.value
    assert err.path == str(archive) and err.key == "ext", str(err)
    assert isinstance(err, (SourceError, FormatError))
    expected = {
        "absolute": "lies outside",
        "dotdot": "lies outside",
        "symlink out": "resolves to " + str(outside / "secret.bin"),
        "nul": "NUL byte",
        "fifo": "not a regular file (a FIFO)",
        "directory": "not a regular file (a directory)",
        "device": "lies outside",
        "device inside": "not a regular file (a character device)",
        "device via dotdot": "lies outside",
    }[case]
    assert expected in str(err)


@pytest.mark.parametrize("case", ["fifo", "directory", "device", "device inside"])
def test_special_files_are_refused_even_when_allowed(layout: tuple[Path, Path], case: str) -> None:
    inside, outside = layout
    name = _bad_names(inside, outside)[case]
    archive = external_archive(inside / "a.irpa", name, 0, 4)
    with pytest.raises(SourceError, match=r"not a regular file \(a (FIFO|directory|character device)\)"):
        ParameterIndex.open(archive, allow_external=True)


def test_allow_external_opts_in_per_folder(layout: tuple[Path, Path]) -> None:
    inside, outside = layout
    archive = external_archive(inside / "a.irpa", b"../elsewhere/secret.bin", 4, 6)
    assert ParameterIndex.open(archive, allow_external=[outside])["ext"].read() == SECRET[4:10]
    assert ParameterIndex.open(archive, allow_external=str(outside))["ext"].read() == SECRET[4:10]
    assert ParameterIndex.open(archive, allow_external=True)["ext"].read() == SECRET[4:10]
    with pytest.raises(SourceError, match="lies outside"):
        ParameterIndex.open(archive, allow_external=[inside / "sub-that-is-not-it"])
    assert read_path(archive, allow_external=[outside]).entries[0].read() == SECRET[4:10]
    p = Provider.from_flags([f"m={archive}"], allow_external=[outside])
    assert p["m::ext"].read() == SECRET[4:10]
    with pytest.raises(SourceError):
        Provider.from_flags([f"m={archive}"])


def test_cli_refuses_and_allow_external_opts_in(layout: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    inside, outside = layout
    archive = external_archive(inside / "a.irpa", os.fsencode(outside / "secret.bin"), 0, len(SECRET))
    out = inside / "copy.safetensors"
    for argv in (
        ["dump", f"--parameters={archive}"],
        ["dump", f"--parameters={archive}", "--json"],
        ["convert", f"--parameters={archive}", f"--output={out}"],
        ["which", f"--parameters={archive}", "ext"],
        ["run", f"--module={inside / 'absent.vmfb'}", "--function=f", f"--parameters={archive}"],
        ["mlir", "declare", f"--parameters={archive}"],
    ):
        assert main(argv) == 1, argv
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "lies outside" in err and str(archive) in err and "'ext'" in err, err
        assert "Traceback" not in err
    assert not out.exists()
    assert main(["verify", str(archive)]) == 1
    assert "lies outside" in capsys.readouterr().out
    # Opting in, repeatable
    allow = [f"--allow-external={inside}", f"--allow-external={outside}"]
    assert main(["verify", str(archive), *allow]) == 0
    capsys.readouterr()
    assert main(["convert", f"--parameters={archive}", f"--output={out}", *allow]) == 0
    assert ParameterIndex.open(out)["ext"].read() == SECRET
    assert main(["which", f"--parameters={archive}", "ext", *allow]) == 0
    assert main(["mlir", "declare", f"--parameters={archive}", *allow]) == 0
    assert main(["dump", "--allow-external=/no/such/folder", f"--parameters={archive}"]) == 2


def test_dump_shows_where_external_bytes_come_from(
    layout: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    inside, outside = layout
    os.symlink("blob.bin", inside / "alias.bin")
    archive = external_archive(inside / "a.irpa", b"alias.bin", 8, 4)
    assert main(["dump", f"--parameters={archive}"]) == 0
    text = capsys.readouterr().out
    lines = text.split("\n")
    # IREE's row format for the row itself (offsets in the external file), then the source line
    assert lines[5] == "               8 |               12 |                4 | `ext`"
    assert lines[6] == f"// `ext` bytes from `{inside / 'blob.bin'}`"
    assert text.endswith("`\n\n")
    assert main(["dump", f"--parameters={archive}", "--json"]) == 0
    rec = json.loads(capsys.readouterr().out)["entries"][0]
    assert rec["kind"] == "external" and rec["external_file"] == str(inside / "blob.bin")
    assert rec["offset"] == 8 and rec["length"] == 4


@pytest.mark.interop
def test_iree_cannot_read_external_entries_so_no_iree_text_is_changed(
    layout: tuple[Path, Path], iree_tool: Callable[[str], str]
) -> None:
    """The oracle for the dump format above: IREE's tool refuses the archive outright."""
    import subprocess

    tool = iree_tool("iree-dump-parameters")
    inside, _ = layout
    archive = external_archive(inside / "a.irpa", b"blob.bin", 8, 4)
    run = subprocess.run([tool, f"--parameters={archive}"], capture_output=True, text=True, timeout=60)
    assert run.returncode != 0 and "parser does not support entry type 3" in run.stdout + run.stderr


def test_dump_text_of_ordinary_archives_is_unchanged(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    index = ParameterIndex()
    index.add_buffer("w", np.arange(4, dtype=np.float32))
    index.create_archive_file(tmp_path / "w.irpa")
    assert main(["dump", f"--parameters={tmp_path / 'w.irpa'}"]) == 0
    out = capsys.readouterr().out
    assert "bytes from" not in out and out == ParameterIndex.open(tmp_path / "w.irpa").dump()
    assert main(["dump", f"--parameters={tmp_path / 'w.irpa'}", "--json"]) == 0
    assert "external_file" not in json.loads(capsys.readouterr().out)["entries"][0]


# -- every file paramio opens: regular files only --------------------------------------


@pytest.mark.parametrize("suffix", [".irpa", ".safetensors", ".gguf", ".safetensors.index.json", ""])
def test_a_fifo_given_directly_never_blocks(tmp_path: Path, suffix: str, capsys: pytest.CaptureFixture[str]) -> None:
    fifo = tmp_path / f"m{suffix}"
    os.mkfifo(fifo)
    with pytest.raises(SourceError, match=r"not a regular file \(a FIFO\)"):
        ParameterIndex.open(fifo)
    assert main(["dump", f"--parameters={fifo}"]) == 1
    assert "not a regular file (a FIFO)" in capsys.readouterr().err


def test_file_source_refuses_special_files(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "p")
    for path, what in (
        (tmp_path / "p", "a FIFO"),
        (tmp_path, "a directory"),
        (Path("/dev/null"), "a character device"),
    ):
        with pytest.raises(SourceError, match=rf"not a regular file \({what}\)") as info:
            FileSource(path)
        assert info.value.path == str(path)
    with pytest.raises(SourceError, match="NUL byte"):
        FileSource("a\0b")


# -- safetensors index.json shard names ------------------------------------------------


def _st_set(folder: Path, names: list[str]) -> Path:
    st_numpy = pytest.importorskip("safetensors.numpy")
    wmap = {}
    for i, name in enumerate(names):
        if not (folder / name).exists() and not (folder / name).is_symlink():
            st_numpy.save_file({f"t{i}": np.full(4, i, np.float32)}, str(folder / name))
        wmap[f"t{i}"] = name
    index = folder / "model.safetensors.index.json"
    index.write_text(json.dumps({"metadata": {}, "weight_map": wmap}))
    return index


def test_safetensors_shard_names_are_confined(layout: tuple[Path, Path]) -> None:
    st_numpy = pytest.importorskip("safetensors.numpy")
    inside, outside = layout
    st_numpy.save_file({"t1": np.ones(4, np.float32)}, str(outside / "real.safetensors"))
    os.symlink(outside / "real.safetensors", inside / "model-00002-of-00002.safetensors")
    index = _st_set(inside, ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"])
    with pytest.raises(SourceError, match="member 'model-00002-of-00002.safetensors' .*lies outside") as info:
        ParameterIndex.open(index)
    assert info.value.path == str(index) and info.value.key == "model-00002-of-00002.safetensors"
    # from a shard (the index is found beside it): same refusal
    with pytest.raises(SourceError, match="lies outside"):
        ParameterIndex.open(inside / "model-00001-of-00002.safetensors")
    got = ParameterIndex.open(index, allow_external=[outside])
    assert got["t1"].to_numpy().tolist() == [1, 1, 1, 1]


@pytest.mark.parametrize("bad", ["../elsewhere/x.safetensors", "/etc/passwd", "a\0b.safetensors", ".."])
def test_safetensors_shard_names_with_paths_are_refused(layout: tuple[Path, Path], bad: str) -> None:
    inside, _ = layout
    index = inside / "model.safetensors.index.json"
    index.write_text(json.dumps({"metadata": {}, "weight_map": {"t": bad}}))
    with pytest.raises(FormatError, match="must be a file name next to the manifest") as info:
        ParameterIndex.open(index)
    assert info.value.path == str(index)


def _special(path: Path, kind: str) -> None:
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "directory":
        path.mkdir()
    else:  # a character device inside the folder (/dev/zero's numbers; we run as root)
        os.mknod(path, 0o600 | stat.S_IFCHR, os.makedev(1, 5))


@pytest.mark.parametrize("kind", ["fifo", "directory", "device"])
def test_safetensors_shards_that_are_special_files_are_refused(layout: tuple[Path, Path], kind: str) -> None:
    pytest.importorskip("safetensors.numpy")
    inside, _ = layout
    _special(inside / "model-00002-of-00002.safetensors", kind)
    index = _st_set(inside, ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"])
    with pytest.raises(SourceError, match=r"not a regular file \(a (FIFO|directory|character device)\)"):
        ParameterIndex.open(index)


def test_safetensors_index_that_is_a_fifo_never_blocks(layout: tuple[Path, Path]) -> None:
    st_numpy = pytest.importorskip("safetensors.numpy")
    inside, _ = layout
    st_numpy.save_file({"t": np.ones(4, np.float32)}, str(inside / "model-00001-of-00002.safetensors"))
    os.mkfifo(inside / "model.safetensors.index.json")
    with pytest.raises(SourceError, match="FIFO"):
        ParameterIndex.open(inside / "model-00001-of-00002.safetensors")


def test_safetensors_sibling_shards_without_index_are_confined(layout: tuple[Path, Path]) -> None:
    st_numpy = pytest.importorskip("safetensors.numpy")
    inside, outside = layout
    st_numpy.save_file({"a": np.ones(4, np.float32)}, str(inside / "m-00001-of-00002.safetensors"))
    st_numpy.save_file({"b": np.ones(4, np.float32)}, str(outside / "b.safetensors"))
    os.symlink(outside / "b.safetensors", inside / "m-00002-of-00002.safetensors")
    with pytest.raises(SourceError, match="lies outside"):
        ParameterIndex.open(inside / "m-00001-of-00002.safetensors")
    assert ParameterIndex.open(inside / "m-00001-of-00002.safetensors", allow_external=[outside]).keys() == ["a", "b"]


def test_a_symlinked_index_trusts_the_folder_it_really_lives_in(tmp_path: Path) -> None:
    """A Hugging Face cache: ``snapshots/REV/*`` are symlinks into ``blobs/``."""
    st_numpy = pytest.importorskip("safetensors.numpy")
    blobs, snap = tmp_path / "blobs", tmp_path / "snapshots" / "rev"
    blobs.mkdir()
    snap.mkdir(parents=True)
    wmap = {}
    for i in (1, 2):
        name = f"model-0000{i}-of-00002.safetensors"
        st_numpy.save_file({f"t{i}": np.full(4, i, np.float32)}, str(blobs / f"sha{i}"))
        os.symlink(f"../../blobs/sha{i}", snap / name)
        wmap[f"t{i}"] = name
    (blobs / "shaidx").write_text(json.dumps({"metadata": {}, "weight_map": wmap}))
    os.symlink("../../blobs/shaidx", snap / "model.safetensors.index.json")
    index = ParameterIndex.open(snap / "model.safetensors.index.json")
    assert index.keys() == ["t1", "t2"] and index["t2"].to_numpy().tolist() == [2, 2, 2, 2]
    names = ["model.safetensors.index.json", "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]
    assert index.paths == [str(snap / n) for n in names]  # the folder as the user named it


# -- GGUF split sets -------------------------------------------------------------------


def _gguf_set(folder: Path) -> list[str]:
    entries = [ParameterEntry.data(f"t{i}", MemorySource(bytes([i]) * 32), 0, 32) for i in range(3)]
    return [str(p) for p in pg.write_gguf(folder / "m.gguf", entries, split_max_tensors=1, durable=False)]


@pytest.mark.parametrize("kind", ["symlink out", "fifo", "directory", "device", "device inside"])
def test_gguf_split_siblings_are_confined(layout: tuple[Path, Path], kind: str) -> None:
    inside, outside = layout
    paths = _gguf_set(inside)
    second = Path(paths[1])
    if kind == "symlink out":
        os.replace(second, outside / second.name)
        os.symlink(outside / second.name, second)
    else:
        second.unlink()
        if kind == "device":
            os.symlink("/dev/zero", second)
        else:
            _special(second, {"device inside": "device"}.get(kind, kind))
    with pytest.raises(SourceError) as info:
        ParameterIndex.open(paths[0])
    expected = {
        "symlink out": "lies outside",
        "fifo": "FIFO",
        "directory": "directory",
        "device": "lies outside",
        "device inside": "not a regular file (a character device)",
    }[kind]
    assert expected in str(info.value)
    if kind == "symlink out":
        assert ParameterIndex.open(paths[0], allow_external=[outside]).keys() == ["t0", "t1", "t2"]


def test_read_archive_confines_too(layout: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """`read_archive` on a file confines to its folder; on a source without a path, to the
    working directory."""
    from paramio.formats.irpa import read_archive

    inside, outside = layout
    archive = external_archive(inside / "a.irpa", os.fsencode(outside / "secret.bin"), 0, 4)
    with pytest.raises(SourceError, match="lies outside"):
        read_archive(FileSource(archive))
    monkeypatch.chdir(inside)
    with pytest.raises(SourceError, match="lies outside"):
        read_archive(MemorySource(archive.read_bytes(), name="mem.irpa"))
    monkeypatch.chdir(outside)
    assert read_archive(MemorySource(archive.read_bytes(), name="mem.irpa"))[0].read() == SECRET[:4]


# -- IRPA sharded sets and tensor-parallel sets (manifests naming members) --------------


def _irpa_set(folder: Path) -> Path:
    from paramio.formats.registry import write_path

    entries = [ParameterEntry.data(f"t{i}", MemorySource(bytes([i]) * 64), 0, 64) for i in range(3)]
    write_path(folder / "m.irpa.index.json", entries, max_shard_size=64)
    return folder / "m.irpa.index.json"


@pytest.mark.parametrize("kind", ["symlink out", "fifo", "directory", "device"])
def test_irpa_set_members_are_confined(layout: tuple[Path, Path], kind: str) -> None:
    inside, outside = layout
    manifest = _irpa_set(inside)
    second = inside / "m-00002-of-00003.irpa"
    if kind == "symlink out":
        os.replace(second, outside / second.name)
        os.symlink(outside / second.name, second)
    else:
        second.unlink()
        _special(second, kind)
    expected = {"symlink out": "lies outside", "fifo": "FIFO", "directory": "directory", "device": "character device"}
    for opened in (manifest, inside / "m-00001-of-00003.irpa"):
        with pytest.raises(SourceError, match=expected[kind]):
            ParameterIndex.open(opened)
    if kind == "symlink out":
        assert ParameterIndex.open(manifest, allow_external=[outside]).keys() == ["t0", "t1", "t2"]


def test_manifests_that_are_fifos_never_block(layout: tuple[Path, Path]) -> None:
    inside, _ = layout
    for name in ("m.irpa.index.json", "m.tp.json"):
        os.mkfifo(inside / name)
        with pytest.raises(SourceError, match="FIFO"):
            ParameterIndex.open(inside / name)


def test_tensor_parallel_members_are_confined(layout: tuple[Path, Path]) -> None:
    from paramio.sharding.api import shard

    inside, outside = layout
    index = ParameterIndex()
    index.add_array("w", np.arange(8, dtype=np.float32).reshape(2, 4))
    index.create_archive_file(inside / "full.irpa")
    result = shard(str(inside / "full.irpa"), inside / "tp", tp=2, split={"w": 0}, durable=False)
    manifest = Path(str(getattr(result, "manifest", inside / "tp" / "model.tp.json")))
    member = sorted(p for p in manifest.parent.iterdir() if p.suffix == ".irpa")[1]
    os.replace(member, outside / member.name)
    os.symlink(outside / member.name, member)
    with pytest.raises(SourceError, match="lies outside"):
        ParameterIndex.open(manifest)
    got = ParameterIndex.open(manifest, allow_external=[outside])
    assert got["w"].to_numpy().tolist() == [[0, 1, 2, 3], [4, 5, 6, 7]]
