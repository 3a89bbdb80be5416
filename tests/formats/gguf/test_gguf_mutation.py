"""Broken and hostile GGUF files end in paramio errors naming file and offset, quickly."""

from __future__ import annotations

import random
import struct
from pathlib import Path

import numpy as np
import pytest

import paramio.formats.gguf as pg
from conftest import ALL_VALUES, all_type_tensors, write_oracle
from paramio.core.errors import FormatError, ParamioError, TruncatedError, UnsupportedFormatError
from paramio.sources.memory import MemorySource

pytest.importorskip("gguf")


def _parse(data: bytes) -> pg.GGUFFile:
    return pg.read_gguf(MemorySource(data, name="m.gguf"))


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    p = tmp_path_factory.mktemp("mut") / "s.gguf"
    write_oracle(p, all_type_tensors()[:12], values=ALL_VALUES)
    return p.read_bytes()


def _head(*, version: int = 3, tensors: int = 0, kvs: int = 0) -> bytes:
    return b"GGUF" + struct.pack("<IQQ", version, tensors, kvs)


def _key(k: str) -> bytes:
    return struct.pack("<Q", len(k)) + k.encode()


def test_truncation_everywhere(sample: bytes) -> None:
    f = _parse(sample)
    for n in range(len(sample)):
        try:
            _parse(sample[:n])
        except ParamioError as exc:
            assert exc.path == "m.gguf"
            continue
        # only a cut inside the padding after the last tensor may still parse
        assert n >= max(e.offset + e.length for e in f.entries), n


def test_byte_flips(sample: bytes) -> None:
    rng = random.Random(1234)
    data_start = _parse(sample).data_offset
    for _ in range(3000):
        buf = bytearray(sample[: data_start + 64])
        for _ in range(rng.randint(1, 4)):
            buf[rng.randrange(len(buf))] = rng.randrange(256)
        try:
            _parse(bytes(buf))
        except ParamioError:
            pass


@pytest.mark.parametrize(
    ("data", "error", "message"),
    [
        (b"GGU", FormatError, r"m.gguf: at offset 0x0: GGUF file magic missing or invalid \(474755\)"),
        (b"GGML" + bytes(20), FormatError, "magic missing or invalid"),
        (
            _head(version=1),
            UnsupportedFormatError,
            "GGUF format version 1 is unsupported; expected version 2-3 .version 1 used 32-bit counts",
        ),
        (b"GGUF" + struct.pack(">I", 3) + bytes(16), UnsupportedFormatError, "big-endian"),
        (_head(kvs=2**63), TruncatedError, "metadata key/value table claims 9223372036854775808 items"),
        (_head(tensors=2**64 - 1), TruncatedError, "tensor info table claims"),
        (
            _head(kvs=1) + struct.pack("<Q", 2**62) + bytes(8),
            TruncatedError,
            "metadata key needs 4611686018427387904 bytes",
        ),
        (
            _head(kvs=1) + _key("a") + struct.pack("<IIQ", 9, 4, 2**61),
            TruncatedError,
            "entry 'a' at offset 0x31: array claims 2305843009213693952 items",
        ),
        (_head(kvs=1) + _key("a") + struct.pack("<IIQ", 9, 8, 2**40), TruncatedError, "string array claims"),
        (
            _head(kvs=1) + _key("a") + struct.pack("<I", 13),
            FormatError,
            "entry 'a' at offset 0x21: unknown metadata value type 13",
        ),
        (
            _head(kvs=1) + _key("a") + struct.pack("<IIQ", 9, 9, 1) + struct.pack("<IQ", 9, 1) * 40,
            FormatError,
            "metadata arrays nested more than 32 deep",
        ),
        (
            _head(kvs=1) + _key("general.alignment") + struct.pack("<Ii", 5, 64),
            FormatError,
            "general.alignment must be a u32, not i32",
        ),
        (
            _head(kvs=1) + _key("general.alignment") + struct.pack("<II", 4, 48),
            FormatError,
            "general.alignment 48 is not a power of two",
        ),
        # A repeated key is read with a warning (refused under strict): tests/formats/gguf/test_gguf_repeated_keys.py
        (
            _head(tensors=1) + _key("t") + struct.pack("<I", 2**31) + bytes(20),
            FormatError,
            "entry 't' at offset 0x21: tensor has 2147483648 dimensions; GGUF allows at most 4",
        ),
        (
            _head(tensors=1) + _key("t") + struct.pack("<IQIQ", 1, 32, 4, 0),
            UnsupportedFormatError,
            "entry 't' at offset 0x2d: ggml tensor type 4 is unknown",
        ),
        (
            _head(tensors=1) + _key("t") + struct.pack("<IQIQ", 1, 10, 2, 0),
            FormatError,
            "innermost dimension 10 is not a multiple of the Q4_0 block size 32",
        ),
        (
            _head(tensors=1) + _key("t") + struct.pack("<IQQIQ", 2, 2**40, 2**20, 0, 0),
            TruncatedError,
            r"entry 't' at offset 0x39: tensor data 0x60..0x4000000000000060 \(4611686018427387904 bytes of F32\) ends past the end of the file \(0x41\)",
        ),
        (  # gguf.cpp: "total number of elements ... is >= INT64_MAX"
            _head(tensors=1) + _key("t") + struct.pack("<IQQIQ", 2, 2**40, 2**40, 0, 0),
            FormatError,
            r"entry 't' at offset 0x25: tensor shape \(1099511627776, 1099511627776\) has 2\*\*63-1 elements or more",
        ),
        (
            _head(tensors=1) + _key("t") + struct.pack("<IQIQ", 1, 2**63, 0, 0),
            FormatError,
            r"entry 't' at offset 0x25: tensor dimension 0 is 9223372036854775808, more than 2\*\*63-1",
        ),
    ],
)
def test_hostile_files(data: bytes, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message) as info:
        _parse(data)
    assert type(info.value) is error


def test_empty_file_is_an_error(tmp_path: Path) -> None:
    p = tmp_path / "e.gguf"
    p.write_bytes(b"")
    with pytest.raises(FormatError, match="e.gguf: at offset 0x0: GGUF file magic missing"):
        pg.read_path(str(p))


def test_sniff() -> None:
    assert pg.sniff(b"GGUF\x03\x00") and not pg.sniff(b"PRIA")


def test_zero_copy_view(tmp_path: Path) -> None:
    p = tmp_path / "z.gguf"
    write_oracle(p, [("x", np.arange(8, dtype=np.float32), None)])
    (e,) = pg.read_path(str(p)).entries
    a = e.to_numpy()
    assert not a.flags.owndata and not a.flags.writeable


def test_detected_by_magic_and_progress_reported(tmp_path: Path) -> None:
    from paramio.formats.registry import detect_format, read_path, write_path

    p = tmp_path / "weights.bin"
    seen: list[int] = []
    write_path(p, pg.read_path(str(_small(tmp_path))).entries, format="gguf", progress=seen.append)
    assert sum(seen) == 8 * 4
    assert detect_format(p) == "gguf"
    assert [e.key for e in read_path(p).entries] == ["x"]


def _small(tmp_path: Path) -> Path:
    p = tmp_path / "small.gguf"
    write_oracle(p, [("x", np.arange(8, dtype=np.float32), None)])
    return p
