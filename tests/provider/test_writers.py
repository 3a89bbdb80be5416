"""Writers: no stale overlay views, one writer at a time, all-or-nothing scatter, read-only bits.

The tests run as root, where the kernel lets every write through: read-only files must be
refused by paramio itself.
"""

from __future__ import annotations

import hashlib
import os
import resource
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from paramio.core.errors import ParamioError, SourceError, WriteError
from paramio.index.index import ParameterIndex
from paramio.index.overlay import Overlay
from paramio.index.provider import Provider
from paramio.index.writable import WritableArchive

BIG = 2 << 20  # bytes: larger than the file-size limit the "full disk" tests set


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def base(tmp_path: Path, make_archive) -> Path:
    return make_archive(
        tmp_path / "base.irpa",
        w=np.arange(4, dtype=np.float32),
        x=np.ones(3, np.int32),
        big=np.zeros(BIG, np.uint8),
    )


# -- item 4: stale overlay views ----------------------------------------------------------


def test_overlay_views_are_read_only_so_no_write_can_go_stale(base: Path, tmp_path: Path) -> None:
    ov = tmp_path / "ov.irpa"
    p = Provider.from_flags([f"m={base}"], overlays=[f"m={ov}"])
    p.write("m::w", np.full(4, 1, np.float32))
    view = p["m::w"].to_numpy()
    assert not view.flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        view[0] = 7  # would land in a file the next rewrite replaces
    p.write("m::x", np.full(3, 2, np.int32))  # a new key: the overlay file is replaced
    p.write("m::w", np.full(4, 3, np.float32))  # through the provider: reaches the new file
    p.flush()
    assert p["m::w"].to_numpy().tolist() == [3, 3, 3, 3]
    p.close()
    again = ParameterIndex.open(ov)
    assert again["w"].to_numpy().tolist() == [3, 3, 3, 3] and again["x"].to_numpy().tolist() == [2, 2, 2]


def test_writable_layers_keep_writable_views(base: Path) -> None:
    """A file opened writable is never replaced, so its views stay live and writable."""
    with WritableArchive(base) as w:
        view = w.index["w"].to_numpy()
        view[:] = 5
    assert ParameterIndex.open(base)["w"].to_numpy().tolist() == [5, 5, 5, 5]


def test_a_second_provider_on_one_overlay_is_refused_not_lost(base: Path, tmp_path: Path) -> None:
    ov = tmp_path / "ov.irpa"
    p1 = Provider.from_flags([f"m={base}"], overlays=[f"m={ov}"])
    p2 = Provider.from_flags([f"m={base}"], overlays=[f"m={ov}"])  # opening to read is fine
    p1.write("m::w", np.full(4, 1, np.float32))
    with pytest.raises(SourceError, match="being written by another Provider or process") as info:
        p2.write("m::x", np.full(3, 2, np.int32))  # would rewrite the overlay without p1's key
    assert info.value.path == str(ov)
    p1.close()
    p2.write("m::x", np.full(3, 2, np.int32))  # p1 is gone: p2 reopens the overlay first
    p2.close()
    got = ParameterIndex.open(ov)
    assert got.keys() == ["w", "x"] and got["w"].to_numpy().tolist() == [1, 1, 1, 1]


