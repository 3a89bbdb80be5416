"""`paramio.core.records.Record`: the value semantics of ``@dataclass(frozen=True, slots=True)``
(which the records on the listing path had) without the decorator."""

from __future__ import annotations

import copy
import dataclasses
import pickle

import pytest

from paramio.core.dtypes import dtype_by_name
from paramio.core.planner import Piece, Request, Span
from paramio.core.records import Record
from paramio.formats.gguf.constants import GGMLType
from paramio.formats.safetensors.header import Header, TensorRecord
from paramio.formats.safetensors.layout import StDType
from paramio.formats.sets.names import ShardName
from paramio.index.scopes import ParameterSpec
from paramio.sources.paths import Confinement


def test_equality_and_hash_are_by_class_and_values() -> None:
    assert Span(1, 2) == Span(offset=1, length=2)
    assert Span(1, 2) != Span(1, 3)
    assert hash(Span(1, 2)) == hash(Span(1, 2))
    assert len({Span(1, 2), Span(1, 2), Span(2, 1)}) == 2
    # Same values, another class: not equal (as two dataclasses of different classes).
    assert Span(0, 1) != Piece(0, 1, 0, 0)
    assert Span(0, 1) != (0, 1)


def test_repr_names_each_field() -> None:
    r = Request(0, 4, (Piece(0, 0, 0, 4),))
    assert repr(r) == "Request(start=0, end=4, pieces=(Piece(span=0, span_offset=0, request_offset=0, length=4),))"
    assert repr(Confinement("/a/f", ("/a",))) == "Confinement(container='/a/f', roots=('/a',), anywhere=False)"


def test_fields_cannot_be_set_or_deleted() -> None:
    s = Span(1, 2)
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.offset = 5  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        del s.length  # type: ignore[misc]
    with pytest.raises(AttributeError):
        s.other = 1  # type: ignore[attr-defined]
    assert not hasattr(s, "__dict__")
    assert s == Span(1, 2)


def test_pickle_copy_and_match_keep_the_values() -> None:
    values = [
        Span(3, 4),
        Request(0, 4, (Piece(0, 0, 0, 4),)),
        dtype_by_name("bfloat16"),
        Confinement("/x", ("/",), True),
    ]
    for v in values:
        assert pickle.loads(pickle.dumps(v)) == v
        assert copy.copy(v) == v and copy.deepcopy(v) == v
    match Span(3, 4):
        case Span(offset, length):
            assert (offset, length) == (3, 4)


def test_every_record_names_its_fields_once() -> None:
    """``__match_args__`` (what equality, hash and repr read) is the class's ``__slots__``."""
    records = (Span, Piece, Request, Confinement, type(dtype_by_name("float32")), TensorRecord, Header, StDType)
    for cls in (*records, ShardName, ParameterSpec, GGMLType):
        assert issubclass(cls, Record)
        assert cls.__match_args__ == cls.__slots__, cls


def test_a_mutable_record_compares_by_value_and_has_no_hash() -> None:
    from paramio.formats.conversion import Carried, Loss, Prepared

    a, b = Carried(), Carried()
    assert a == b and not a
    a.tensors["w"] = None
    assert a != b and a
    assert Carried().attributes is not Carried().attributes  # a fresh dict each
    with pytest.raises(TypeError, match="unhashable"):
        hash(a)
    assert repr(b) == "Carried(attributes={}, tensors={}, metadata={})"
    loss = Loss("w", "dtype", "no such type", paramio_keeps=True)
    assert str(loss) == "entry 'w': dtype (no such type)" and loss == Loss("w", "dtype", "no such type", True)
    prepared = Prepared([], {}, [loss])
    prepared.losses = []
    assert prepared == Prepared([], {}, [])
    assert not hasattr(prepared, "__dict__")
