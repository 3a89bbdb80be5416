# ruff: noqa: UP031  (percent formatting keeps the JSON braces readable)
"""paramio accepts exactly the safetensors files the reference library accepts."""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest

safetensors = pytest.importorskip("safetensors")
pytest.importorskip("safetensors.numpy")
np = pytest.importorskip("numpy")

from st_cases import CASES, frame, t  # noqa: E402

from paramio.core.errors import FormatError, InvalidArgumentError, ParamioError, TruncatedError, UnsupportedFormatError  # noqa: E402
from paramio.formats.safetensors import read_path  # noqa: E402
from paramio.formats.safetensors.reader import read_file  # noqa: E402
from paramio.sources.memory import MemorySource  # noqa: E402


def library_accepts(data: bytes) -> bool:
    try:
        safetensors.deserialize(data)
    except safetensors.SafetensorError:
        return False
    return True


def paramio_accepts(data: bytes, path: Path) -> bool:
    path.write_bytes(data)
    try:
        contents = read_path(str(path))
    except ParamioError:
        return False
    for e in contents.entries:  # viewing an accepted entry raises nothing but paramio errors
        try:
            e.to_numpy()
        except InvalidArgumentError:
            pass  # a valid file may declare a shape NumPy cannot make
    return True


@pytest.mark.interop
@pytest.mark.parametrize(("name", "data"), CASES, ids=[c[0] for c in CASES])
def test_accepts_what_the_library_accepts(name: str, data: bytes, tmp_path: Path) -> None:
    assert paramio_accepts(data, tmp_path / "x.safetensors") == library_accepts(data)


@pytest.mark.interop
def test_the_case_list_has_both_outcomes() -> None:
    outcomes = [library_accepts(d) for _, d in CASES]
    assert sum(outcomes) >= 20 and outcomes.count(False) >= 40


@pytest.mark.interop
def test_keys_and_order_of_accepted_cases_match_the_library(tmp_path: Path) -> None:
    for name, data in CASES:
        if not library_accepts(data):
            continue
        lib = {k: v for k, v in safetensors.deserialize(data)}
        p = tmp_path / "x.safetensors"
        p.write_bytes(data)
        ours = read_path(str(p))
        assert sorted(e.key for e in ours.entries) == sorted(lib), name
        for e in ours.entries:
            assert e.read() == bytes(lib[e.key]["data"]), name
            assert list(e.shape or ()) == lib[e.key]["shape"], name


def _error(data: bytes, tmp_path: Path) -> ParamioError:
    p = tmp_path / "bad.safetensors"
    p.write_bytes(data)
    with pytest.raises(ParamioError) as info:
        read_path(str(p))
    return info.value


def test_error_messages_name_file_tensor_and_offset(tmp_path: Path) -> None:
    e = _error(frame('{"a":%s,"b":%s}' % (t(), t(offsets="[2,3]")), b"xyz"), tmp_path)
    hdr = len('{"a":%s,"b":%s}' % (t(), t(offsets="[2,3]")))
    assert type(e) is FormatError
    assert (e.key, e.offset) == ("b", 8 + hdr + 2)
    assert str(e) == (
        f"{tmp_path / 'bad.safetensors'}: entry 'b' at offset {8 + hdr + 2:#x}: data_offsets [2, 3] leaves a "
        "hole after the previous tensor's data, which ends at 1 (tensors must tile the data buffer)"
    )
    e = _error(frame('{"a":%s}' % t(shape="[2]", offsets="[0,2]"), b"x"), tmp_path)
    assert isinstance(e, TruncatedError) and e.key == "a" and "but the file ends at" in str(e)
    e = _error(frame('{"a":%s}' % t("F32", "[1]", "[0,2]"), b"xy"), tmp_path)
    assert e.reason == "data_offsets [0, 2] hold 2 bytes but F32 [1] needs 4"
    e = _error(frame('{"a":%s}' % t("X9"), b"x"), tmp_path)
    assert isinstance(e, UnsupportedFormatError) and e.reason == "unknown safetensors dtype 'X9'"
    e = _error(frame('{"a":%s}' % t(), b"xy"), tmp_path)
    assert e.reason.startswith("the file has 1 bytes after the last tensor's data")
    e = _error(frame('{"a":1,}'), tmp_path)
    assert e.reason.startswith("header is not valid JSON") and e.offset == 8 + 7
    e = _error(frame("[]"), tmp_path)
    assert e.reason == "header must be a JSON object, not an array"


def test_huge_header_claim_is_refused_before_reading(tmp_path: Path) -> None:
    import struct

    e = _error(struct.pack("<Q", 2**64 - 1) + b"{}", tmp_path)
    assert e.reason == "header length 18446744073709551615 exceeds the limit of 100000000 bytes"
    e = _error(struct.pack("<Q", 99_999_999) + b"{}", tmp_path)
    assert isinstance(e, TruncatedError) and e.offset == 0


# -- mutation fuzzing: only paramio errors escape, quickly, and verdicts match the library ------


def _small_file() -> bytes:
    return safetensors.numpy.save(
        {
            "w": np.arange(6, dtype=np.float32).reshape(2, 3),
            "b": np.array([1, 2], dtype=np.int16),
            "m": np.array([True, False]),
        },
        metadata={"format": "np"},
    )


def _check(data: bytes) -> bool:
    try:
        entries = read_file(MemorySource(data, name="m.safetensors")).entries
    except ParamioError:
        return False
    for e in entries:
        try:
            e.to_numpy()
        except InvalidArgumentError:
            pass
    return True


def test_every_truncation_raises_a_paramio_error() -> None:
    data = _small_file()
    start = time.perf_counter()
    for n in range(len(data)):
        with pytest.raises(ParamioError):
            read_file(MemorySource(data[:n], name="m.safetensors"))
    assert _check(data)
    assert time.perf_counter() - start < 5


@pytest.mark.interop
def test_random_byte_flips_agree_with_the_library() -> None:
    data = _small_file()
    rng = random.Random(1234)
    start = time.perf_counter()
    disagreements = []
    for _ in range(3000):
        b = bytearray(data)
        for _ in range(rng.randint(1, 3)):
            pos = rng.randrange(len(b)) if rng.random() < 0.3 else rng.randrange(min(len(b), 8 + 120))
            b[pos] = rng.randrange(256)
        mutated = bytes(b)
        if _check(mutated) != library_accepts(mutated):
            disagreements.append(mutated)
    assert disagreements == []
    assert time.perf_counter() - start < 20


def test_inflated_header_length_and_overlapping_offsets() -> None:
    import struct

    data = _small_file()
    (n,) = struct.unpack_from("<Q", data)
    for claim in (n + 1, n + 10**6, 10**8, 10**8 + 1, 2**63, 2**64 - 1):
        with pytest.raises(FormatError):
            read_file(MemorySource(struct.pack("<Q", claim) + data[8:], name="m"))
    overlapping = frame('{"a":%s,"b":%s}' % (t("F32", "[2]", "[0,8]"), t("F32", "[1]", "[4,8]")), b"x" * 8)
    with pytest.raises(FormatError, match="overlaps"):
        read_file(MemorySource(overlapping, name="m"))
