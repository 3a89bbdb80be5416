"""A rank's slices loaded from a URL transfer only the slices' bytes (counted in nginx's access
log, every GET with its range and body bytes), and equal NumPy's slices of the full tensors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from logs import synced_log
from models import entries
from remote_servers import Nginx

import paramio
from paramio.formats.registry import write_path
from paramio.index.index import ParameterIndex

KiB = 1024


def _gets(nginx: Nginx, folder: Path) -> list[tuple[str, int]]:
    """(range, bytes) of each GET of a file in `folder`, in order."""
    out = []
    for line in synced_log(nginx, folder):
        method, uri, rng, _status, sent = line.split()
        if method == "GET" and uri.startswith(f"/{folder.name}/"):
            out.append((rng, int(sent)))
    return out


def _served(nginx: Nginx, folder: Path, tensors: dict[str, np.ndarray]) -> tuple[str, ParameterIndex, int]:
    """The model's URL, its index opened over HTTP, and the GETs the open made."""
    write_path(folder / "m.safetensors", entries(tensors), format="safetensors")
    url = f"{nginx.url}/{folder.name}/m.safetensors"
    index = ParameterIndex.open(url)
    return url, index, len(_gets(nginx, folder))


def test_leading_axis_slice_is_one_ranged_get_of_its_bytes(nginx: Nginx, nginx_dir: Path) -> None:
    rng = np.random.default_rng(2)
    w = rng.standard_normal((256, 1024)).astype(np.float32)  # 1 MiB
    _, index, opened = _served(nginx, nginx_dir, {"w": w})
    got = paramio.load(index, rank=3, world_size=4, split={"w": 0})
    np.testing.assert_array_equal(got["w"], w[192:])
    gets = _gets(nginx, nginx_dir)[opened:]
    start = index["w"].offset + 192 * 4 * KiB
    assert gets == [(f"bytes={start}-{start + 256 * KiB - 1}", 256 * KiB)], gets


def test_strided_slice_transfers_only_its_rows_when_they_are_far_apart(nginx: Nginx, nginx_dir: Path) -> None:
    rng = np.random.default_rng(3)
    w = rng.standard_normal((8, 65536)).astype(np.float16)  # rows of 128 KiB; a rank's part of each is 32 KiB
    norm = rng.standard_normal(64).astype(np.float32)
    _, index, opened = _served(nginx, nginx_dir, {"w": w, "norm": norm})
    got = paramio.load(index, rank=1, world_size=4, split={"w": 1})
    np.testing.assert_array_equal(got["w"], w[:, 16384:32768])
    np.testing.assert_array_equal(got["norm"], norm)
    gets = _gets(nginx, nginx_dir)[opened:]
    # The 96 KiB gaps between a rank's pieces exceed the 64 KiB a request may bridge: one GET
    # per row, each exactly its piece; the replicated norm in one more.
    assert sum(n for _, n in gets) == w.nbytes // 4 + norm.nbytes, gets
    assert len(gets) == 8 + 1, gets


def test_strided_slice_with_small_gaps_is_coalesced(nginx: Nginx, nginx_dir: Path) -> None:
    rng = np.random.default_rng(4)
    w = rng.standard_normal((512, 512)).astype(np.float32)  # rows of 2 KiB; 256 pieces of 512 bytes
    _, index, opened = _served(nginx, nginx_dir, {"w": w})
    got = paramio.load(index, rank=2, world_size=4, split={"w": 1})
    np.testing.assert_array_equal(got["w"], w[:, 256:384])
    gets = _gets(nginx, nginx_dir)[opened:]
    # 1.5 KiB gaps cost less than a round trip: the planner merges the 512 pieces into a few
    # requests spanning the first piece's start to the last one's end, not the whole tensor.
    assert len(gets) <= 4, gets
    assert sum(n for _, n in gets) <= w.nbytes - 256 * 4 - 128 * 4, gets
