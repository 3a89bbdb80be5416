# ruff: noqa: UP031  (percent formatting keeps the JSON braces readable)
"""The NumPy-free header checks (`header._plain_header`, `reader._plain_entries`: what
``paramio dump`` of an ordinary file takes) under the reference tests: every test imported here
runs again with the NumPy bulk path switched off, and every hand-made case must end as the
reference reader ends it (same entries, or the same error and message)."""

from __future__ import annotations

import json

import pytest

import paramio.formats.safetensors.reader as reader
from paramio.core.entries import LazyEntries
from paramio.core.errors import ParamioError
from paramio.formats.contract import get_format
from paramio.formats.safetensors import header
from paramio.sources.memory import MemorySource
from paramio.testing.bulk import describe

pytest.importorskip("safetensors")

from st_cases import CASES, frame, t  # noqa: E402
from test_st_validation import (  # noqa: E402, F401  (collected again, under the fixture below)
    test_accepts_what_the_library_accepts,
    test_error_messages_name_file_tensor_and_offset,
    test_every_truncation_raises_a_paramio_error,
    test_inflated_header_length_and_overlapping_offsets,
    test_keys_and_order_of_accepted_cases_match_the_library,
    test_random_byte_flips_agree_with_the_library,
)

#: Cases each failing one check of the plain path only (the reference decides them).
PLAIN_CASES: list[tuple[str, bytes]] = [
    ("unsorted valid", frame('{"b":%s,"c":%s,"a":%s}' % (t(offsets="[1,2]"), t(offsets="[2,3]"), t()), b"xyz")),
    ("unsorted hole", frame('{"b":%s,"a":%s}' % (t(offsets="[2,3]"), t()), b"xyz")),
    ("unsorted short", frame('{"b":%s,"a":%s}' % (t(offsets="[1,2]"), t()), b"xyz")),
    ("in order, short", frame('{"a":%s,"b":%s}' % (t(), t(offsets="[1,2]")), b"xyz")),
    ("first not at 0", frame('{"a":%s,"b":%s}' % (t(offsets="[1,2]"), t(offsets="[2,3]")), b"xyz")),
    ("no tensors, data", frame('{"__metadata__":{"a":"b"}}', b"x")),
    ("size mismatch later", frame('{"a":%s,"b":%s}' % (t(), t("F32", "[1]", "[1,3]")), b"xyz")),
    ("shape of an object", frame('{"a":%s}' % t(shape='{"0":1}'), b"x")),
    ("shape a string", frame('{"a":%s}' % t(shape='"1"'), b"x")),
    ("shape an empty object", frame('{"a":%s}' % t(shape="{}"), b"x")),
    ("offsets an object of two", frame('{"a":%s}' % t(offsets='{"0":0,"1":1}'), b"x")),
    ("dtype null", frame('{"a":{"dtype":null,"shape":[1],"data_offsets":[0,1]}}', b"x")),
    ("dtype list", frame('{"a":{"dtype":["U8"],"shape":[1],"data_offsets":[0,1]}}', b"x")),
    ("metadata after tensor, repeated", frame('{"__metadata__":null,"a":%s,"__metadata__":null}' % t(), b"x")),
    ("metadata null then object", frame('{"__metadata__":null,"__metadata__":{"a":"b"}}')),
    ("metadata value list", frame('{"__metadata__":{"a":["b"]}}')),
    ("float in offsets of a repeated key", frame('{"a":%s,"a":%s}' % (t(offsets="[0,1.5]"), t()), b"x")),
    ("big int in shape", frame('{"a":%s}' % t(shape="[1000000000000000000]", offsets="[0,1]"), b"x")),
    ("f6 odd bits", frame('{"a":%s}' % t("F6_E2M3", "[1]", "[0,1]"), b"x")),
    ("zero-size among others", frame('{"a":%s,"b":%s}' % (t(), t(shape="[0]", offsets="[1,1]")), b"x")),
]


@pytest.fixture(autouse=True)
def _plain_reader(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reader, "use_bulk", lambda count, *_: False)


def _outcome(read: object, data: bytes) -> tuple[bool, object]:
    assert callable(read)
    try:
        contents = read(MemorySource(data, name="m.safetensors"))
    except ParamioError as exc:
        return False, (type(exc).__name__, str(exc))
    return isinstance(contents.entries, LazyEntries), describe(contents)


@pytest.mark.parametrize(("name", "data"), CASES + PLAIN_CASES, ids=[c[0] for c in CASES + PLAIN_CASES])
def test_every_case_ends_as_the_reference_ends_it(name: str, data: bytes) -> None:
    fmt = get_format("safetensors")
    plain, got = _outcome(fmt.read_source, data)
    _, want = _outcome(fmt.read_reference, data)
    assert got == want
    if name in ("one u8", "unsorted valid", "document order differs", "metadata"):
        assert plain, "a valid header must take the plain path"


def _fast_tree(text: str) -> object | None:
    """The tree as `header.parse_columns` parses it: integers by `int`, unless a ``-0`` or an
    integer of 19 digits or more sends it to the exact parse (None)."""
    if header._has_negative_zero(text):
        return None
    doc = header._native_tree(text)
    return header._checked_native(doc, text, "m") if doc is not None else None


def _reference_tree(raw: bytes) -> object:
    """The header parse as it was before the plain path: every integer through `_parse_int`,
    then the walk of every value."""
    text = raw.decode("utf-8")
    doc = header._exact_tree(text, "m")
    header._check_walk(doc, "m")
    return doc


@pytest.mark.parametrize(("name", "data"), CASES + PLAIN_CASES, ids=[c[0] for c in CASES + PLAIN_CASES])
def test_the_parse_with_native_integers_ends_as_the_exact_parse(name: str, data: bytes) -> None:
    """The native parse (integers parsed by `int`, depth checked a level at a time) gives the tree
    or the error of the exact parse, for every case: ``-0``, integers past u64, 400 digits, depth
    127, 128 and 5,000 among them."""
    if len(data) < 8:
        return
    raw = data[8:]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return
    if header._has_surrogate_escape(text):  # `parse_header` parses these exactly
        return

    def run(parse: object) -> object:
        assert callable(parse)
        try:
            return parse()
        except ParamioError as exc:
            return (type(exc).__name__, str(exc))

    fast = run(lambda: _fast_tree(text))
    exact = run(lambda: _reference_tree(raw))
    if fast is None:  # declined: the exact parse decides
        return
    assert fast == exact
    assert json.dumps(fast) == json.dumps(exact)  # ints stay ints, floats floats


def test_integers_serde_reads_as_floats_take_the_exact_parse() -> None:
    for text in ('{"a":[-0]}', '{"a":[1000000000000000000]}', '{"a":[-' + "9" * 19 + "]}"):
        assert _fast_tree(text) is None
    assert _fast_tree('{"a":[999999999999999999,-5]}') == [("a", [999999999999999999, -5])]
