"""Sets of files (sharded safetensors with their index, split GGUF, sharded IRPA with its manifest)
are committed as a whole (issue 18, item 3): a failure on any shard changes no file, and a process that dies while the set is
being put in place leaves a set that fails to open, never old and new shards opening together.
"""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import paramio
from paramio.core.entry import ParameterEntry
from paramio.core.errors import InvalidArgumentError, ParamioError, WriteError
from paramio.index.index import ParameterIndex

KEYS = [f"layer.{i}.w" for i in range(6)]
SRC = str(Path(paramio.__file__).resolve().parents[1])


def _entries(generation: int) -> list[ParameterEntry]:
    """Six tensors of 64 bytes: the same layout in every generation, different values."""
    index = ParameterIndex()
    for i, key in enumerate(KEYS):
        index.add_array(key, np.full(16, generation * 100 + i, dtype=np.float32))
    return index.values()


SETS = {
    # format -> (output path, writer options giving three files, the files of the set)
    "safetensors": (
        "model.safetensors.index.json",
        {"max_shard_size": 128},
        [f"model-{i:05d}-of-00003.safetensors" for i in (1, 2, 3)] + ["model.safetensors.index.json"],
    ),
    "gguf": ("model.gguf", {"split_max_tensors": 2}, [f"model-{i:05d}-of-00003.gguf" for i in (1, 2, 3)]),
    "irpa": (
        "model.irpa.index.json",
        {"max_shard_size": 128},
        [f"model-{i:05d}-of-00003.irpa" for i in (1, 2, 3)] + ["model.irpa.index.json"],
    ),
}


def _save(folder: Path, fmt: str, generation: int) -> None:
    path, options, _ = SETS[fmt]
    paramio.write_path(folder / path, _entries(generation), on_loss="ignore", durable=False, **options)


def _generation(folder: Path, fmt: str, name: str) -> int | None:
    """Which save the set opened from `name` holds (None: it refuses to open); fails the test
    if it opens as a mix of saves."""
    try:
        index = ParameterIndex.open(str(folder / name))
        values = {k: float(index[k].to_numpy().view(np.float32)[0]) for k in KEYS}
    except ParamioError:
        return None
    generations = {int(v) // 100 for v in values.values()}
    assert len(generations) == 1, f"{name} opened as a mix of saves: {values}"
    assert sorted(values) == sorted(KEYS)
    return generations.pop()


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.mark.parametrize("fmt", list(SETS))
def test_a_full_disk_on_shard_two_changes_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fmt: str) -> None:
    _save(tmp_path, fmt, 1)
    before = _files(tmp_path)
    shard2 = SETS[fmt][2][1]
    real = os.pwrite

    def pwrite(fd: int, data: bytes, offset: int) -> int:
        if f".{shard2}." in os.readlink(f"/proc/self/fd/{fd}"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(fd, data, offset)

    monkeypatch.setattr(os, "pwrite", pwrite)
    with pytest.raises(WriteError, match="No space left on device"):
        _save(tmp_path, fmt, 2)
    monkeypatch.undo()
    assert _files(tmp_path) == before  # nothing new, nothing removed, no temporary file
    for name in SETS[fmt][2]:
        assert _generation(tmp_path, fmt, name) == 1


def test_a_shard_that_cannot_be_planned_changes_no_file(tmp_path: Path) -> None:
    _save(tmp_path, "safetensors", 1)
    before = _files(tmp_path)
    entries = _entries(2)
    bad = entries[3]  # in shard 2: a declared shape that does not fit its bytes
    from paramio.core.tensor import TensorInfo

    entries[3] = bad.replace(declared_tensor=TensorInfo("float32", (17,)))
    with pytest.raises(InvalidArgumentError, match="needs 68 bytes but the entry holds 64"):
        from paramio.formats.safetensors import write_path

        write_path(str(tmp_path / "model.safetensors.index.json"), entries, max_shard_size=128)
    assert _files(tmp_path) == before


class _Died(BaseException):
    """Stands for the process ending at that instant (nothing after it touches a final name)."""


def _save_dying(folder: Path, fmt: str, die_at: int, monkeypatch: pytest.MonkeyPatch) -> bool:
    """Save generation 2 over generation 1, the process "dying" as the `die_at`-th final name
    is about to change (removed or renamed over). Returns whether it died (False: the commit
    had fewer steps)."""
    _save(folder, fmt, 1)
    calls = 0
    real_replace, real_unlink = os.replace, os.unlink

    def step(real, *args, **kw):  # type: ignore[no-untyped-def]
        nonlocal calls
        if not os.path.basename(str(args[-1])).startswith("."):  # a final name, not a temporary
            calls += 1
            if calls == die_at:
                raise _Died
        return real(*args, **kw)

    monkeypatch.setattr(os, "replace", lambda *a, **k: step(real_replace, *a, **k))
    monkeypatch.setattr(os, "unlink", lambda *a, **k: step(real_unlink, *a, **k))
    try:
        _save(folder, fmt, 2)
    except _Died:
        return True
    finally:
        monkeypatch.undo()
    return False


@pytest.mark.parametrize("fmt", list(SETS))
def test_dying_at_any_step_of_the_commit_never_opens_a_mix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fmt: str
) -> None:
    names = SETS[fmt][2]
    for die_at in range(1, 20):
        folder = tmp_path / str(die_at)
        folder.mkdir()
        died = _save_dying(folder, fmt, die_at, monkeypatch)
        seen = {_generation(folder, fmt, n) for n in names if (folder / n).exists()}
        assert seen <= {None, 1, 2}
        if not died:
            assert seen == {2}
            break
    assert die_at > len(names)  # every file's change was a place to die


