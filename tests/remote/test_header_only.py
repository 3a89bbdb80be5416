"""Opening a remote file transfers its header and index tables, not its data: counted in
nginx's access log (every GET with its range and body bytes)."""

from __future__ import annotations

import json
import os
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
from logs import synced_log
from models import entries, write_model
from remote_servers import Nginx

from paramio.cli.main import main
from paramio.formats.gguf.opening import FIRST_READ as GGUF_FIRST_READ
from paramio.formats.gguf.reader import read_gguf
from paramio.formats.irpa.reader import FIRST_READ as IRPA_FIRST_READ
from paramio.formats.registry import write_path
from paramio.index.index import ParameterIndex
from paramio.sources import FileSource

KiB = 1024


def _gets(nginx: Nginx, folder: Path) -> list[tuple[str, int]]:
    """(file, bytes) of each GET of a file in `folder`, in order."""
    out = []
    for line in synced_log(nginx, folder):
        method, uri, *_rest, status, sent = line.split()
        if method == "GET" and uri.startswith(f"/{folder.name}/"):
            out.append((uri.rsplit("/", 1)[1], int(sent)))
    return out


def _big_safetensors(path: Path, size: int) -> tuple[int, int]:
    """A safetensors file of `size` bytes (sparse: the data is a hole); its header and data lengths."""
    n = (size - 8 - 256) // 4
    header = json.dumps(
        {"__metadata__": {"format": "pt"}, "w": {"dtype": "F32", "shape": [n], "data_offsets": [0, 4 * n]}}
    )
    header = header.ljust(size - 8 - 4 * n)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(header)) + header.encode())
        f.truncate(size)
    return 8 + len(header), 4 * n


