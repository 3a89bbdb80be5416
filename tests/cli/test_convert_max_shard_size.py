"""``paramio convert --max-shard-size``: the library's ``max_shard_size=`` from the command line, for
every format; the listing reads the set back."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

import paramio

Cli = Callable[..., tuple[int, str, str]]


@pytest.fixture
def model(tmp_path: Path) -> tuple[Path, dict[str, np.ndarray]]:
    arrays = {f"w{i}": np.arange(1000, dtype=np.float32) * i for i in range(6)}
    index = paramio.ParameterIndex()
    for k, a in arrays.items():
        index.add_array(k, a)
    path = tmp_path / "in.irpa"
    index.create_archive_file(path)
    return path, arrays


@pytest.mark.parametrize("ext", ["irpa", "safetensors", "gguf"])
def test_a_small_limit_writes_a_set_that_reads_back(
    ext: str, model: tuple[Path, dict[str, np.ndarray]], tmp_path: Path, paramio_cli: Cli
) -> None:
    src, arrays = model
    out = tmp_path / "out" / f"model.{ext}"
    out.parent.mkdir()
    code, listing, err = paramio_cli("convert", f"--parameters={src}", f"--output={out}", "--max-shard-size=9000")
    assert code == 0, err
    shards = sorted(p.name for p in out.parent.glob(f"model-*-of-*.{ext}"))
    assert shards == [f"model-0000{i}-of-00003.{ext}" for i in (1, 2, 3)]
    assert all((out.parent / s).stat().st_size <= 9000 + 4096 for s in shards)  # a header beside 8 KB of data
    assert "(6 entries, 24000 total bytes)" in listing  # the listing is of the whole set
    back = paramio.ParameterIndex.open(out.parent / shards[1])  # any shard opens the set
    assert sorted(back.keys()) == sorted(arrays)
    for k, a in arrays.items():
        assert back[k].to_numpy().tobytes() == a.tobytes(), k


def test_a_limit_everything_fits_under_keeps_one_file(
    model: tuple[Path, dict[str, np.ndarray]], tmp_path: Path, paramio_cli: Cli
) -> None:
    src, _ = model
    out = tmp_path / "one.safetensors"
    code, listing, err = paramio_cli("convert", f"--parameters={src}", f"--output={out}", "--max-shard-size=1GiB")
    assert code == 0, err
    assert out.is_file() and "(6 entries" in listing


@pytest.mark.parametrize(
    ("output", "size", "message"),
    [("-", "1G", "is a stream"), ("x.irpa", "abc", "expected a size"), ("x.irpa", "0", "at least one byte")],
)
def test_usage_errors(
    output: str, size: str, message: str, model: tuple[Path, dict[str, np.ndarray]], tmp_path: Path, paramio_cli: Cli
) -> None:
    src, _ = model
    target = output if output == "-" else str(tmp_path / output)
    code, _, err = paramio_cli("convert", f"--parameters={src}", f"--output={target}", f"--max-shard-size={size}")
    assert code == 2 and message in err, err
    assert not list(tmp_path.glob("x*"))
