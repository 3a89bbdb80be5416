"""Outputs never turn what a path names into something else (issue 18, item 1).

The rules (`paramio.formats.targets`): a regular file is replaced atomically keeping its mode and
owner; a symlink's target is written and the link kept; ``-``, a FIFO or a character device is
streamed into; a directory, a socket or a block device is refused before any work. Every writer
goes through `AtomicOutput`, so each rule is checked through several writers: the three format
writers (``paramio.write_path``), ``create_archive_file``, and the CLI's create, convert and
dump --extract.

As root, a test that lets old code loose on /dev/null or /dev/stdout would replace the machine's
own node; those tests run only where the rules exist (`_rules_in_place`). Device-node tests
otherwise use private nodes made with mknod in tmp_path.
"""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

import paramio
from paramio.core.errors import InvalidArgumentError, WriteError
from paramio.index.index import ParameterIndex

FORMATS = {"irpa": ".irpa", "safetensors": ".safetensors", "gguf": ".gguf"}
SRC = str(Path(paramio.__file__).resolve().parents[1])


def _index() -> ParameterIndex:
    index = ParameterIndex()
    index.add_array("w", np.arange(1000, dtype=np.float32))
    index.add_array("b", np.full((3, 5), 7, dtype=np.int16))
    return index


def _write(path: str | os.PathLike[str], fmt: str) -> None:
    paramio.write_path(path, _index().values(), format=fmt, on_loss="ignore")


def _reference(tmp_path: Path, fmt: str) -> bytes:
    """The bytes `_write` gives a new regular file."""
    ref = tmp_path / f"reference{FORMATS[fmt]}"
    _write(ref, fmt)
    return ref.read_bytes()


def _no_temp_files(folder: Path) -> None:
    assert not [p.name for p in folder.iterdir() if p.name.endswith(".tmp")]


def _rules_in_place() -> None:
    try:
        import paramio.formats.targets  # noqa: F401
    except ImportError:  # pragma: no cover - old code
        pytest.fail("these rules are missing: running this test would replace a device node of the machine")


def _mknod(path: Path, kind: int, major: int, minor: int) -> None:
    try:
        os.mknod(path, kind | 0o666, os.makedev(major, minor))
    except (PermissionError, OSError) as exc:
        pytest.skip(f"cannot make a device node here: {exc}")


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}


def _cli(*args: str, **kw: object) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(  # type: ignore[call-overload,no-any-return]
        [sys.executable, "-m", "paramio", *args], env=_env(), capture_output=True, timeout=120, **kw
    )


# -- regular files and symlinks ---------------------------------------------------------------


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_replacing_a_regular_file_keeps_its_mode_and_owner(tmp_path: Path, fmt: str) -> None:
    expected = _reference(tmp_path, fmt)
    out = tmp_path / f"out{FORMATS[fmt]}"
    out.write_bytes(b"old")
    os.chmod(out, 0o640)
    owner = (4321, 8765) if os.geteuid() == 0 else (os.getuid(), os.getgid())
    os.chown(out, *owner)
    _write(out, fmt)
    st = out.stat()
    assert out.read_bytes() == expected
    assert stat.S_IMODE(st.st_mode) == 0o640
    assert (st.st_uid, st.st_gid) == owner
    _no_temp_files(tmp_path)


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_a_symlink_chain_is_followed_and_kept(tmp_path: Path, fmt: str) -> None:
    expected = _reference(tmp_path, fmt)
    (tmp_path / "real").mkdir()
    target = tmp_path / "real" / f"model{FORMATS[fmt]}"
    target.write_bytes(b"old")
    os.chmod(target, 0o600)
    middle = tmp_path / f"middle{FORMATS[fmt]}"
    middle.symlink_to(target)
    link = tmp_path / f"link{FORMATS[fmt]}"
    link.symlink_to(middle.name)  # relative, as `ln -s` makes them
    _write(link, fmt)
    assert link.is_symlink() and os.readlink(link) == middle.name
    assert middle.is_symlink() and os.readlink(middle) == str(target)
    assert target.read_bytes() == expected and stat.S_IMODE(target.stat().st_mode) == 0o600
    _no_temp_files(tmp_path)
    _no_temp_files(tmp_path / "real")


def test_a_dangling_symlink_creates_its_target(tmp_path: Path) -> None:
    expected = _reference(tmp_path, "irpa")
    (tmp_path / "store").mkdir()
    link = tmp_path / "link.irpa"
    link.symlink_to(tmp_path / "store" / "new.irpa")
    _write(link, "irpa")
    assert link.is_symlink()
    assert (tmp_path / "store" / "new.irpa").read_bytes() == expected


