"""A small file whose splats claim huge sizes makes bounded work (issue 24, item 10).

Writers without splat entries (safetensors, GGUF) refuse, before writing a byte, more splat bytes
than `SPLAT_EXPANSION_ALLOWANCE` (or the real data, if more) unless asked, and never more than the
free space; the loader refuses a tensor larger than the memory available and plans a splat of any
size in O(1); only paramio's errors escape.
"""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

import paramio
from paramio.core.errors import InvalidArgumentError, ParamioError, WriteError
from paramio.formats import conversion
from paramio.loading import bounds
from paramio.loading.bounds import AllocationError
from paramio.loading.targets import NumpyTarget

SRC = str(Path(paramio.__file__).resolve().parents[1])
TIB = 1 << 40


def _splat_archive(path: Path, length: int, *, data: np.ndarray | None = None, pattern: bytes = b"\x01\x00") -> Path:
    index = paramio.ParameterIndex()
    if data is not None:
        index.add_array("d", data)
    index.add_splat("s", pattern, length)
    index.create_archive_file(path)
    assert path.stat().st_size <= 8192 + (data.nbytes if data is not None else 0)
    return path


def _leftovers(folder: Path, *keep: str) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name not in keep)


@pytest.mark.parametrize("ext", [".safetensors", ".gguf"])
def test_convert_refuses_a_terabyte_splat_before_writing(
    tmp_path: Path, paramio_cli: Callable[..., tuple[int, str, str]], ext: str
) -> None:
    src = _splat_archive(tmp_path / "m.irpa", TIB)
    out = tmp_path / f"o{ext}"
    code, _, err = paramio_cli("convert", f"--parameters={src}", f"--output={out}")
    assert code == 1, err
    assert f"{out}: the {ext[1:]} output would hold {TIB} bytes of splats written as data" in err
    assert "'s'" in err and "--expand-splats" in err
    assert _leftovers(tmp_path, "m.irpa") == []  # no output, no temporary file
    with pytest.raises(InvalidArgumentError, match="expand_splats=True"):
        paramio.write_path(out, paramio.ParameterIndex.open(src).values(), on_loss="ignore")
    assert _leftovers(tmp_path, "m.irpa") == []


def test_asked_for_it_still_stops_at_the_free_space(
    tmp_path: Path, paramio_cli: Callable[..., tuple[int, str, str]]
) -> None:
    src = _splat_archive(tmp_path / "m.irpa", 1 << 52)  # more than any disk here holds
    out = tmp_path / "o.safetensors"
    code, _, err = paramio_cli("convert", f"--parameters={src}", f"--output={out}", "--expand-splats")
    assert code == 1 and "bytes free" in err and f"would take {1 << 52} bytes" in err, err
    with pytest.raises(WriteError, match="bytes free"):
        paramio.write_path(out, paramio.ParameterIndex.open(src).values(), on_loss="ignore", expand_splats=True)
    assert _leftovers(tmp_path, "m.irpa") == []


def test_the_allowance_grows_with_the_data_and_the_opt_in_writes_the_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(conversion, "SPLAT_EXPANSION_ALLOWANCE", 1 << 16)
    data = np.arange(1 << 15, dtype=np.int32)  # 128 KiB of data: splats up to that are written unasked
    fits = paramio.ParameterIndex.open(_splat_archive(tmp_path / "a.irpa", 1 << 17, data=data)).values()
    paramio.write_path(tmp_path / "a.safetensors", fits, on_loss="ignore")
    assert paramio.ParameterIndex.open(tmp_path / "a.safetensors")["s"].read() == b"\x01\x00" * (1 << 16)
    over = paramio.ParameterIndex.open(_splat_archive(tmp_path / "b.irpa", (1 << 17) + 2, data=data)).values()
    with pytest.raises(InvalidArgumentError, match=f"the {1 << 17} paramio writes unasked"):
        paramio.write_path(tmp_path / "b.gguf", over, on_loss="ignore")
    assert not (tmp_path / "b.gguf").exists()
    paramio.write_path(tmp_path / "b.gguf", over, on_loss="ignore", expand_splats=True)
    assert paramio.ParameterIndex.open(tmp_path / "b.gguf")["s"].read() == b"\x01\x00" * ((1 << 16) + 1)
    paramio.write_path(tmp_path / "b.irpa2.irpa", over)  # IRPA keeps splats: nothing to expand


