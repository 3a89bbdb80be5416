"""The bulk readers (tensor table walk, string arrays) agree with the entry-by-entry loops."""

from __future__ import annotations

import random
from pathlib import Path

import gguf
import numpy as np
import pytest

import paramio.formats.gguf.reader as reader
from paramio.core.errors import ParamioError
from paramio.formats.gguf import read_gguf
from paramio.sources.memory import MemorySource


def _write(path: Path) -> bytes:
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_token_list([b"a", "é".encode(), b"\xff\xfe", b""] * 5)
    w.add_array("strs", ["x", "yy", ""])
    for i in range(12):
        w.add_tensor(f"t.{i}.é" if i == 5 else f"t.{i}", np.zeros((i % 3 + 1, 32), dtype=np.float32))
    w.add_tensor("q", np.zeros((2, 34), dtype=np.uint8), raw_dtype=gguf.GGMLQuantizationType.Q8_0)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path.read_bytes()


def _outcome(data: bytes, *, fast: bool) -> object:
    try:
        f = reader.read_gguf(MemorySource(data, name="g"), bulk=fast)
    except ParamioError as exc:
        return (type(exc), str(exc))
    return (
        f.kv,
        f.data_offset,
        [(e.key, e.offset, e.length, e.tensor, e.file_index, e.kind, e.origin) for e in f.entries],
    )


@pytest.mark.interop
def test_fast_table_matches_the_loop(tmp_path: Path) -> None:
    data = _write(tmp_path / "g.gguf")
    f = read_gguf(MemorySource(data, name="g"))
    assert [e.key for e in f.entries][5] == "t.5.é"
    assert f.kv["tokenizer.ggml.tokens"]["value"][:4] == ["a", "é", {"hex": "fffe"}, ""]
    assert _outcome(data, fast=True) == _outcome(data, fast=False)
    rng = random.Random(3)
    for _ in range(300):
        b = bytearray(data)
        for _ in range(rng.randint(1, 3)):
            i = rng.randrange(len(b))
            b[i] = rng.choice([0, 1, 2, 0xFF, 0x7F, 9, b[i] ^ 1])
        cut = bytes(b[: rng.randrange(len(b))]) if rng.random() < 0.2 else bytes(b)
        assert _outcome(cut, fast=True) == _outcome(cut, fast=False)


@pytest.mark.interop
def test_low_byte_walk_checked_against_full_fields(tmp_path: Path) -> None:
    """The table walk reads only the low byte of each name length and dimension count; names of
    256+ bytes, and a high byte set in either field, must still read exactly as the loop."""
    w = gguf.GGUFWriter(str(tmp_path / "long.gguf"), "llama")
    names = ["a" * 255, "b" * 256, "c" * 300, "d", "e" * 513]
    for name in names:
        w.add_tensor(name, np.zeros((2, 32), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    data = (tmp_path / "long.gguf").read_bytes()
    assert [e.key for e in read_gguf(MemorySource(data, name="g")).entries] == names
    assert _outcome(data, fast=True) == _outcome(data, fast=False)
    at = data.index(b"\x01" + b"\x00" * 7 + b"d\x02\x00\x00\x00") + 8  # tensor "d", then its dimension count
    for field, width in ((at - 8, 8), (at + 1, 4)):  # name length, dimension count
        for byte in range(1, width):
            b = bytearray(data)
            b[field + byte] = 1
            assert _outcome(bytes(b), fast=True) == _outcome(bytes(b), fast=False)
