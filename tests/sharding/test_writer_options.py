"""Every writer names the options it takes: an unknown one is a `TypeError`, never ignored;
`max_shard_size=` works for every format (issue 17 item 4, issue 15)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import paramio
from paramio import ParameterIndex
from paramio.formats import gguf as pg
from paramio.formats import irpa
from paramio.formats import safetensors as pst
from paramio.formats.registry import FORMATS, plan_losses, writer_options

EXT = {"irpa": ".irpa", "safetensors": ".safetensors", "gguf": ".gguf"}


def _entries() -> list[paramio.ParameterEntry]:
    index = ParameterIndex()
    for i in range(4):
        index.add_array(f"w{i}", np.full((16,), i, np.float32))
    return list(index.values())


@pytest.mark.parametrize("fmt", sorted(EXT))
def test_misspelt_option_is_a_type_error_naming_it(fmt: str, tmp_path: Path) -> None:
    out = tmp_path / f"x{EXT[fmt]}"
    with pytest.raises(TypeError, match=r"unexpected keyword argument 'alignmnet'"):
        paramio.write_path(out, _entries(), alignmnet=4096)
    with pytest.raises(TypeError, match=r"unexpected keyword argument 'alignmnet'"):
        plan_losses(out, _entries(), alignmnet=4096)
    assert list(tmp_path.iterdir()) == []  # refused before anything was written


@pytest.mark.parametrize("writer", [irpa.write_path, pst.write_path, pg.write_path])
def test_format_writers_refuse_unknown_options_themselves(writer, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(TypeError, match="unexpected keyword argument 'bogus'"):
        writer(str(tmp_path / "x"), _entries(), bogus=1)


def test_every_writer_takes_the_common_options() -> None:
    for name in FORMATS:
        assert {"alignment", "durable", "progress", "max_shard_size"} <= writer_options(name), name


@pytest.mark.parametrize("fmt", sorted(EXT))
def test_max_shard_size_writes_a_set_in_every_format(fmt: str, tmp_path: Path) -> None:
    entries = _entries()
    paramio.write_path(tmp_path / f"m{EXT[fmt]}", entries, max_shard_size=128)
    shards = sorted(p.name for p in tmp_path.iterdir() if "-of-" in p.name)
    assert shards == [f"m-0000{i}-of-00002{EXT[fmt]}" for i in (1, 2)]
    back = ParameterIndex.open(tmp_path / shards[1])  # any shard opens the whole set
    assert back.keys() == [e.key for e in entries]
    for e in entries:
        assert back[e.key].read() == e.read()


def test_gguf_max_shard_size_and_split_max_size_must_agree(tmp_path: Path) -> None:
    with pytest.raises(paramio.InvalidArgumentError, match="disagree"):
        paramio.write_path(tmp_path / "m.gguf", _entries(), max_shard_size=64, split_max_size=128)
