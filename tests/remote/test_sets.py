"""Sets opened by URL: files named inside a file (shards, an index's weight map, IRPA external
entries) are the URL's siblings, under the same rule as local ones (nothing outside its folder)."""

from __future__ import annotations

import json
import shutil
import struct
from pathlib import Path

import pytest
from logs import synced_log
from models import write_model
from remote_servers import Nginx

from paramio.cli.main import main
from paramio.core.errors import FormatError, SourceError
from paramio.formats.irpa.layout import ENTRY_HEADER
from paramio.index.index import ParameterIndex


def _publish(src: Path, dst: Path) -> list[str]:
    names = sorted(p.name for p in src.iterdir())
    for n in names:
        shutil.copy(src / n, dst / n)
    return names


def _same(local: ParameterIndex, remote: ParameterIndex) -> None:
    assert remote.keys() == local.keys()
    for k in local.keys():
        assert remote[k].read() == local[k].read(), k


@pytest.mark.parametrize("fmt", ["irpa", "gguf"])
def test_sharded_sets_open_from_any_member_url(fmt: str, nginx: Nginx, nginx_dir: Path, tmp_path: Path) -> None:
    write_model(tmp_path, fmt, max_shard_size=100_000)
    names = _publish(tmp_path, nginx_dir)
    shards = [n for n in names if not n.endswith(".json")]
    assert len(shards) >= 3
    local = ParameterIndex.open(tmp_path / shards[0])
    for name in names:  # the manifest (IRPA), and every shard
        remote = ParameterIndex.open(f"{nginx.url}/{nginx_dir.name}/{name}")
        _same(local, remote)
        assert all(p.startswith(nginx.url) for p in remote.paths)


def test_a_missing_shard_of_a_remote_set_is_named(nginx: Nginx, nginx_dir: Path, tmp_path: Path) -> None:
    write_model(tmp_path, "gguf", max_shard_size=100_000)
    names = _publish(tmp_path, nginx_dir)
    (nginx_dir / names[-1]).unlink()
    with pytest.raises(SourceError, match=rf"{names[-1]}.*is missing.*404"):
        ParameterIndex.open(f"{nginx.url}/{nginx_dir.name}/{names[0]}")


@pytest.mark.parametrize(
    ("name", "error", "why"),
    [("../secret.safetensors", FormatError, "must be a file name"), ("%2e%2e", SourceError, "leaves the folder")],
)
def test_safetensors_index_naming_a_file_outside_its_folder_is_refused(
    name: str, error: type[Exception], why: str, nginx: Nginx, nginx_dir: Path, tmp_path: Path
) -> None:
    write_model(tmp_path, "safetensors", max_shard_size=100_000)
    _publish(tmp_path, nginx_dir)
    index = json.loads((nginx_dir / "model.safetensors.index.json").read_text())
    first = next(iter(index["weight_map"]))
    index["weight_map"][first] = name
    (nginx_dir / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(error, match=why):
        ParameterIndex.open(f"{nginx.url}/{nginx_dir.name}/model.safetensors.index.json")


def _external_archive(path: Path, name: bytes, r_off: int = 0, r_len: int = 4, key: bytes = b"ext") -> Path:
    """An IRPA archive with one EXTERNAL entry naming `name` (as tests/hardening builds them)."""
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


def test_irpa_external_entries_are_the_urls_siblings(nginx: Nginx, nginx_dir: Path) -> None:
    (nginx_dir / "sub").mkdir()
    (nginx_dir / "sub" / "blob.bin").write_bytes(bytes(range(64)))
    _external_archive(nginx_dir / "model.irpa", b"sub/blob.bin", r_off=8, r_len=16)
    index = ParameterIndex.open(f"{nginx.url}/{nginx_dir.name}/model.irpa")
    assert index["ext"].read() == bytes(range(8, 24))
    assert index["ext"].source is not None and index["ext"].source.name.endswith("/sub/blob.bin")


@pytest.mark.parametrize(
    "name",
    [b"../secret.bin", b"%2e%2e/secret.bin", b"/etc/passwd", b"http://evil.example/x", b"blob.bin\x00../secret.bin"],
)
def test_irpa_external_names_leaving_the_url_folder_are_refused(
    name: bytes, nginx: Nginx, nginx_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (nginx_dir / "secret.bin").write_bytes(b"never read")
    (nginx_dir / "m").mkdir()
    _external_archive(nginx_dir / "m" / "model.irpa", name)
    url = f"{nginx.url}/{nginx_dir.name}/m/model.irpa"
    with pytest.raises(SourceError, match="refused") as info:
        ParameterIndex.open(url)
    assert info.value.path == url and info.value.key == "ext"
    assert not [line for line in synced_log(nginx, nginx_dir) if "secret.bin" in line]
    assert main(["dump", f"--parameters={url}"]) == 1
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
