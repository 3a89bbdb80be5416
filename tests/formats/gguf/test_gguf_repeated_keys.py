"""GGUF files that repeat a metadata key (older gguf-py wrote ``general.architecture`` twice).

IREE's runtime loads them; gguf-py 0.19 refuses them. paramio opens them with a `FormatWarning`
naming the key and both offsets, gives the last value on lookup (as IREE does for
``general.alignment``), keeps every pair in order so GGUF -> IRPA -> GGUF is byte-identical, and
refuses them under ``strict=True`` / ``--strict``. The files are written byte by byte here.
"""

from __future__ import annotations

import struct
import warnings
from pathlib import Path

import numpy as np
import pytest

import paramio
from paramio.core.errors import FormatError, FormatWarning
from paramio.formats.gguf.kv import kv_pairs
from paramio.formats.registry import read_path, write_path

IREE_FILE = Path(__file__).parents[2] / "iree" / "data" / "iree_io" / "testdata" / "parameter_weight_bias_1.gguf"


def _str(s: str) -> bytes:
    raw = s.encode()
    return struct.pack("<Q", len(raw)) + raw


def _kv_str(key: str, value: str) -> bytes:
    return _str(key) + struct.pack("<I", 8) + _str(value)


def _kv_u32(key: str, value: int) -> bytes:
    return _str(key) + struct.pack("<II", 4, value)


def _gguf(pairs: list[bytes], tensors: dict[str, np.ndarray], alignment: int = 32) -> bytes:
    """A GGUF v3 file laid out as gguf-py lays it out: header, pairs, tensor infos, data
    aligned to `alignment` (F32 tensors only)."""
    infos = b""
    data = b""
    for name, arr in tensors.items():
        infos += _str(name) + struct.pack("<I", arr.ndim) + b"".join(struct.pack("<Q", d) for d in reversed(arr.shape))
        infos += struct.pack("<IQ", 0, len(data))
        raw = arr.astype("<f4").tobytes()
        data += raw + b"\0" * (-len(raw) % alignment)
    head = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(pairs)) + b"".join(pairs) + infos
    return head + b"\0" * (-len(head) % alignment) + data


PAIRS = [
    _kv_str("general.architecture", "llama"),
    _kv_str("general.name", "tiny"),
    _kv_str("general.architecture", "llama2"),
    _kv_u32("layers", 2),
    _kv_str("general.name", "tiny2"),
]
WEIGHT = np.arange(8, dtype=np.float32).reshape(2, 4)


@pytest.fixture
def repeated(tmp_path: Path) -> Path:
    p = tmp_path / "old.gguf"
    p.write_bytes(_gguf(PAIRS, {"w": WEIGHT}))
    return p


def _offset(i: int) -> int:
    return 24 + sum(len(p) for p in PAIRS[:i])


def test_opens_with_a_warning_naming_key_and_both_offsets(repeated: Path) -> None:
    with pytest.warns(FormatWarning) as caught:
        index = paramio.ParameterIndex.open(repeated)
    texts = [str(w.message) for w in caught]
    assert texts == [
        f"{repeated}: metadata key 'general.architecture' at offset {_offset(2):#x} repeats the one at offset "
        f"{_offset(0):#x}; lookups give the last value (strict mode refuses such files)",
        f"{repeated}: metadata key 'general.name' at offset {_offset(4):#x} repeats the one at offset "
        f"{_offset(1):#x}; lookups give the last value (strict mode refuses such files)",
    ]
    np.testing.assert_array_equal(index["w"].to_numpy(), WEIGHT)


def test_lookup_gives_the_last_value_and_every_pair_is_kept_in_order(repeated: Path) -> None:
    with pytest.warns(FormatWarning):
        kv = read_path(repeated).attributes["gguf.kv"]
    assert isinstance(kv, dict)
    assert kv["general.architecture"]["value"] == "llama2"
    assert kv["general.name"]["value"] == "tiny2"
    assert list(kv) == ["general.architecture", "general.name", "layers"]  # first occurrences
    assert [(k, r["value"]) for k, r in kv_pairs(kv)] == [  # type: ignore[index]
        ("general.architecture", "llama"),
        ("general.name", "tiny"),
        ("general.architecture", "llama2"),
        ("layers", 2),
        ("general.name", "tiny2"),
    ]


def test_strict_mode_refuses(repeated: Path, paramio_cli) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(FormatError, match="duplicate metadata key 'general.architecture' .*strict") as info:
        paramio.ParameterIndex.open(repeated, strict=True)
    assert info.value.offset == _offset(2) and f"first at offset {_offset(0):#x}" in str(info.value)
    with pytest.raises(FormatError):
        read_path(repeated, strict=True)
    code, _, err = paramio_cli("dump", f"--parameters={repeated}", "--strict")
    assert code == 1 and "duplicate metadata key 'general.architecture'" in err and err.count("\n") == 1


@pytest.mark.parametrize("source", ["generated", "iree"])
def test_gguf_to_irpa_to_gguf_is_byte_identical(repeated: Path, tmp_path: Path, source: str) -> None:
    original = repeated if source == "generated" else IREE_FILE
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FormatWarning)
        c = read_path(original)
        write_path(tmp_path / "mid.irpa", c.entries, attributes=c.attributes, on_loss="error")
        back = read_path(tmp_path / "mid.irpa")
        assert back.attributes == c.attributes
        write_path(tmp_path / "back.gguf", back.entries, attributes=back.attributes, on_loss="error")
    assert (tmp_path / "back.gguf").read_bytes() == original.read_bytes()


def test_an_edited_table_still_writes_every_pair() -> None:
    kv = {
        "a": {
            "type": "u8",
            "value": 2,
            "occurrences": [{"at": 0, "type": "u8", "value": 1}, {"at": 9, "type": "u8", "value": 2}],
        },
        "b": 3,
    }
    assert kv_pairs(kv) == [("a", {"type": "u8", "value": 1}), ("a", {"type": "u8", "value": 2}), ("b", 3)]


def test_peers_agree_this_is_the_case(repeated: Path) -> None:
    """gguf-py 0.19 refuses the file (the reason for a warning); IREE loads it, and sees the
    tensor where paramio does (it uses the last general.alignment, so does paramio)."""
    gguf = pytest.importorskip("gguf")
    with pytest.raises(KeyError, match="Duplicate general.architecture"):
        gguf.GGUFReader(str(repeated))
    rt = pytest.importorskip("iree.runtime")
    theirs = rt.ParameterIndex()
    theirs.load(str(repeated))
    with pytest.warns(FormatWarning):
        ours = paramio.ParameterIndex.open(repeated)
    assert [(k, e.file_storage[1], e.length) for k, e in theirs.items()] == [
        (k, e.offset, e.length) for k, e in ours.items()
    ]


def test_repeated_alignment_uses_the_last_value_as_iree(tmp_path: Path) -> None:
    p = tmp_path / "align.gguf"
    p.write_bytes(
        _gguf([_kv_u32("general.alignment", 32), _kv_u32("general.alignment", 64)], {"w": WEIGHT}, alignment=64)
    )
    with pytest.warns(FormatWarning):
        ours = paramio.ParameterIndex.open(p)
    np.testing.assert_array_equal(ours["w"].to_numpy(), WEIGHT)
    assert ours["w"].offset % 64 == 0
    rt = pytest.importorskip("iree.runtime")
    theirs = rt.ParameterIndex()
    theirs.load(str(p))
    assert theirs.items()[0][1].file_storage[1] == ours["w"].offset