def test_cli_outputs_write_through_symlinks(tmp_path: Path, paramio_cli) -> None:
    src = tmp_path / "src.irpa"
    _write(src, "irpa")
    targets = {}
    for name in ("created.irpa", "converted.safetensors", "extracted.bin"):
        targets[name] = tmp_path / ("real-" + name)
        targets[name].write_bytes(b"old")
        (tmp_path / name).symlink_to(targets[name].name)
    assert paramio_cli("create", "--data=x=4xf32=2", f"--output={tmp_path / 'created.irpa'}", "--quiet")[0] == 0
    assert paramio_cli("convert", f"--parameters={src}", f"--output={tmp_path / 'converted.safetensors'}")[0] == 0
    assert paramio_cli("dump", f"--parameters={src}", f"--extract=w={tmp_path / 'extracted.bin'}")[0] == 0
    for name in targets:
        assert (tmp_path / name).is_symlink(), name
    assert (
        paramio.ParameterIndex.open(str(targets["created.irpa"]))["x"].to_numpy().tobytes()
        == np.full(4, 2, np.float32).tobytes()
    )
    assert paramio.ParameterIndex.open(str(targets["converted.safetensors"])).keys() == ["w", "b"]
    assert targets["extracted.bin"].read_bytes() == np.arange(1000, dtype=np.float32).tobytes()


def test_an_overlay_behind_a_symlink_stays_behind_it(tmp_path: Path) -> None:
    target = tmp_path / "store" / "overlay.irpa"
    target.parent.mkdir()
    link = tmp_path / "overlay.irpa"
    link.symlink_to(target)  # dangling until the first key is added
    overlay = paramio.Overlay(link)
    base = _index()
    overlay.add([(base["b"], memoryview(np.full(15, 9, np.int16).tobytes()))])
    overlay.add([(base["w"], memoryview(np.zeros(1000, np.float32).tobytes()))])  # a rewrite of the archive
    assert link.is_symlink() and target.is_file()
    assert paramio.ParameterIndex.open(str(target))["b"].to_numpy().tobytes() == np.full(15, 9, np.int16).tobytes()


def test_create_archive_file_writes_through_a_symlink(tmp_path: Path) -> None:
    target = tmp_path / "target.irpa"
    link = tmp_path / "link.irpa"
    link.symlink_to(target.name)
    reopened = _index().create_archive_file(link)
    assert link.is_symlink() and target.is_file()
    assert reopened["b"].to_numpy().tobytes() == np.full(15, 7, np.int16).tobytes()


# -- refused: directories, sockets, block devices, broken links ------------------------------


def _refused_paths(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    """name -> (path, the words the error must say)."""
    d = tmp_path / "dir.irpa"
    d.mkdir()
    dlink = tmp_path / "dirlink.irpa"
    dlink.symlink_to(d.name)
    sock_path = tmp_path / "sock.irpa"
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(sock_path))
    sock.close()
    loop = tmp_path / "loop.irpa"
    loop.symlink_to("loop.irpa")
    nowhere = tmp_path / "nowhere.irpa"
    nowhere.symlink_to(tmp_path / "missing-folder" / "x.irpa")
    found = {
        "directory": (d, "is a directory"),
        "symlink to a directory": (dlink, "is a directory"),
        "socket": (sock_path, "is a socket"),
        "symlink loop": (loop, "symlink loop"),
        "dangling symlink into a missing folder": (nowhere, "folder does not exist"),
    }
    blk = tmp_path / "blk.irpa"
    try:
        os.mknod(blk, stat.S_IFBLK | 0o600, os.makedev(7, 250))  # a loop device number, never opened
        found["block device"] = (blk, "is a block device")
    except (PermissionError, OSError):
        pass
    return found


def _kind_unchanged(path: Path, before: os.stat_result) -> None:
    after = os.lstat(path)
    assert stat.S_IFMT(after.st_mode) == stat.S_IFMT(before.st_mode) and after.st_ino == before.st_ino


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_writers_refuse_what_is_not_a_file_or_stream(tmp_path: Path, fmt: str) -> None:
    for what, (path, words) in _refused_paths(tmp_path).items():
        before = os.lstat(path)
        with pytest.raises(WriteError, match=words) as info:
            _write(path, fmt)
        assert info.value.path == str(path), what
        _kind_unchanged(path, before)
    _no_temp_files(tmp_path)