@pytest.fixture
def small_fs() -> Iterator[Path]:
    mnt = Path("/tmp") / f"paramio-small-{uuid.uuid4().hex[:8]}"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)], capture_output=True, text=True)
    if r.returncode != 0:
        mnt.rmdir()
        pytest.skip(f"cannot mount a small tmpfs here: {r.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)
        mnt.rmdir()


def test_a_splat_larger_than_the_free_space_is_refused_before_writing(tmp_path: Path, small_fs: Path) -> None:
    src = _splat_archive(tmp_path / "m.irpa", 8 << 20)
    with pytest.raises(WriteError, match="bytes free"):
        paramio.write_path(small_fs / "o.safetensors", paramio.ParameterIndex.open(src).values(), on_loss="ignore")
    assert _leftovers(small_fs) == []


def test_dump_extract_of_a_splat_stops_at_the_free_space(
    tmp_path: Path, small_fs: Path, paramio_cli: Callable[..., tuple[int, str, str]]
) -> None:
    src = _splat_archive(tmp_path / "m.irpa", 8 << 20)
    code, _, err = paramio_cli("dump", str(src), f"--extract=s={small_fs / 's.bin'}")
    assert code == 1 and "bytes free" in err, err
    assert _leftovers(small_fs) == []
    zero = _splat_archive(tmp_path / "z.irpa", 8 << 20, pattern=b"\x00\x00")  # all zeros: a hole, no space
    code, _, err = paramio_cli("dump", str(zero), f"--extract=s={small_fs / 'z.bin'}")
    assert code == 0, err
    assert (small_fs / "z.bin").stat().st_size == 8 << 20


# -- the loader ----------------------------------------------------------------------------------


def test_load_refuses_a_splat_larger_than_the_memory_available(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = _splat_archive(tmp_path / "m.irpa", TIB)
    with pytest.raises(AllocationError) as info:
        paramio.load(src)
    assert isinstance(info.value, (ParamioError, MemoryError)) and info.value.key == "s"
    assert f"a splat of {TIB} bytes is more than the" in str(info.value)
    monkeypatch.setattr(bounds, "available_memory", lambda: 1 << 20)
    small = _splat_archive(tmp_path / "n.irpa", 2 << 20)
    with pytest.raises(AllocationError, match="memory available"):
        paramio.load(small)
    monkeypatch.setattr(bounds, "available_memory", lambda: 4 << 20)
    assert paramio.load(small)["s"].tobytes() == b"\x01\x00" * (1 << 20)


def test_small_tensors_do_not_ask_for_the_memory_available(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """/proc/meminfo is read for tensors of `CHECK_FROM` bytes or more only (it cost 20-60 us a
    read, once per tensor: more than loading 10,000 small ones)."""
    import numpy as np
    import safetensors.numpy

    asked: list[int] = []
    real = bounds.available_memory

    def counting() -> int | None:
        asked.append(1)
        return real()

    monkeypatch.setattr(bounds, "available_memory", counting)
    path = tmp_path / "small.safetensors"
    safetensors.numpy.save_file({f"t{i}": np.full(4, i, np.float32) for i in range(500)}, str(path))
    got = paramio.load(path)
    assert len(got) == 500 and float(got["t499"][0]) == 499 and asked == []
    paramio.load(_splat_archive(tmp_path / "big.irpa", bounds.CHECK_FROM))
    assert asked == [1]


@pytest.mark.parametrize(
    "failure", [MemoryError(), OSError(errno.ENOMEM, "Cannot allocate memory"), RuntimeError("out of memory")]
)
def test_an_allocation_the_allocator_refuses_is_a_paramio_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failure: BaseException
) -> None:
    def refuse(self: NumpyTarget, key: str, entry: object) -> object:
        raise failure

    monkeypatch.setattr(NumpyTarget, "allocate", refuse)
    with pytest.raises(AllocationError, match="cannot allocate") as info:
        paramio.load(_splat_archive(tmp_path / "m.irpa", 4096))
    assert info.value.key == "s" and info.value.__cause__ is failure


_PLAN = """
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))
from paramio.loading.plan import plan_tasks
chunk = 16 << 20
plan = plan_tasks([10, 1 << 56, 20, 30], chunk)
first = [plan.popleft() for _ in range(3)]
print(len(plan), plan.pieces_per_slot(), [(p.slot, p.offset, p.length) for t in first for p in t.pieces])
"""


def test_the_planner_plans_a_huge_splat_in_constant_memory() -> None:
    r = subprocess.run(
        [sys.executable, "-c", _PLAN],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": SRC},
    )
    assert r.returncode == 0, r.stderr[-600:]
    pieces = (1 << 56) // (16 << 20)
    chunk = 16 << 20
    assert r.stdout.split("] [")[0] == f"{1 + pieces + 1 - 3} [1, {pieces}, 1, 1"
    assert r.stdout.strip().endswith(f"[(0, 0, 10), (1, 0, {chunk}), (1, {chunk}, {chunk})]")