def test_a_writer_in_another_process_is_refused(base: Path, tmp_path: Path) -> None:
    ov = tmp_path / "ov.irpa"
    code = (
        "import sys, numpy as np\n"
        "from paramio.index.provider import Provider\n"
        f"p = Provider.from_flags([{f'm={base}'!r}], overlays=[{f'm={ov}'!r}])\n"
        "p.write('m::w', np.full(4, 1, np.float32))\n"
        "print('locked', flush=True)\n"
        "sys.stdin.read()\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    child = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
    try:
        assert child.stdout is not None and child.stdout.readline() == b"locked\n"
        p = Provider.from_flags([f"m={base}"], overlays=[f"m={ov}"])
        with pytest.raises(SourceError, match="another Provider or process"):
            p.write("m::x", np.full(3, 2, np.int32))
    finally:
        child.communicate(b"", timeout=60)
    p.write("m::x", np.full(3, 2, np.int32))  # the child has exited: its lock went with it
    assert p["m::w"].to_numpy().tolist() == [1, 1, 1, 1]
    p.close()


def test_a_second_writable_archive_is_refused(base: Path) -> None:
    w1 = WritableArchive(base)
    with pytest.raises(SourceError, match="another writer"):
        WritableArchive(base)
    with pytest.raises(SourceError, match="another writer"):
        Provider.from_flags([str(base)], writable=True)
    w1.close()
    with WritableArchive(base) as w2:
        w2.write("w", np.full(4, 2, np.float32))


# -- issue 24, item 9: ParameterIndex.open(writable=True) takes the writer's lock too ---------------

_HOLD = (
    "import sys\n"
    "from paramio.index.index import ParameterIndex\n"
    "from paramio.index.writable import WritableArchive\n"
    "path, how = sys.argv[1], sys.argv[2]\n"
    "held = ParameterIndex.open(path, writable=True) if how == 'index' else WritableArchive(path)\n"
    "print('holding', flush=True)\n"
    "sys.stdin.read()\n"
    "view = (held if how == 'index' else held.index)['w'].to_numpy()\n"
    "view[:] = 9  # what a writer that got through would do\n"
)


def _holder(path: Path, how: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    child = subprocess.Popen(
        [sys.executable, "-c", _HOLD, str(path), how], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env
    )
    assert child.stdout is not None and child.stdout.readline() == b"holding\n"
    return child


@pytest.mark.parametrize("holder", ["index", "archive"])
def test_a_writable_index_and_a_writable_archive_exclude_each_other_across_processes(base: Path, holder: str) -> None:
    child = _holder(base, holder)
    try:
        with pytest.raises(SourceError, match="another writer") as info:
            ParameterIndex.open(base, writable=True)
        assert info.value.path == str(base)
        with pytest.raises(SourceError, match="another writer"):
            WritableArchive(base)
        with pytest.raises(SourceError, match="another writer"):
            Provider.from_flags([str(base)], writable=True)
        assert ParameterIndex.open(base)["w"].to_numpy().tolist() == [0, 1, 2, 3]  # readers take no lock
    finally:
        child.communicate(b"", timeout=60)
    assert child.returncode == 0
    # The child has exited (it wrote 9s through its view): its lock went with it.
    index = ParameterIndex.open(base, writable=True)
    view = index["w"].to_numpy()
    assert view.tolist() == [9, 9, 9, 9]
    view[:] = 4
    with pytest.raises(SourceError, match="another writer"):
        WritableArchive(base)  # this process holds it now, through `index`
    del index, view
    with WritableArchive(base) as w:
        assert w.index["w"].to_numpy().tolist() == [4, 4, 4, 4]


def test_a_child_cannot_open_writable_while_this_process_holds_the_archive(base: Path) -> None:
    w = WritableArchive(base)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    code = (
        "import sys\n"
        "from paramio.core.errors import SourceError\n"
        "from paramio.index.index import ParameterIndex\n"
        "try:\n"
        "    ParameterIndex.open(sys.argv[1], writable=True)\n"
        "except SourceError as exc:\n"
        "    print('refused:', exc)\n"
        "else:\n"
        "    print('opened')\n"
    )
    r = subprocess.run([sys.executable, "-c", code, str(base)], capture_output=True, env=env, timeout=120)
    assert r.stdout.startswith(b"refused: ") and b"another writer" in r.stdout, r
    w.close()
    r = subprocess.run([sys.executable, "-c", code, str(base)], capture_output=True, env=env, timeout=120)
    assert r.stdout == b"opened\n", r


@contextmanager
def _file_size_limit(limit: int) -> Iterator[None]:
    """Writes past `limit` bytes fail (EFBIG), as a full disk makes them fail (ENOSPC)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    old = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, old)


def test_scatter_is_all_or_nothing_when_the_disk_fills(base: Path, tmp_path: Path) -> None:
    ov = tmp_path / "ov.irpa"
    p = Provider.from_flags([f"m={base}"], overlays=[f"m={ov}"])
    p.write("m::w", np.full(4, 1, np.float32))
    p.flush()
    before = _digest(ov)
    with _file_size_limit(1 << 20), pytest.raises(WriteError):
        # w is updated in place, big needs a rewrite bigger than the disk allows
        p.scatter({"m::w": np.full(4, 9, np.float32), "m::big": np.ones(BIG, np.uint8)})
    assert _digest(ov) == before
    assert p["m::w"].to_numpy().tolist() == [1, 1, 1, 1] and "big" not in p.overlay("m").index  # type: ignore[union-attr]
    assert sorted(f.name for f in tmp_path.iterdir()) == ["base.irpa", "ov.irpa"]  # no temporary left
    p.scatter({"m::w": np.full(4, 9, np.float32), "m::big": np.ones(BIG, np.uint8)})  # room again
    assert p["m::w"].to_numpy().tolist() == [9, 9, 9, 9] and p["m::big"].to_numpy().all()
    p.close()


def test_scatter_over_two_overlays_commits_both_or_neither(base: Path, tmp_path: Path) -> None:
    p = Provider.from_flags(
        [f"a={base}", f"b={base}"], overlays=[f"a={tmp_path / 'a.irpa'}", f"b={tmp_path / 'b.irpa'}"]
    )
    with _file_size_limit(1 << 20), pytest.raises(WriteError):
        p.scatter({"a::w": np.full(4, 9, np.float32), "b::big": np.ones(BIG, np.uint8)})
    assert p["a::w"].to_numpy().tolist() == [0, 1, 2, 3]  # the base: a's overlay gained nothing
    for name in ("a.irpa", "b.irpa"):
        f = tmp_path / name
        assert not f.exists(), name
    p.close()


def test_writable_archive_scatter_checks_every_array_first(base: Path) -> None:
    before = _digest(base)
    with WritableArchive(base) as w, pytest.raises(ParamioError):
        w.scatter({"w": np.full(4, 9, np.float32), "x": np.zeros(2, np.int32)})
    assert _digest(base) == before


# -- item 6: read-only permission bits, as root -------------------------------------------


def test_a_file_marked_read_only_is_not_written_even_by_root(base: Path) -> None:
    os.chmod(base, 0o444)
    before = _digest(base)
    for opener in (
        lambda: WritableArchive(base),
        lambda: Provider.from_flags([str(base)], writable=True),
        lambda: ParameterIndex.open(base, writable=True),
    ):
        with pytest.raises(SourceError, match=r"marked read-only \(mode 0444\)") as info:
            opener()
        assert info.value.path == str(base)
    assert _digest(base) == before
    assert ParameterIndex.open(base)["w"].to_numpy().tolist() == [0, 1, 2, 3]  # reading is fine
    os.chmod(base, 0o644)
    with WritableArchive(base) as w:
        w.write("w", np.full(4, 2, np.float32))


def test_an_overlay_marked_read_only_is_refused(base: Path, tmp_path: Path) -> None:
    ov = tmp_path / "ov.irpa"
    p = Provider.from_flags([f"m={base}"], overlays=[f"m={ov}"])
    p.write("m::w", np.full(4, 1, np.float32))
    p.close()
    os.chmod(ov, 0o400)
    before = _digest(ov)
    p = Provider.from_flags([f"m={base}"], overlays=[f"m={ov}"])  # reading it is fine
    assert p["m::w"].to_numpy().tolist() == [1, 1, 1, 1]
    for write in (
        lambda: p.write("m::w", np.full(4, 2, np.float32)),  # in place
        lambda: p.write("m::x", np.full(3, 2, np.int32)),  # a rewrite
    ):
        with pytest.raises(SourceError, match=r"overlay is marked read-only \(mode 0400\)"):
            write()
    assert _digest(ov) == before
    assert Overlay(ov).index.keys() == ["w"]


def test_root_is_what_these_tests_check() -> None:
    if os.geteuid() != 0:
        pytest.skip("not root: the kernel itself refuses writes to read-only files")
    assert os.access("/", os.W_OK)