def test_cli_refuses_what_is_not_a_file_or_stream(tmp_path: Path, paramio_cli) -> None:
    src = tmp_path / "src.irpa"
    _write(src, "irpa")
    for what, (path, words) in _refused_paths(tmp_path).items():
        before = os.lstat(path)
        for argv in (
            ("create", "--data=x=4xf32=2", f"--output={path}"),
            ("convert", f"--parameters={src}", f"--output={path}", "--format=safetensors"),
            ("dump", f"--parameters={src}", f"--extract=w={path}"),
        ):
            code, _, err = paramio_cli(*argv)
            assert code == 1 and words in err and err.count("\n") == 1, (what, argv, err)
            _kind_unchanged(path, before)
    _no_temp_files(tmp_path)


def test_create_archive_file_refuses_a_stream(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.irpa"
    os.mkfifo(fifo)
    with pytest.raises(InvalidArgumentError, match="cannot be a stream"):
        _index().create_archive_file(fifo)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


# -- streamed: FIFOs, character devices, `-`, /dev/stdout, a tty -----------------------------


class _FifoReader:
    """Reads everything written to a FIFO, in a thread (a writer's open blocks until then)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.data = b""
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        with open(self.path, "rb") as f:
            self.data = f.read()

    def result(self) -> bytes:
        self.thread.join(20)
        if self.thread.is_alive():  # nobody opened the FIFO for writing: release the reader
            if stat.S_ISFIFO(os.lstat(self.path).st_mode):
                os.close(os.open(self.path, os.O_WRONLY | os.O_NONBLOCK))
            self.thread.join(5)
            pytest.fail("nothing was written into the FIFO")
        return self.data


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_a_fifo_receives_exactly_the_file_bytes(tmp_path: Path, fmt: str) -> None:
    expected = _reference(tmp_path, fmt)
    fifo = tmp_path / f"pipe{FORMATS[fmt]}"
    os.mkfifo(fifo)
    link = tmp_path / f"link{FORMATS[fmt]}"
    link.symlink_to(fifo.name)  # and through a symlink: the FIFO is streamed into, the link kept
    for path in (fifo, link):
        reader = _FifoReader(fifo)
        _write(path, fmt)
        assert reader.result() == expected
        assert stat.S_ISFIFO(os.lstat(fifo).st_mode) and link.is_symlink()
    _no_temp_files(tmp_path)


def test_a_character_device_is_written_into_not_replaced(tmp_path: Path, paramio_cli) -> None:
    null = tmp_path / "null"
    _mknod(null, stat.S_IFCHR, 1, 3)  # the kernel's null device, under a private name
    src = tmp_path / "src.irpa"
    _write(src, "irpa")
    before = os.lstat(null)
    for fmt in FORMATS:
        _write(null, fmt)
        _kind_unchanged(null, before)
    assert paramio_cli("convert", f"--parameters={src}", f"--output={null}", "--format=gguf")[0] == 0
    assert paramio_cli("dump", f"--parameters={src}", f"--extract=w={null}")[0] == 0
    assert paramio_cli("create", "--data=x=4xf32=2", f"--output={null}")[0] == 0
    _kind_unchanged(null, before)
    _no_temp_files(tmp_path)


def test_the_real_dev_null(tmp_path: Path, paramio_cli) -> None:
    _rules_in_place()
    src = tmp_path / "src.irpa"
    _write(src, "irpa")
    before = os.lstat("/dev/null")
    assert paramio_cli("convert", f"--parameters={src}", "--output=/dev/null", "--format=safetensors")[0] == 0
    assert paramio_cli("convert", f"--parameters={src}", "--output=/dev/null")[0] == 0  # IRPA, as IREE's tool
    assert paramio_cli("dump", f"--parameters={src}", "--extract=w=/dev/null", "--extract=b=/dev/null")[0] == 0
    _write("/dev/null", "gguf")
    _kind_unchanged(Path("/dev/null"), before)
    assert not [n for n in os.listdir("/dev") if n.startswith(".null.")]


def test_dash_streams_to_stdout_and_only_a_finished_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfdbinary: pytest.CaptureFixture[bytes]
) -> None:
    from paramio.formats.output import AtomicOutput

    monkeypatch.chdir(tmp_path)  # so that old code's file named "-" lands here
    with pytest.raises(RuntimeError), AtomicOutput("-") as out:
        out.pwrite(b"half an archive", 0)
        raise RuntimeError("the writer failed")
    assert capfdbinary.readouterr().out == b""
    (tmp_path / "ref").mkdir()
    expected = _reference(tmp_path / "ref", "gguf")
    _write("-", "gguf")
    assert capfdbinary.readouterr().out == expected
    assert os.listdir(tmp_path) == ["ref"]


def test_streaming_spools_in_an_unnamed_temporary_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import tempfile

    spool = tmp_path / "spool"
    spool.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(spool))
    fifo = tmp_path / "pipe.irpa"
    os.mkfifo(fifo)
    reader = _FifoReader(fifo)
    _write(fifo, "irpa")
    assert len(reader.result()) > 4096
    assert list(spool.iterdir()) == []


def test_dash_is_stdout_for_every_cli_output(tmp_path: Path, capfdbinary: pytest.CaptureFixture[bytes]) -> None:
    _rules_in_place()
    from paramio.cli.main import main

    src = tmp_path / "src.irpa"
    _write(src, "irpa")
    as_irpa = paramio_cli_file(tmp_path, src, "again.irpa")
    capfdbinary.readouterr()
    assert main(["convert", f"--parameters={src}", "--output=-", "--format=safetensors"]) == 0
    from safetensors.numpy import load

    loaded = load(capfdbinary.readouterr().out)  # the peer library reads what came out of stdout
    assert loaded["w"].tolist() == np.arange(1000, dtype=np.float32).tolist()
    assert main(["convert", f"--parameters={src}", "--output=-"]) == 0  # no extension: IRPA, as IREE's tool
    assert capfdbinary.readouterr().out == as_irpa
    assert main(["create", "--data=x=4xf32=2", "--output=-"]) == 0
    (tmp_path / "c.irpa").write_bytes(capfdbinary.readouterr().out)
    assert paramio.ParameterIndex.open(str(tmp_path / "c.irpa")).keys() == ["x"]
    assert main(["dump", f"--parameters={src}", "--extract=b=-", "--extract=w=-"]) == 0
    dumped = capfdbinary.readouterr()
    # the two parameters' bytes, in flag order; the listing went to stderr
    assert dumped.out == np.full(15, 7, dtype=np.int16).tobytes() + np.arange(1000, dtype=np.float32).tobytes()
    assert b"Extracting parameter `b`" in dumped.err and b"Parameter scope" in dumped.err


def paramio_cli_file(tmp_path: Path, src: Path, name: str) -> bytes:
    """What ``paramio convert`` writes for `src` into a regular file."""
    from paramio.cli.main import main

    assert main(["convert", f"--parameters={src}", f"--output={tmp_path / name}", "--quiet"]) == 0
    return (tmp_path / name).read_bytes()


def test_dev_stdout_as_a_pipe_is_streamed_and_kept(tmp_path: Path) -> None:
    _rules_in_place()
    src = tmp_path / "src.irpa"
    _write(src, "irpa")
    before = os.lstat("/dev/stdout")
    run = _cli("convert", f"--parameters={src}", "--output=/dev/stdout", "--format=irpa", "--quiet")
    assert run.returncode == 0, run.stderr
    assert run.stdout == src.read_bytes()
    _kind_unchanged(Path("/dev/stdout"), before)


def test_dev_stdout_as_a_tty(tmp_path: Path) -> None:
    _rules_in_place()
    import pty
    import tty

    src = tmp_path / "src.irpa"
    _write(src, "irpa")
    master, slave = pty.openpty()
    tty.setraw(slave)  # bytes pass unchanged (no \n -> \r\n)
    proc = subprocess.Popen(
        [sys.executable, "-m", "paramio", "dump", f"--parameters={src}", "--extract=w=/dev/stdout", "--json"],
        env=_env(),
        stdout=slave,
        stderr=subprocess.PIPE,
    )
    os.close(slave)
    got = b""
    while True:
        try:
            chunk = os.read(master, 1 << 16)
        except OSError:  # EIO: the child closed its end
            break
        if not chunk:
            break
        got += chunk
    os.close(master)
    err = proc.stderr.read() if proc.stderr else b""
    assert proc.wait(60) == 0, err
    assert got == np.arange(1000, dtype=np.float32).tobytes()  # the bytes own stdout...
    assert err.startswith(b"{")  # ...and the --json document went to stderr


def test_sets_of_files_refuse_a_stream(tmp_path: Path) -> None:
    fifo = tmp_path / "model.safetensors.index.json"
    os.mkfifo(fifo)
    null = tmp_path / "null.gguf"
    os.mkfifo(null)
    with pytest.raises(WriteError, match="cannot be streamed"):
        paramio.write_path(fifo, _index().values(), max_shard_size=100)
    with pytest.raises(WriteError, match="cannot be streamed"):
        paramio.write_path(null, _index().values(), split_max_tensors=1)
    (tmp_path / "m.safetensors.index.json").symlink_to("model.safetensors.index.json")  # the FIFO again
    with pytest.raises(WriteError, match="cannot be streamed"):  # refused, not read (which would block)
        paramio.write_path(tmp_path / "m.safetensors", _index().values(), max_shard_size=100)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "m.safetensors.index.json",
        "model.safetensors.index.json",
        "null.gguf",
    ]


def test_a_device_that_refuses_bytes_is_an_error_not_a_file(tmp_path: Path) -> None:
    _rules_in_place()
    before = os.lstat("/dev/full")
    with pytest.raises(WriteError, match="No space left on device") as info:
        _write("/dev/full", "safetensors")
    assert info.value.path == "/dev/full"
    _kind_unchanged(Path("/dev/full"), before)


def test_descriptor_paths_name_this_process_descriptors(tmp_path: Path) -> None:
    _rules_in_place()
    expected = _reference(tmp_path, "irpa")
    sink = tmp_path / "sink.bin"
    with open(sink, "wb") as f:
        f.write(b"head:")
        f.flush()
        _write(f"/dev/fd/{f.fileno()}", "irpa")  # written at the descriptor's position, after "head:"
    assert sink.read_bytes() == b"head:" + expected
    with open(sink, "rb") as f, pytest.raises(WriteError, match="open for reading only"):
        _write(f"/proc/self/fd/{f.fileno()}", "irpa")
    r, w = os.pipe()
    os.close(w)
    with pytest.raises(WriteError, match=f"descriptor {w} is not open"):
        _write(f"/dev/fd/{w}", "irpa")
    os.close(r)


def test_run_outputs_appended_to_a_stream_are_written_not_read(tmp_path: Path) -> None:
    from paramio.iree.results import _write_file

    fifo = tmp_path / "results.bin"
    os.mkfifo(fifo)
    reader = _FifoReader(fifo)
    # `+fifo`: there is nothing to read back first (reading would wait forever for a writer)
    writer = threading.Thread(target=_write_file, args=(str(fifo), [b"first", b"second"]), kwargs={"append": True})
    writer.daemon = True
    writer.start()
    writer.join(20)
    assert not writer.is_alive(), "the append read from the FIFO instead of writing to it"
    assert reader.result() == b"firstsecond"


# -- names at the limit (issue 24, item 18) ------------------------------------------------------


def _long_names(suffix: str) -> list[str]:
    """Names of 241 (fitted before) to 255 bytes (NAME_MAX), ASCII and with 2-byte characters."""
    names = ["n" * (length - len(suffix)) + suffix for length in (241, 242, 250, 255)]
    names.append("é" * ((255 - len(suffix)) // 2) + "x" * ((255 - len(suffix)) % 2) + suffix)
    return names


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_an_output_name_up_to_name_max_is_written(tmp_path: Path, fmt: str) -> None:
    """The temporary file's name used to be the output's plus 14 bytes: 242-255 byte names failed."""
    expected = _reference(tmp_path, fmt)
    for name in _long_names(FORMATS[fmt]):
        assert len(os.fsencode(name)) <= 255
        _write(tmp_path / name, fmt)
        assert (tmp_path / name).read_bytes() == expected, len(os.fsencode(name))
    _no_temp_files(tmp_path)


def test_cli_and_archive_writers_take_a_name_of_name_max(tmp_path: Path) -> None:
    source = tmp_path / "s.irpa"
    _index().create_archive_file(source)
    name = "a" * (255 - len(".safetensors")) + ".safetensors"
    r = _cli("convert", str(source), f"--output={tmp_path / name}")
    assert r.returncode == 0, r.stderr
    assert paramio.ParameterIndex.open(tmp_path / name)["w"].read() == _index()["w"].read()
    irpa = "b" * 250 + ".irpa"
    _index().create_archive_file(tmp_path / irpa)
    assert (tmp_path / irpa).read_bytes() == source.read_bytes()
    _no_temp_files(tmp_path)


def test_temp_prefix_fits_name_max_for_any_name(tmp_path: Path) -> None:
    from paramio.formats.output import temp_prefix

    for name in ("x", "é" * 127, "é" * 127 + "x", "a" * 255, os.fsdecode(b"\xff" * 255)):
        prefix = temp_prefix(str(tmp_path / name))
        assert len(os.fsencode(prefix)) + 12 <= 255 and prefix.startswith(".") and prefix.endswith(".")
        assert os.fsdecode(os.fsencode(prefix)) == prefix