@pytest.mark.parametrize("fmt", ["safetensors", "irpa"])
def test_the_index_is_the_last_name_to_change(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fmt: str) -> None:
    _save(tmp_path, fmt, 1)
    changed: list[str] = []
    real_replace = os.replace

    def replace(src: str, dst: str) -> None:
        changed.append(os.path.basename(dst))
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    _save(tmp_path, fmt, 2)
    assert changed == SETS[fmt][2]  # shards in order, then the index


def test_shards_of_the_old_set_go_once_the_new_index_is_in_place(tmp_path: Path) -> None:
    _save(tmp_path, "safetensors", 1)
    (tmp_path / "other-00001-of-00003.safetensors").write_bytes(b"not ours")
    # a shard that is a symlink (as in a Hugging Face cache): the link goes, not what it points to
    blob = tmp_path / "blob"
    (tmp_path / "model-00003-of-00003.safetensors").rename(blob)
    (tmp_path / "model-00003-of-00003.safetensors").symlink_to(blob.name)
    paramio.write_path(tmp_path / "model.safetensors.index.json", _entries(2), max_shard_size=256)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "blob",
        "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors",
        "model.safetensors.index.json",
        "other-00001-of-00003.safetensors",
    ]
    assert _generation(tmp_path, "safetensors", "model.safetensors.index.json") == 2


_KILLED_CHILD = r"""
import os, signal, sys
import numpy as np
import paramio
folder, die_at = sys.argv[1], int(sys.argv[2])
index = paramio.ParameterIndex()
for i in range(6):
    index.add_array(f"layer.{i}.w", np.full(16, 200 + i, dtype=np.float32))
real = os.replace
calls = 0
def replace(src, dst):
    global calls
    calls += 1
    if calls == die_at:
        os.kill(os.getpid(), signal.SIGKILL)
    real(src, dst)
os.replace = replace
paramio.write_path(folder + "/model.safetensors.index.json", index.values(), max_shard_size=128)
"""


def test_sigkill_between_renames_never_opens_a_mix(tmp_path: Path) -> None:
    _save(tmp_path, "safetensors", 1)
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run(
        [sys.executable, "-c", _KILLED_CHILD, str(tmp_path), "2"], env=env, capture_output=True, timeout=120
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    results = {_generation(tmp_path, "safetensors", n) for n in SETS["safetensors"][2] if (tmp_path / n).exists()}
    assert results <= {None, 1, 2}
    # the next save repairs the set
    _save(tmp_path, "safetensors", 3)
    assert _generation(tmp_path, "safetensors", "model-00002-of-00003.safetensors") == 3


def test_output_set_api(tmp_path: Path) -> None:
    from paramio.formats.output_set import AtomicOutputSet

    (tmp_path / "a").write_bytes(b"old a")
    with AtomicOutputSet(durable=False) as files:
        index = files.add(tmp_path / "index", index=True)
        for name in ("a", "b"):
            files.add(tmp_path / name).pwrite(name.encode() * 3, 0)
        index.pwrite(b"index", 0)
        assert files.paths == [str(tmp_path / n) for n in ("a", "b", "index")]
        assert (tmp_path / "a").read_bytes() == b"old a"  # nothing changes before commit
        files.commit()
    assert _files(tmp_path) == {"a": b"aaa", "b": b"bbb", "index": b"index"}
    with pytest.raises(RuntimeError), AtomicOutputSet() as files:
        files.add(tmp_path / "a").pwrite(b"new", 0)
        raise RuntimeError
    assert _files(tmp_path) == {"a": b"aaa", "b": b"bbb", "index": b"index"}
    with AtomicOutputSet() as files:
        files.add(tmp_path / "c")
        with pytest.raises(WriteError, match="named twice"):
            files.add(tmp_path / "c")
        os.mkfifo(tmp_path / "fifo")
        with pytest.raises(WriteError, match="cannot be streamed"):
            files.add(tmp_path / "fifo")
    assert sorted(os.listdir(tmp_path)) == ["a", "b", "fifo", "index"]


@pytest.mark.parametrize("fmt", list(SETS))
def test_a_set_of_many_shards_holds_few_descriptors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fmt: str) -> None:
    from paramio.formats.output import AtomicOutput

    index = ParameterIndex()
    for i in range(100):
        index.add_array(f"t{i}", np.full(4, i, dtype=np.float32))
    members: list[AtomicOutput] = []
    open_counts: list[int] = []
    real = AtomicOutput.truncate

    def truncate(self: AtomicOutput, size: int) -> None:
        members.append(self)
        open_counts.append(sum(1 for m in members if m.fd >= 0))  # members holding a descriptor
        real(self, size)

    monkeypatch.setattr(AtomicOutput, "truncate", truncate)
    options = {"split_max_tensors": 1} if fmt == "gguf" else {"max_shard_size": 16}
    paramio.write_path(tmp_path / f"many.{fmt}", index.values(), durable=False, **options)
    assert len(open_counts) == 100
    assert max(open_counts) == 1  # one shard open at a time, not 100
    assert len(list(tmp_path.glob(f"many-*-of-00100.{fmt}"))) == 100


