"""The NumPy bulk path on headers whose ``__metadata__`` strings hold escapes (paramio's carried
record is JSON inside a string): read in bulk, with the reference reader's result or error."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest

import paramio
from paramio.formats.contract import get_format
from paramio.formats.safetensors.bulk import parse_canonical
from paramio.testing.bulk import check_bulk_agrees


def _in_bulk(data: bytes) -> bool:
    """Whether the NumPy bulk parse takes the file (else the other readers decide)."""
    (n,) = struct.unpack_from("<Q", data)
    return parse_canonical(data[8 : 8 + n], len(data) - 8 - n) is not None


def _file(metadata: str, key: str = "w") -> bytes:
    """One U8[4] tensor after `metadata` (the JSON text of the ``__metadata__`` value)."""
    header = '{"__metadata__":%s,"%s":{"dtype":"U8","shape":[4],"data_offsets":[0,4]}}' % (metadata, key)  # noqa: UP031
    raw = header.encode()
    return struct.pack("<Q", len(raw)) + raw + b"abcd"


CASES = {
    "escapes": (_file(r'{"a":"x\ny\"z\u00e9\\","b":"\/"}'), True),
    "raw utf-8 and escapes": (_file('{"é":"ü\\n"}'), True),
    "repeated key": (_file(r'{"a":"\n","a":"y"}'), True),
    "lone surrogate": (_file(r'{"a":"\ud800"}'), False),
    "surrogate pair": (_file(r'{"a":"\ud83d\ude00"}'), False),
    "number value": (_file(r'{"a":"\n","b":1}'), False),
    "NaN value": (_file(r'{"a":"\n","b":NaN}'), False),
    "object value": (_file(r'{"a":"\n","b":{"c":"d"}}'), False),
    "array": (_file(r'["\n"]'), False),
    "control character": (_file('{"a":"\\n\x01"}'), False),
    "bad escape": (_file(r'{"a":"\q"}'), False),
    "escaped key after": (_file(r'{"a":"\n"}', key=r"w\n"), False),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_escaped_metadata_agrees_with_the_reference(name: str) -> None:
    data, bulk = CASES[name]
    check_bulk_agrees(get_format("safetensors"), data)
    assert _in_bulk(data) is bulk


def test_metadata_only_goes_to_the_reference() -> None:
    raw = b'{"__metadata__":{"a":"\\n"}}'
    data = struct.pack("<Q", len(raw)) + raw
    check_bulk_agrees(get_format("safetensors"), data)
    assert not _in_bulk(data)


def test_a_converted_file_with_a_carried_record_is_read_in_bulk(tmp_path: Path) -> None:
    index = paramio.ParameterIndex()
    for i in range(50):
        index.add_buffer(f"layer.{i}.weight", np.full(4, i, np.float32).tobytes())
    path = tmp_path / "m.safetensors"
    paramio.write_path(str(path), index.values(), attributes={"note": 'quote " and \\ backslash'})
    data = path.read_bytes()
    assert b"paramio.carried" in data and b'\\"' in data  # the record is escaped JSON
    check_bulk_agrees(get_format("safetensors"), data)
    assert _in_bulk(data)
    back = paramio.read_path(str(path))
    assert back.attributes["note"] == 'quote " and \\ backslash'
    assert [e.tensor for e in back.entries] == [None] * 50  # untyped again (restored by column)
    assert "paramio.carried" not in json.dumps(back.attributes)  # the record is taken out
