"""The block cache trusts nothing it finds in its folder: a planted or corrupted block, a
symlink or a FIFO at a block's path is fetched again (never served, never waited on), and a
folder other users can write is refused."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("obstore", reason="the remote extra is not installed")

from hostile_server import HostileServer, run_hostile_server  # noqa: E402

from paramio.core.errors import InvalidArgumentError  # noqa: E402
from paramio.sources import open_source  # noqa: E402
from paramio.sources.cache import DiskCache  # noqa: E402
from paramio.testing.sources import sample_bytes  # noqa: E402

DATA = sample_bytes(300_000, seed=5)
BLOCK = 64 << 10


@pytest.fixture(scope="module")
def hostile() -> Iterator[HostileServer]:
    with run_hostile_server() as server:
        yield server


def _url(hostile: HostileServer, tmp_path: Path) -> str:
    hostile.put(tmp_path.name + ".bin", DATA)
    return f"{hostile.url}/plain/{tmp_path.name}.bin"


def _block_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))


def test_planted_block_is_not_served(hostile: HostileServer, tmp_path: Path) -> None:
    url, folder = _url(hostile, tmp_path), tmp_path / "cache"
    assert open_source(url, cache=DiskCache(folder, block_size=BLOCK)).read(0, 100_000) == DATA[:100_000]
    files = _block_files(folder)
    assert [p.name for p in files] == ["0", "1"]
    # Someone rewrites a block with other bytes of the same length (digest trailer included).
    for f in files:
        f.write_bytes(b"\xee" * f.stat().st_size)
    cache = DiskCache(folder, block_size=BLOCK)
    src = open_source(url, cache=cache)
    assert src.read(0, 100_000) == DATA[:100_000]
    assert cache.rejected == 2 and src.inner.misses == 2  # type: ignore[attr-defined]
    # Fetched again and stored whole: the next reader is served from the cache.
    again = open_source(url, cache=DiskCache(folder, block_size=BLOCK))
    assert again.read(0, 100_000) == DATA[:100_000] and again.inner.hits == 2  # type: ignore[attr-defined]


def test_symlinked_block_is_not_followed(hostile: HostileServer, tmp_path: Path) -> None:
    url, folder = _url(hostile, tmp_path), tmp_path / "cache"
    assert open_source(url, cache=DiskCache(folder, block_size=BLOCK)).read(0, 100_000) == DATA[:100_000]
    block = _block_files(folder)[0]
    decoy = tmp_path / "decoy"
    decoy.write_bytes(block.read_bytes()[::-1])
    block.unlink()
    block.symlink_to(decoy)
    cache = DiskCache(folder, block_size=BLOCK)
    assert open_source(url, cache=cache).read(0, 100_000) == DATA[:100_000]
    assert cache.rejected == 1


def test_fifo_at_a_block_path_does_not_hang(hostile: HostileServer, tmp_path: Path) -> None:
    """In a child process, bounded: before the fix the open of the FIFO never returned."""
    url, folder = _url(hostile, tmp_path), tmp_path / "cache"
    assert open_source(url, cache=DiskCache(folder, block_size=BLOCK)).read(0, 100_000) == DATA[:100_000]
    block = _block_files(folder)[0]
    block.unlink()
    os.mkfifo(block)
    script = (
        "import sys; from paramio.sources import open_source; from paramio.sources.cache import DiskCache\n"
        f"src = open_source(sys.argv[1], cache=DiskCache(sys.argv[2], block_size={BLOCK}))\n"
        "sys.stdout.buffer.write(src.read(0, 100_000))"
    )
    proc = subprocess.run([sys.executable, "-c", script, url, str(folder)], capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == DATA[:100_000]


@pytest.mark.parametrize("mode", [0o777, 0o770, 0o1777])
def test_cache_folder_others_can_write_is_refused(tmp_path: Path, mode: int) -> None:
    folder = tmp_path / "shared"
    folder.mkdir()
    folder.chmod(mode)
    with pytest.raises(InvalidArgumentError, match="writable by other users"):
        DiskCache(folder)


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs root to chown")
def test_cache_folder_of_another_user_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "theirs"
    folder.mkdir(mode=0o755)
    os.chown(folder, 65534, 65534)
    with pytest.raises(InvalidArgumentError, match="belongs to another user"):
        DiskCache(folder)


def test_new_cache_folder_is_private(tmp_path: Path) -> None:
    DiskCache(tmp_path / "fresh")
    assert (tmp_path / "fresh").stat().st_mode & 0o777 == 0o700


def test_first_listing_with_a_cache_reads_what_it_reads_without(
    hostile: HostileServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`paramio dump --cache` of a model with 1 MiB of data: the header's GET is a page (64 KiB),
    not a 4 MiB block; a second dump sends no GET."""
    import numpy as np

    from paramio.cli.main import main
    from paramio.formats.registry import write_path
    from paramio.index.index import ParameterIndex

    index = ParameterIndex()
    for i in range(4):
        index.add_array(f"w{i}", np.full(64 * 1024, i, dtype=np.float32))
    write_path(tmp_path / "m.safetensors", list(index.entries), format="safetensors")
    name = tmp_path.name + ".safetensors"
    hostile.put(name, (tmp_path / "m.safetensors").read_bytes())
    url = f"{hostile.url}/plain/{name}"
    assert main(["dump", url]) == 0
    plain = hostile.gets(name)
    assert main(["dump", f"--cache={tmp_path / 'cache'}", url]) == 0
    cached = hostile.gets(name)[len(plain) :]
    assert cached == plain == ["bytes=0-65535"]
    assert main(["dump", f"--cache={tmp_path / 'cache'}", url]) == 0
    assert len(hostile.gets(name)) == len(plain) + len(cached)
    capsys.readouterr()