# -- tensor-parallel sets: device files (each maybe a sharded set) and a manifest, one commit --

TP_KINDS = {
    "irpa files": {"format": "irpa"},
    "sharded safetensors files": {"format": "safetensors", "max_shard_size": 64},
}


def _tp_save(folder: Path, generation: int, options: dict[str, object]) -> Path:
    from paramio.sharding import shard

    index = ParameterIndex()
    for i in range(4):
        index.add_array(f"w{i}", np.full((4, 8), generation * 100 + i, np.float32))
    shard(index.values(), folder, tp=2, split={"*": 0}, durable=False, **options)  # type: ignore[arg-type]
    return folder / "model.tp.json"


def _tp_generation(manifest: Path) -> int | None:
    """Which save the tensor-parallel set holds (None: it refuses to open); fails on a mix."""
    try:
        index = ParameterIndex.open(str(manifest))
        values = [index[f"w{i}"].to_numpy() for i in range(4)]
    except ParamioError:
        return None
    generations = {int(v) // 100 for a in values for v in np.unique(a)}
    assert len(generations) == 1, f"{manifest} opened as a mix of saves"
    return generations.pop()


@pytest.mark.parametrize("kind", list(TP_KINDS))
def test_a_tensor_parallel_set_is_one_commit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str) -> None:
    options = TP_KINDS[kind]
    manifest = _tp_save(tmp_path, 1, options)
    before = _files(tmp_path)
    real = os.pwrite

    def pwrite(fd: int, data: bytes, offset: int) -> int:  # the second device's files: disk full
        if ".model.rank1" in os.readlink(f"/proc/self/fd/{fd}"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(fd, data, offset)

    monkeypatch.setattr(os, "pwrite", pwrite)
    with pytest.raises(WriteError, match="No space left on device"):
        _tp_save(tmp_path, 2, options)
    monkeypatch.undo()
    assert _files(tmp_path) == before and _tp_generation(manifest) == 1
    for die_at in range(1, 40):  # and a process dying at any step of the commit
        folder = tmp_path / f"die{die_at}"
        folder.mkdir()
        _tp_save(folder, 1, options)
        calls = 0
        real_replace, real_unlink = os.replace, os.unlink

        def step(real, *args, _die_at=die_at, **kw):  # type: ignore[no-untyped-def]
            nonlocal calls
            if not os.path.basename(str(args[-1])).startswith("."):
                calls += 1
                if calls == _die_at:
                    raise _Died
            return real(*args, **kw)

        monkeypatch.setattr(os, "replace", lambda *a, _r=real_replace, **k: step(_r, *a, **k))
        monkeypatch.setattr(os, "unlink", lambda *a, _r=real_unlink, **k: step(_r, *a, **k))
        try:
            _tp_save(folder, 2, options)
            died = False
        except _Died:
            died = True
        finally:
            monkeypatch.undo()
        assert _tp_generation(folder / "model.tp.json") in ({None, 1, 2} if died else {2})
        if not died:
            break
    assert die_at > 3


def test_gathering_defers_every_commit_to_the_set(tmp_path: Path) -> None:
    from paramio.formats.output import AtomicOutput
    from paramio.formats.output_set import AtomicOutputSet

    (tmp_path / "a").write_bytes(b"old")
    with AtomicOutputSet(durable=False) as files:
        with files.gathering():
            with AtomicOutput(tmp_path / "a") as out:
                out.pwrite(b"new", 0)
                out.commit()
            assert (tmp_path / "a").read_bytes() == b"old"  # finished, not yet in place
        files.commit()
    assert _files(tmp_path) == {"a": b"new"}
    with pytest.raises(RuntimeError), AtomicOutputSet(durable=False) as files:
        with files.gathering():
            with AtomicOutput(tmp_path / "a") as out:
                out.pwrite(b"newer", 0)
                out.commit()
        raise RuntimeError("the manifest could not be made")
    assert _files(tmp_path) == {"a": b"new"}  # the gathered file's temporary is gone too