def test_listing_a_remote_2gib_safetensors_reads_its_header_only(
    nginx: Nginx, nginx_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    header, length = _big_safetensors(nginx_dir / "big.safetensors", 2 * 1024**3)
    url = f"{nginx.url}/{nginx_dir.name}/big.safetensors"
    assert main(["dump", f"--parameters={url}"]) == 0
    assert f"| {length:16} | `w`" in capsys.readouterr().out  # the tensor, listed
    gets = _gets(nginx, nginx_dir)
    assert len(gets) <= 2 and sum(n for _, n in gets) <= header + 64 * KiB, gets


@pytest.mark.parametrize("fmt", ["irpa", "safetensors", "gguf"])
def test_open_reads_header_and_tables_only(fmt: str, nginx: Nginx, nginx_dir: Path, tmp_path: Path) -> None:
    local = write_model(tmp_path, fmt)
    assert local.stat().st_size > 4 * 64 * KiB  # the data runs far past the first read
    shutil.copy(local, nginx_dir / local.name)
    index = ParameterIndex.open(f"{nginx.url}/{nginx_dir.name}/{local.name}")
    assert len(index) == 7
    gets = _gets(nginx, nginx_dir)
    fetched = sum(n for _, n in gets)
    # Every format: one GET of the first 64 KiB, which holds these small tables.
    assert len(gets) == 1 and fetched <= 64 * KiB, gets
    if fmt == "gguf":
        assert fetched == GGUF_FIRST_READ == 64 * KiB


def test_listing_a_remote_gguf_with_a_long_vocabulary_transfers_its_header_and_64kib(
    nginx: Nginx, nginx_dir: Path
) -> None:
    """GGUF states no table sizes: the first read grows to what the header holds at the least
    (8 bytes for each token still to come) and 64 KiB more, so a 1.2 MB header costs a few GETs
    and at most 64 KiB past it (it was a 256 KiB first read grown fourfold)."""
    gguf = pytest.importorskip("gguf")
    path = nginx_dir / "vocab.gguf"
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_array("tokenizer.ggml.tokens", [f"token-{i:06d}" for i in range(60_000)])
    for i in range(2000):  # a tensor info table of ~120 KB after the vocabulary
        w.add_tensor(f"blk.{i}.a_rather_long_tensor_name.weight", np.zeros(8, np.float32))
    w.add_tensor("big", np.zeros(1 << 20, np.float32))  # 4 MiB of data after the header
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    data_offset = read_gguf(FileSource(path)).data_offset
    index = ParameterIndex.open(f"{nginx.url}/{nginx_dir.name}/vocab.gguf")
    assert len(index) == 2001
    gets = _gets(nginx, nginx_dir)
    fetched = sum(n for _, n in gets)
    assert data_offset - 32 < fetched <= data_offset + 64 * KiB, (fetched, data_offset, gets)
    assert len(gets) <= 10, gets


def test_irpa_with_tables_past_the_first_read_costs_exactly_one_more_request(
    nginx: Nginx, nginx_dir: Path, tmp_path: Path
) -> None:
    many = {f"layer.{i:05d}.a_rather_long_parameter_name.weight": np.full(3, i, np.float32) for i in range(3000)}
    path = tmp_path / "many.irpa"
    write_path(path, entries(many), format="irpa")
    shutil.copy(path, nginx_dir / path.name)
    index = ParameterIndex.open(f"{nginx.url}/{nginx_dir.name}/many.irpa")
    np.testing.assert_array_equal(
        index["layer.02999.a_rather_long_parameter_name.weight"].to_numpy(),
        many["layer.02999.a_rather_long_parameter_name.weight"],
    )
    gets = _gets(nginx, nginx_dir)
    data_start = min(e.offset for e in ParameterIndex.open(path).entries)
    assert data_start > IRPA_FIRST_READ  # the tables do not fit the first read
    open_gets = gets[:2]
    assert [n for _, n in open_gets][0] == IRPA_FIRST_READ
    assert sum(n for _, n in open_gets) <= data_start + 64 * KiB  # header + tables, then the one entry
    assert len(gets) == 3  # two to open, one for the entry read


def test_sharded_safetensors_by_index_url_reads_each_shards_header(
    nginx: Nginx, nginx_dir: Path, tmp_path: Path
) -> None:
    write_model(tmp_path, "safetensors", max_shard_size=100_000)
    names = sorted(os.listdir(tmp_path))
    assert "model.safetensors.index.json" in names and len(names) >= 4
    for n in names:
        shutil.copy(tmp_path / n, nginx_dir / n)
    local = ParameterIndex.open(tmp_path / "model.safetensors.index.json")
    shards = [n for n in names if not n.endswith(".json")]
    for entry_url in ("model.safetensors.index.json", shards[1]):  # the index, or one shard
        before = len(_gets(nginx, nginx_dir))
        remote = ParameterIndex.open(f"{nginx.url}/{nginx_dir.name}/{entry_url}")
        gets = _gets(nginx, nginx_dir)[before:]
        # The index once (also from a shard: the read that finds the set opens it), then one
        # header read per shard.
        assert sorted(f for f, _ in gets) == sorted(["model.safetensors.index.json", *shards])
        assert all(n <= 64 * KiB for _, n in gets)
        assert remote.keys() == local.keys()
        for k in local.keys():
            assert remote[k].read() == local[k].read()


def test_cache_folder_makes_the_second_listing_free(
    nginx: Nginx, nginx_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shutil.copy(write_model(tmp_path, "irpa"), nginx_dir / "model.irpa")
    url = f"{nginx.url}/{nginx_dir.name}/model.irpa"
    cache = tmp_path / "cache"
    assert main(["dump", f"--parameters={url}", f"--cache={cache}"]) == 0
    first = capsys.readouterr().out
    n = len(_gets(nginx, nginx_dir))
    assert n == 1
    assert main(["dump", f"--parameters={url}", f"--cache={cache}"]) == 0
    assert capsys.readouterr().out == first
    assert len(_gets(nginx, nginx_dir)) == n  # only the HEAD went out again
