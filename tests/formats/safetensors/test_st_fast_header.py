"""The bulk path for canonical headers (`parse_canonical`) agrees with the full parser.

Whenever the bulk path accepts a header, the full parser plus the reader's tiling checks must
accept it too and give the same tensors and metadata; it may only decline (None), never
accept what the full parser refuses. Headers come from the real library's writer and from
random edits of them that aim at the grammar the bulk path relies on.
"""

from __future__ import annotations

import random

import numpy as np
import pytest
import safetensors.numpy

from paramio.core.errors import ParamioError
from paramio.formats.safetensors.bulk import parse_canonical
from paramio.formats.safetensors.header import Header, parse_header
from paramio.formats.safetensors.reader import _check_tiling

_EDIT_BYTES = b'"\\,[]{}:0123456789 \x00\x1fx\xc3\xa9_'


def _full(raw: bytes, available: int) -> Header | None:
    try:
        header = parse_header(raw, path="h")
        _check_tiling(header.tensors, 8 + len(raw), 8 + len(raw) + available, "h")
    except ParamioError:
        return None
    return header


def _library_header(tmp_path, rng: random.Random, metadata: dict[str, str] | None) -> tuple[bytes, int]:
    dtypes = [np.float32, np.float16, np.int64, np.uint8, np.bool_, np.int8, np.float64]
    tensors = {}
    for i in range(rng.randint(1, 12)):
        shape = tuple(rng.randint(0, 4) for _ in range(rng.randint(0, 3)))
        tensors[f"layer.{i}.w{'é' if i == 3 else ''}"] = np.zeros(shape, dtype=rng.choice(dtypes))
    p = tmp_path / "f.safetensors"
    safetensors.numpy.save_file(tensors, str(p), metadata=metadata)
    data = p.read_bytes()
    n = int.from_bytes(data[:8], "little")
    return data[8 : 8 + n], len(data) - 8 - n


def _edit(raw: bytes, rng: random.Random) -> bytes:
    b = bytearray(raw)
    for _ in range(rng.randint(1, 3)):
        kind = rng.randrange(5)
        i = rng.randrange(len(b))
        if kind == 0:
            b[i] = rng.choice(_EDIT_BYTES)
        elif kind == 1:
            del b[i]
        elif kind == 2:
            b.insert(i, rng.choice(_EDIT_BYTES))
        elif kind == 3:  # copy a run elsewhere: repeated keys, fields, tensors
            j = rng.randrange(len(b))
            b[i:i] = b[j : j + rng.randint(1, 40)]
        else:  # a digit run made long, or given a leading zero
            b[i:i] = rng.choice([b"0", b"9" * 16, b"00", b"18446744073709551616"])
    return bytes(b)


@pytest.mark.interop
@pytest.mark.parametrize("seed", range(4))
def test_bulk_path_never_disagrees(tmp_path, seed: int) -> None:
    rng = random.Random(seed)
    accepted = 0
    for case in range(600):
        metadata = rng.choice([None, {"format": "pt"}, {"a": "b", "c": "}{,\\"}])
        if case % 50 == 0:
            raw, available = _library_header(tmp_path, rng, metadata)
        text = raw if case % 3 == 0 else _edit(raw, rng)
        avail = available if rng.random() < 0.9 else available + rng.choice([-1, 1])
        fast = parse_canonical(text, avail)
        full = _full(text, avail)
        if fast is None:
            continue
        accepted += 1
        assert full is not None, text
        assert fast.header() == full, text
    assert accepted > 100


@pytest.mark.interop
def test_library_files_take_the_bulk_path(tmp_path) -> None:
    rng = random.Random(7)
    for metadata in (None, {"format": "pt", "x": "y"}):
        raw, available = _library_header(tmp_path, rng, metadata)
        fast = parse_canonical(raw, available)
        assert fast is not None
        assert fast.header() == _full(raw, available)


def test_declines_what_it_cannot_prove() -> None:
    ok = b'{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}'
    assert parse_canonical(ok, 8) is not None
    for text in (
        b'{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"a":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}}',
        b'{"a":{"dtype":"F32","shape":[02],"data_offsets":[0,8]}}',
        b'{"a":{"dtype":"F32","shape":[2,],"data_offsets":[0,8]}}',
        b'{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8,9]}}',
        b'{"a":{"dtype":"F33","shape":[2],"data_offsets":[0,8]}}',
        b'{"a\\u0041":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}',
        b'{"a": {"dtype":"F32","shape":[2],"data_offsets":[0,8]}}',
        b'{"a":{"shape":[2],"dtype":"F32","data_offsets":[0,8]}}',
        b'{"__metadata__":{"a":"b"},"__metadata__":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}',
        b'{"a":{"dtype":"F32","shape":[1234567890123456],"data_offsets":[0,8]}}',
    ):
        assert parse_canonical(text, 8) is None, text
    assert parse_canonical(ok, 9) is None  # a byte after the last tensor
    assert parse_canonical(b'{"a":{"dtype":"F4","shape":[3],"data_offsets":[0,1]}}', 1) is None  # 12 bits
