"""Host memory for loaded tensors: large ones start on a transparent huge page boundary (fewer
page faults while the kernel fills them), small ones are plain arrays; the bytes are the file's."""

from __future__ import annotations

import mmap
from pathlib import Path

import numpy as np
import pytest

from paramio import ParameterIndex
from paramio.loading import hostmem, load

MiB = 1 << 20


@pytest.fixture
def fake_thp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    def make(enabled: str | None, size: str | None) -> int:
        d = tmp_path / "thp"
        d.mkdir(exist_ok=True)
        for name, text in (("enabled", enabled), ("hpage_pmd_size", size)):
            f = d / name
            if text is None:
                f.unlink(missing_ok=True)
            else:
                f.write_text(text + "\n")
        monkeypatch.setattr(hostmem, "_THP", str(d) + "/")
        monkeypatch.setattr(hostmem, "_VIRTIO", str(tmp_path / "no-virtio") + "/")
        monkeypatch.delenv("PARAMIO_HUGE_PAGES", raising=False)
        hostmem.huge_page_size.cache_clear()
        hostmem.direct_huge_page_size.cache_clear()
        return hostmem.huge_page_size()

    yield make
    hostmem.huge_page_size.cache_clear()
    hostmem.direct_huge_page_size.cache_clear()


@pytest.fixture
def huge_pages_on(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """Huge pages asked for even where they are off by default (a VM reporting free memory to
    its host, as the development VM does), so their placement is tested there too."""
    monkeypatch.setenv("PARAMIO_HUGE_PAGES", "1")
    hostmem.huge_page_size.cache_clear()
    hostmem.direct_huge_page_size.cache_clear()
    yield hostmem.huge_page_size()
    monkeypatch.delenv("PARAMIO_HUGE_PAGES")
    hostmem.huge_page_size.cache_clear()
    hostmem.direct_huge_page_size.cache_clear()


def _balloon(root: Path, features: str, *, device: str = "0x0005") -> None:
    d = root / "virtio0"
    d.mkdir(parents=True, exist_ok=True)
    (d / "device").write_text(device + "\n")
    (d / "features").write_text(features + "\n")


def test_no_huge_pages_where_the_host_takes_free_memory_back(
    fake_thp,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,  # type: ignore[no-untyped-def]
) -> None:
    """A virtio balloon with free page reporting (feature bit 5) in blocks of a huge page or
    less: small pages (each huge page would be a fault of the host's too); else huge pages;
    ``PARAMIO_HUGE_PAGES`` decides over both."""
    assert fake_thp("always [madvise] never", "2097152") == 2 * MiB  # no virtio bus
    virtio = tmp_path / "virtio"
    order = tmp_path / "order"
    monkeypatch.setattr(hostmem, "_REPORTING_ORDER", str(order))

    def size() -> int:
        monkeypatch.setattr(hostmem, "_VIRTIO", str(virtio) + "/")
        hostmem.huge_page_size.cache_clear()
        return hostmem.huge_page_size()

    _balloon(virtio, "0110010100000000")  # the development VM's balloon: reporting on
    assert size() == 0  # order unknown: the kernel's default, 2 MiB blocks
    hostmem.direct_huge_page_size.cache_clear()
    assert hostmem.direct_huge_page_size() == 2 * MiB  # O_DIRECT's memory keeps huge pages
    order.write_text("9\n")
    assert size() == 0
    order.write_text("10\n")  # 4 MiB blocks: a huge page's block may stay with the guest
    assert size() == 2 * MiB
    order.write_text("9\n")
    _balloon(virtio, "0110000000000000")  # a balloon without reporting
    assert size() == 2 * MiB
    _balloon(virtio, "0110010100000000", device="0x0002")  # reporting bit of another device
    assert size() == 2 * MiB
    _balloon(virtio, "0110010100000000")
    monkeypatch.setenv("PARAMIO_HUGE_PAGES", "1")
    assert size() == 2 * MiB
    monkeypatch.setenv("PARAMIO_HUGE_PAGES", "0")
    _balloon(virtio, "0110000000000000")
    assert size() == 0
    hostmem.direct_huge_page_size.cache_clear()
    assert hostmem.direct_huge_page_size() == 0


def test_huge_page_size_from_the_kernel(fake_thp) -> None:  # type: ignore[no-untyped-def]
    assert fake_thp("always [madvise] never", "2097152") == 2 * MiB
    assert fake_thp("[always] madvise never", "2097152") == 2 * MiB
    assert fake_thp("always madvise [never]", "2097152") == 0  # THP off: nothing to align for
    assert fake_thp("always [madvise] never", "536870912") == 0  # 512 MiB pages: not worth it
    assert fake_thp("always [madvise] never", "3000000") == 0  # not a power of two: not trusted
    assert fake_thp("always [madvise] never", None) == 0
    assert fake_thp(None, None) == 0  # not Linux


@pytest.mark.parametrize("huge", [2 * MiB, 0])
def test_host_bytes_alignment(huge: int, monkeypatch: pytest.MonkeyPatch) -> None:
    if huge and not hasattr(mmap, "MADV_HUGEPAGE"):
        pytest.skip("no madvise huge pages on this system")
    monkeypatch.setattr(hostmem, "huge_page_size", lambda: huge)
    for n in (0, 1, 4096, 2 * MiB - 1, 2 * MiB, 5 * MiB + 3):
        a = hostmem.host_bytes(n)
        assert a.dtype == np.uint8 and a.shape == (n,) and a.flags.writeable and a.flags.c_contiguous
        step = huge if huge and n >= huge else 64
        assert n == 0 or a.ctypes.data % step == 0, (n, huge)  # (an empty slice's pointer is NumPy's)
        a[:] = 7  # all of it is usable
    assert hostmem.host_bytes(100, alignment=4096).ctypes.data % 4096 == 0


def test_large_tensors_start_on_a_huge_page(tmp_path: Path, huge_pages_on: int) -> None:
    huge = huge_pages_on
    if not huge:
        pytest.skip("no transparent huge pages here")
    index = ParameterIndex()
    rng = np.random.default_rng(3)
    want = {
        "big": rng.standard_normal((3, huge // 4 + 5)).astype(np.float32),  # > 1 huge page, odd size
        "exact": rng.integers(0, 255, huge, dtype=np.uint8),
        "small": rng.standard_normal(1000).astype(np.float32),
    }
    for k, v in want.items():
        index.add_array(k, v)
    path = tmp_path / "m.irpa"
    index.create_archive_file(str(path))
    for into in ("numpy", "torch"):
        if into == "torch":
            pytest.importorskip("torch")
        got = load(path, into=into, budget="1MiB")
        for k, w in want.items():
            arr = got[k] if into == "numpy" else got[k].numpy()  # type: ignore[attr-defined]
            assert arr.dtype == w.dtype and arr.shape == w.shape and arr.tobytes() == w.tobytes(), (into, k)
            assert arr.flags.writeable, (into, k)
            if w.nbytes >= huge:
                assert arr.ctypes.data % huge == 0, (into, k)
        if into == "numpy":
            assert got["small"].flags.owndata  # small ones are plain arrays, as to_numpy(copy=True) gives


_CHILD = """
import numpy, paramio
from paramio import ParameterIndex
def hwm():
    return [int(l.split()[1]) * 1024 for l in open('/proc/self/status') if l.startswith('VmHWM:')][0]
index = ParameterIndex.open({path!r})
paramio.load(index, keys=['t0'], budget='4MiB')  # threads, imports
before = hwm()
arrays = paramio.load(index, budget='4MiB')
print('ABOVE', hwm() - before - sum(a.nbytes for a in arrays.values()))
"""


def test_partial_huge_pages_cost_no_memory(tmp_path: Path, huge_pages_on: int) -> None:
    """Tensors of 2.5 huge pages: their last half page must not take a whole huge page (an
    aligned block with huge pages to its end held 3 per tensor: 12 MiB above 120 MiB here)."""
    import os
    import subprocess
    import sys

    huge = huge_pages_on
    if not huge:
        pytest.skip("no transparent huge pages here")
    index = ParameterIndex()
    for i in range(24):
        index.add_array(f"t{i}", np.full(2 * huge + huge // 2, i, dtype=np.uint8))
    path = tmp_path / "m.irpa"
    index.create_archive_file(str(path))
    del index
    src = str(Path(__file__).resolve().parents[2] / "src")
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD.format(path=str(path))],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": src},
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    above = int(proc.stdout.split("ABOVE")[-1])
    assert above <= 6 * MiB, f"{above / MiB:.1f} MiB above the arrays"
